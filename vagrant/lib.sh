#!/usr/bin/env bash
# Shared helpers for the demo cluster's provisioning stages (vagrant/provision/*.sh).
# Sourced, never run. Every helper is safe to call again on a provisioned node: configs are only
# rewritten (and services only restarted) when their content changes.
#
# The Vagrantfile passes the node's identity in the environment:
#   NODE_NAME, NODE_IP, NODE_ROLE (server|client), SERVER_IP, STAGE, STAGE_TOTAL,
#   YURT_BASE_DOMAIN.

# The variables below are used by the scripts that source this file.
# shellcheck disable=SC2034
YURT_DIR="${YURT_DIR:-/yurt}"
VAGRANT_DIR="$YURT_DIR/vagrant"
CONFIG_DIR="$VAGRANT_DIR/config"
# Node-local state written by provisioning (Vault init output, captured resolvers, summaries).
STATE_DIR=/etc/yurt-cluster

# shellcheck source=vagrant/cluster.env
source "$VAGRANT_DIR/cluster.env"
# shellcheck source=vagrant/versions.env
source "$VAGRANT_DIR/versions.env"

: "${NODE_NAME:?NODE_NAME is set by the Vagrantfile}"
: "${NODE_IP:?NODE_IP is set by the Vagrantfile}"
: "${NODE_ROLE:?NODE_ROLE is set by the Vagrantfile}"
: "${SERVER_IP:?SERVER_IP is set by the Vagrantfile}"

export DEBIAN_FRONTEND=noninteractive
NOMAD_LOCAL="http://127.0.0.1:${YURT_NOMAD_PORT}"
CONSUL_LOCAL="http://127.0.0.1:${YURT_CONSUL_PORT}"

# How long a stage waits for something that depends on node1 (a Consul leader, the Nomad
# servers). Clients wait longer: with libvirt, Vagrant provisions the VMs in parallel, so node1
# may still be installing packages when node2 starts.
if [[ $NODE_ROLE == server ]]; then
  SERVER_WAIT=180
else
  SERVER_WAIT=1200
fi

# Set to 1 by install_config when a file changed; read by service_up.
CHANGED=0

# One progress line per stage, as it appears in `vagrant up` output.
stage() {
  printf '==> yurt %s: stage %s/%s: %s\n' "$NODE_NAME" "${STAGE:-?}" "${STAGE_TOTAL:-?}" "$*"
}

log() {
  printf '    %s\n' "$*"
}

die() {
  printf 'ERROR (%s): %s\n' "$NODE_NAME" "$*" >&2
  exit 1
}

is_server() {
  [[ $NODE_ROLE == server ]]
}

# The network interface that carries NODE_IP (the private network), e.g. eth1.
node_iface() {
  local iface
  iface=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '{ split($4, a, "/"); if (a[1] == ip) print $2 }')
  [[ -n $iface ]] || die "no interface has address $NODE_IP"
  printf '%s\n' "$iface"
}

