#!/usr/bin/env bash
# Stage 3 (every node): the Docker daemon for Nomad's docker driver (plain-HTTP cluster
# registry, *.consul DNS for containers) and the kernel settings Nomad bridge networking needs.
set -euo pipefail
# shellcheck source=vagrant/lib.sh
source "${YURT_DIR:-/yurt}/vagrant/lib.sh"

stage "docker: daemon (registry $YURT_REGISTRY_ADDR), bridge networking"

CHANGED=0
install_config "$CONFIG_DIR/system/bridge-modules.conf" /etc/modules-load.d/yurt-bridge.conf
install_config "$CONFIG_DIR/system/bridge-sysctl.conf" /etc/sysctl.d/90-yurt-bridge.conf
modprobe br_netfilter
sysctl -q -p /etc/sysctl.d/90-yurt-bridge.conf

CHANGED=0
install_config "$CONFIG_DIR/docker/daemon.json" /etc/docker/daemon.json
service_up docker
wait_until 60 "the Docker daemon" docker info
log "docker $(docker version --format '{{.Server.Version}}') up"
