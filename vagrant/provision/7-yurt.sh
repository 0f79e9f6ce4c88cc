#!/usr/bin/env bash
# Stage 7 (node1, on every `vagrant up` and `vagrant provision`): the Yurt controller.
#
# - Builds the builder and stack images (images/) from the synced repository and pushes them to
#   the cluster registry, where build jobs pull them.
# - Installs Yurt into /opt/yurt/venv and runs `yurt server --runtime nomad` as the systemd unit
#   yurt.service (vagrant/config/yurt/; why a unit and not a Nomad job: docs/cluster.md), with
#   its data in /var/lib/yurt and its environment in the root-only /etc/yurt/yurt.env.
# - Gives the controller a periodic Vault token with the controller policy: created once and
#   kept in /etc/yurt/yurt.env, renewed here and hourly by yurt-vault-renew.timer, and replaced
#   only when Vault no longer knows it (e.g. after node1 was halted for longer than its period).
#
# It runs on every `vagrant up` for that token; the rest is skipped while the repository's
# content is unchanged (and the images are still in the registry).
set -euo pipefail
# shellcheck source=vagrant/lib.sh
source "${YURT_DIR:-/yurt}/vagrant/lib.sh"

is_server || die "7-yurt.sh runs on the server node only"
: "${YURT_BASE_DOMAIN:?YURT_BASE_DOMAIN is set by the Vagrantfile}"
stage "yurt: controller on port $YURT_CONTROLLER_PORT (systemd unit), builder and stack images in $YURT_REGISTRY_ADDR"

PREFIX=/opt/yurt
SRC=$PREFIX/src
VENV=$PREFIX/venv
DATA_DIR=/var/lib/yurt
ENV_FILE=/etc/yurt/yurt.env
BUILDER_IMAGE=$YURT_REGISTRY_ADDR/yurt/builder:latest
STACK_IMAGE=$YURT_REGISTRY_ADDR/yurt/stack:latest
TOKEN_PERIOD=168h
CONTROLLER_LOCAL="http://127.0.0.1:${YURT_CONTROLLER_PORT}"
VAULT_INIT_FILE=$STATE_DIR/vault-init.json
export NOMAD_ADDR=$NOMAD_LOCAL
export VAULT_ADDR="http://127.0.0.1:${YURT_VAULT_PORT}"

# git: the controller serves git over HTTP with git http-backend; python3-venv: its venv.
apt_install_os git python3-venv

if ! getent passwd yurt >/dev/null; then
  useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home \
    --shell /usr/sbin/nologin --comment "Yurt controller" yurt
  log "created the system user yurt"
fi

# The content of the synced repository (rsync leaves out .git, so no commit id to go by).
source_digest() {
  (cd "$YURT_DIR" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) |
    sha256sum | cut -d ' ' -f 1
}
digest=$(source_digest)
code_changed=0

