#!/usr/bin/env bash
# Stage 4 (every node): the Nomad agent (server + client on node1, client elsewhere), with
# Consul integration, the docker driver, CNI bridge networking and workload identity for Vault.
set -euo pipefail
# shellcheck source=vagrant/lib.sh
source "${YURT_DIR:-/yurt}/vagrant/lib.sh"

stage "nomad: $NODE_ROLE agent"

CHANGED=0
install_config "$CONFIG_DIR/nomad/common.hcl" /etc/nomad.d/nomad.hcl
install_config "$CONFIG_DIR/nomad/client.hcl" /etc/nomad.d/client.hcl
if is_server; then
  install_config "$CONFIG_DIR/nomad/server.hcl" /etc/nomad.d/server.hcl
  install_config "$CONFIG_DIR/nomad/host-volumes.hcl" /etc/nomad.d/host-volumes.hcl
  install -d -m 0755 /opt/yurt/registry
fi
install_config "$CONFIG_DIR/system/profile.sh" /etc/profile.d/yurt-cluster.sh
nomad config validate /etc/nomad.d >/dev/null
service_up nomad

node_ready() {
  curl -fsS "$NOMAD_LOCAL/v1/nodes" |
    jq -e --arg name "$NODE_NAME" 'any(.[]; .Name == $name and .Status == "ready")'
}
wait_until "$SERVER_WAIT" "this node to register as a ready Nomad client" node_ready
log "nomad node $NODE_NAME ready"

# Traefik is a system job: once registered (stage 6 on node1) Nomad places it on every new
# client by itself. Wait for it here so `vagrant up` ends with routing on this node too.
if ! is_server && curl -fsS -o /dev/null "$NOMAD_LOCAL/v1/job/traefik"; then
  wait_until 300 "Traefik to start on this node" curl -fsS -o /dev/null "http://127.0.0.1:8081/ping"
  log "traefik answering on port $YURT_ROUTER_PORT"
fi
