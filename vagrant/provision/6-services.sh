#!/usr/bin/env bash
# Stage 6 (node1): the cluster services as Nomad jobs (registry, Traefik), the Nomad namespaces
# for app jobs and their release-phase jobs (both must exist before the controller starts in
# stage 7), and a summary of the addresses for people.
set -euo pipefail
# shellcheck source=vagrant/lib.sh
source "${YURT_DIR:-/yurt}/vagrant/lib.sh"

is_server || die "6-services.sh runs on the server node only"
: "${YURT_BASE_DOMAIN:?YURT_BASE_DOMAIN is set by the Vagrantfile}"
stage "services: namespaces $YURT_NOMAD_NAMESPACE and $YURT_NOMAD_RELEASE_NAMESPACE, registry and traefik jobs"

export NOMAD_ADDR=$NOMAD_LOCAL
nomad namespace apply -description "Yurt apps: one service job per app, job ID = app name" \
  "$YURT_NOMAD_NAMESPACE" >/dev/null
# The Vault role admits workload identities from these two namespaces only, and the app policy
# is keyed on the job ID; the release phase reuses the app's job ID here to read its config.
nomad namespace apply -description "Yurt release phases: one batch job per release, job ID = app name" \
  "$YURT_NOMAD_RELEASE_NAMESPACE" >/dev/null

# `nomad job run` is idempotent: an unchanged spec creates no new job version.
for job in registry traefik; do
  nomad job run -detach "$VAGRANT_DIR/jobs/$job.nomad.hcl" >/dev/null
  log "submitted job $job"
done

service_passing() {
  curl -fsS "$CONSUL_LOCAL/v1/health/service/$1?passing" | jq -e 'length > 0'
}
wait_until 300 "the registry to pass its Consul check" service_passing registry
wait_until 300 "Traefik to start on this node" curl -fsS -o /dev/null "http://127.0.0.1:8081/ping"
log "registry at $YURT_REGISTRY_ADDR, traefik on port $YURT_ROUTER_PORT"

# Addresses `vagrant ssh` users need, in one place (the controller's are in /etc/yurt/yurt.env).
install -d -m 0755 "$STATE_DIR"
cat >"$STATE_DIR/cluster-local.env" <<EOF
# Written by vagrant/provision/6-services.sh; the shared contract is /yurt/vagrant/cluster.env.
YURT_BASE_DOMAIN=$YURT_BASE_DOMAIN
NOMAD_ADDR=http://$NODE_IP:$YURT_NOMAD_PORT
CONSUL_HTTP_ADDR=http://$NODE_IP:$YURT_CONSUL_PORT
VAULT_ADDR=http://$NODE_IP:$YURT_VAULT_PORT
EOF
log "wrote $STATE_DIR/cluster-local.env"