# The controller runs from a copy of the repository, so `vagrant rsync` never changes the code
# under a running controller; the next `vagrant up` or `vagrant provision` installs it. The install is
# editable because the server takes hooks/ and buildpacks/ from the source tree beside
# controller/ (Settings.hooks_dir, buildpacks_dir), and a wheel of /yurt does not carry them.
if [[ ! -x $VENV/bin/yurt || ! -f $PREFIX/.source-digest || $(<"$PREFIX/.source-digest") != "$digest" ]]; then
  install -d -m 0755 "$PREFIX" "$SRC"
  # root-owned and not group/world-writable (the synced files belong to the vagrant user).
  rsync -a --delete --no-owner --no-group --chmod=go-w "$YURT_DIR/" "$SRC/"
  [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --editable "$SRC"
  # The controller runs as yurt and cannot write bytecode into the root-owned tree.
  "$VENV/bin/python" -m compileall -q "$SRC/controller" "$SRC/jobspecs" >/dev/null
  printf '%s\n' "$digest" >"$PREFIX/.source-digest"
  code_changed=1
  log "installed $("$VENV/bin/yurt" --version) into $VENV (editable, from $SRC)"
fi

# The images, from the same copy: the builder (the task of every yurt-build job) and the stack
# (the base of every buildpack-built app image). The Docker daemon reaches the plain-HTTP
# registry through the insecure-registries entry in /etc/docker/daemon.json (stage 3); the
# builder's skopeo/buildah through INSECURE_REGISTRY.
service_passing() {
  curl -fsS "$CONSUL_LOCAL/v1/health/service/$1?passing" | jq -e 'length > 0'
}
wait_until 300 "the registry to pass its Consul check" service_passing registry

has_latest() {
  curl -fsS "http://$YURT_REGISTRY_ADDR/v2/$1/tags/list" | jq -e '.tags // [] | index("latest")'
}

if [[ ! -f $PREFIX/.images-digest || $(<"$PREFIX/.images-digest") != "$digest" ]] ||
  ! has_latest yurt/stack >/dev/null 2>&1 || ! has_latest yurt/builder >/dev/null 2>&1; then
  docker build --quiet -f "$SRC/images/stack/Dockerfile" -t "$STACK_IMAGE" "$SRC" >/dev/null
  docker push --quiet "$STACK_IMAGE" >/dev/null
  log "pushed $STACK_IMAGE"
  docker build --quiet -f "$SRC/images/builder/Dockerfile" \
    --build-arg "STACK_IMAGE=$STACK_IMAGE" --build-arg "INSECURE_REGISTRY=$YURT_REGISTRY_ADDR" \
    -t "$BUILDER_IMAGE" "$SRC" >/dev/null
  docker push --quiet "$BUILDER_IMAGE" >/dev/null
  log "pushed $BUILDER_IMAGE"
  printf '%s\n' "$digest" >"$PREFIX/.images-digest"
fi

# The controller's Vault token. Vault is unsealed and active after stage 5.
wait_until 120 "Vault to become active" curl -fsS "$VAULT_ADDR/v1/sys/health"
[[ -s $VAULT_INIT_FILE ]] || die "$VAULT_INIT_FILE is missing; run the vault stage first"

# A token as the controller holds it is usable if it carries the controller policy and is
# periodic; renewing it restarts its period.
token_usable() {
  VAULT_TOKEN=$1 vault token lookup -format=json |
    jq -e --arg p "$YURT_VAULT_CONTROLLER_POLICY" '(.data.policies | index($p)) and (.data.period > 0)'
}

token=""
if [[ -f $ENV_FILE ]]; then
  token=$(sed -n 's/^VAULT_TOKEN=//p' "$ENV_FILE")
fi
if [[ -n $token ]] && token_usable "$token" >/dev/null 2>&1; then
  VAULT_TOKEN=$token vault token renew >/dev/null
  log "controller Vault token kept and renewed (period $TOKEN_PERIOD)"
else
  # An orphan, so that it does not depend on the token that created it.
  token=$(VAULT_TOKEN=$(jq -r .root_token "$VAULT_INIT_FILE") vault token create -orphan \
    -policy="$YURT_VAULT_CONTROLLER_POLICY" -period="$TOKEN_PERIOD" \
    -display-name=controller -field=token)
  log "created the controller's Vault token (policy $YURT_VAULT_CONTROLLER_POLICY, period $TOKEN_PERIOD)"
fi

# The controller refuses to start without its two namespaces (stage 6 creates them).
for namespace in "$YURT_NOMAD_NAMESPACE" "$YURT_NOMAD_RELEASE_NAMESPACE"; do
  curl -fsS -o /dev/null "$NOMAD_LOCAL/v1/namespace/$namespace" ||
    die "the Nomad namespace $namespace is missing; run the services stage first"
done

CHANGED=$code_changed
install -d -m 0755 /etc/yurt
install_config "$CONFIG_DIR/yurt/yurt.env" "$ENV_FILE" 0600 root:root \
  "VAULT_TOKEN=$token" "YURT_BASE_DOMAIN=$YURT_BASE_DOMAIN"
install_config "$CONFIG_DIR/yurt/yurt.service" /etc/systemd/system/yurt.service
install_config "$CONFIG_DIR/yurt/yurt-vault-renew.service" /etc/systemd/system/yurt-vault-renew.service
install_config "$CONFIG_DIR/yurt/yurt-vault-renew.timer" /etc/systemd/system/yurt-vault-renew.timer
systemctl daemon-reload
service_up yurt
systemctl enable --quiet --now yurt-vault-renew.timer

wait_until 120 "the Yurt controller to answer on $CONTROLLER_LOCAL" curl -fsS "$CONTROLLER_LOCAL/api/health"
wait_until 30 "the admin token in $DATA_DIR/admin-token" test -s "$DATA_DIR/admin-token"
log "yurt controller up at http://$NODE_IP:$YURT_CONTROLLER_PORT (admin token in $DATA_DIR/admin-token)"
log "on the host: vagrant/yurt-login"