# render SRC [NAME=VALUE...]: print SRC with the node placeholders (@NODE_NAME@, @NODE_IP@,
# @NODE_IFACE@, @SERVER_IP@) and each given @NAME@ filled in. Fails if any @PLACEHOLDER@ is
# left. The values reach sed through a private script file, never its command line (a value
# may be a secret, and command lines are visible to every user).
render() {
  local src=$1 iface out pair name value script
  shift
  iface=$(node_iface)
  local subst=("s|@NODE_NAME@|$NODE_NAME|g" "s|@NODE_IP@|$NODE_IP|g"
    "s|@NODE_IFACE@|$iface|g" "s|@SERVER_IP@|$SERVER_IP|g")
  for pair in "$@"; do
    name=${pair%%=*}
    value=${pair#*=}
    [[ $pair == *=* && $name =~ ^[A-Z][A-Z0-9_]*$ ]] || die "render needs NAME=VALUE, got '$name=...'"
    [[ $value != *$'\n'* ]] || die "render: the value of $name spans lines"
    value=${value//\\/\\\\}
    value=${value//|/\\|}
    value=${value//&/\\&}
    subst+=("s|@$name@|$value|g")
  done
  script=$(mktemp)
  printf '%s\n' "${subst[@]}" >"$script"
  out=$(sed -f "$script" "$src") || {
    rm -f "$script"
    die "cannot render $src"
  }
  rm -f "$script"
  if grep -qE '@[A-Z_]+@' <<<"$out"; then
    die "unknown placeholder left in $src"
  fi
  printf '%s\n' "$out"
}

# install_config SRC DEST [MODE] [OWNER:GROUP] [NAME=VALUE...]: render SRC (with the extra
# placeholders NAME=VALUE) into DEST; sets CHANGED=1 if DEST was created or its content changed.
# The rendered text only passes through a private temporary file (it may hold a secret).
install_config() {
  local src=$1 dest=$2 mode=${3:-0644} owner=${4:-root:root} tmp
  shift $(($# < 4 ? $# : 4))
  tmp=$(mktemp)
  render "$src" "$@" >"$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    return 0
  fi
  install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
  rm -f "$tmp"
  CHANGED=1
  log "wrote $dest"
}

# service_up NAME: enable NAME; restart it if a config changed in this stage, else start it.
service_up() {
  systemctl enable --quiet "$1"
  if [[ $CHANGED == 1 ]]; then
    systemctl restart "$1"
  else
    systemctl start "$1"
  fi
}

# wait_until SECONDS WHAT COMMAND...: run COMMAND every 2 s until it succeeds or time runs out.
wait_until() {
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${timeout}s waiting for $what"
    fi
    sleep 2
  done
}

# Distribution tools from the box's Debian archive (see DEBIAN_PACKAGES in versions.env).
apt_install_os() {
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# apt_install_pinned PKG=VERSION...: install exact versions and hold them, so neither an
# `apt-get upgrade` in the VM nor a re-provision moves them.
apt_install_pinned() {
  local spec names=()
  for spec in "$@"; do
    [[ $spec == *=?* ]] || die "apt_install_pinned needs PKG=VERSION, got '$spec'"
    names+=("${spec%%=*}")
  done
  apt-get install -y -qq --no-install-recommends --allow-change-held-packages "$@" >/dev/null
  apt-mark hold "${names[@]}" >/dev/null
}

# add_signed_repo NAME KEY_URL FINGERPRINT "URL SUITE COMPONENT": download a repository
# signing key, refuse it unless it holds exactly one primary key whose fingerprint is
# FINGERPRINT, and register the repository as signed by that key alone.
add_signed_repo() {
  local name=$1 key_url=$2 fingerprint=$3 source=$4
  local keyring=/etc/apt/keyrings/$name.gpg list=/etc/apt/sources.list.d/$name.list
  local tmp found line
  tmp=$(mktemp -d)
  curl -fsSL --retry 3 -o "$tmp/key.asc" "$key_url"
  found=$(GNUPGHOME=$tmp gpg --batch --with-colons --show-keys "$tmp/key.asc" |
    awk -F: '$1 == "pub" { want = 1; next } want && $1 == "fpr" { print $10; want = 0 }')
  if [[ $found != "$fingerprint" ]]; then
    rm -rf "$tmp"
    die "$name signing key from $key_url has fingerprint '${found//$'\n'/ }', expected $fingerprint"
  fi
  GNUPGHOME=$tmp gpg --batch --yes --dearmor -o "$tmp/key.gpg" "$tmp/key.asc"
  install -D -m 0644 "$tmp/key.gpg" "$keyring"
  rm -rf "$tmp"
  line="deb [arch=$(dpkg --print-architecture) signed-by=$keyring] $source"
  printf '%s\n' "$line" >"$list"
  log "$name repository: key $fingerprint verified"
}
