#!/usr/bin/env bash
# Stage 1 (every node): install the pinned versions from vagrant/versions.env:
# Nomad, Consul and Vault from HashiCorp's apt repository, Docker CE from Docker's, both with
# their signing keys checked by full fingerprint, and the CNI plugins checked by sha256.
set -euo pipefail
# shellcheck source=vagrant/lib.sh
source "${YURT_DIR:-/yurt}/vagrant/lib.sh"

stage "packages: Nomad $NOMAD_VERSION, Consul $CONSUL_VERSION, Vault $VAULT_VERSION, Docker $DOCKER_VERSION, CNI plugins $CNI_PLUGINS_VERSION"

# shellcheck source=/dev/null
source /etc/os-release
if [[ ${ID:-} != debian || ${VERSION_ID:-} != 12 ]]; then
  die "the demo cluster provisions Debian 12 (bookworm) boxes; this box is ${PRETTY_NAME:-unknown}"
fi

apt-get update -qq
read -ra debian_packages <<<"$DEBIAN_PACKAGES"
apt_install_os "${debian_packages[@]}"

add_signed_repo hashicorp "$HASHICORP_KEY_URL" "$HASHICORP_KEY_FINGERPRINT" \
  "$HASHICORP_APT_URL $VERSION_CODENAME main"
add_signed_repo docker "$DOCKER_KEY_URL" "$DOCKER_KEY_FINGERPRINT" \
  "$DOCKER_APT_URL $VERSION_CODENAME stable"
apt-get update -qq

apt_install_pinned \
  "nomad=${NOMAD_VERSION}-${HASHICORP_DEB_REVISION}" \
  "consul=${CONSUL_VERSION}-${HASHICORP_DEB_REVISION}" \
  "vault=${VAULT_VERSION}-${HASHICORP_DEB_REVISION}"
log "installed nomad, consul, vault"

docker_deb_version="5:${DOCKER_VERSION}-1~debian.${VERSION_ID}~${VERSION_CODENAME}"
apt_install_pinned \
  "docker-ce=${docker_deb_version}" \
  "docker-ce-cli=${docker_deb_version}"
log "installed docker-ce $docker_deb_version"

install_cni_plugins() {
  local arch sha url tmp marker=/opt/cni/bin/.yurt-version
  arch=$(dpkg --print-architecture)
  case $arch in
    amd64) sha=$CNI_PLUGINS_SHA256_AMD64 ;;
    arm64) sha=$CNI_PLUGINS_SHA256_ARM64 ;;
    *) die "no CNI plugins checksum for architecture $arch in versions.env" ;;
  esac
  if [[ -f $marker && $(<"$marker") == "$CNI_PLUGINS_VERSION" ]]; then
    log "CNI plugins $CNI_PLUGINS_VERSION already installed"
    return 0
  fi
  url="https://github.com/containernetworking/plugins/releases/download/v${CNI_PLUGINS_VERSION}/cni-plugins-linux-${arch}-v${CNI_PLUGINS_VERSION}.tgz"
  tmp=$(mktemp)
  curl -fsSL --retry 3 -o "$tmp" "$url"
  if ! printf '%s  %s\n' "$sha" "$tmp" | sha256sum --check --quiet -; then
    rm -f "$tmp"
    die "sha256 mismatch for $url (expected $sha)"
  fi
  mkdir -p /opt/cni/bin /opt/cni/config
  tar -xzf "$tmp" -C /opt/cni/bin
  rm -f "$tmp"
  printf '%s\n' "$CNI_PLUGINS_VERSION" >"$marker"
  log "installed CNI plugins $CNI_PLUGINS_VERSION (sha256 verified)"
}
install_cni_plugins
