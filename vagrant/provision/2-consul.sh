#!/usr/bin/env bash
# Stage 2 (every node): the Consul agent (server on node1, client elsewhere) and DNS, so the
# node and its containers resolve *.consul (e.g. registry.service.consul) through dnsmasq.
set -euo pipefail
# shellcheck source=vagrant/lib.sh
source "${YURT_DIR:-/yurt}/vagrant/lib.sh"

stage "consul: $NODE_ROLE agent, *.consul DNS via dnsmasq"

CHANGED=0
install_config "$CONFIG_DIR/consul/common.hcl" /etc/consul.d/consul.hcl 0640 root:consul
install_config "$CONFIG_DIR/consul/$NODE_ROLE.hcl" /etc/consul.d/role.hcl 0640 root:consul
consul validate /etc/consul.d >/dev/null
service_up consul
wait_until 60 "the Consul agent" curl -fsS "$CONSUL_LOCAL/v1/agent/self"
wait_until "$SERVER_WAIT" "a Consul leader" bash -c "curl -fsS '$CONSUL_LOCAL/v1/status/leader' | grep -q '[0-9]'"
log "consul agent up, leader elected"

# Resolvers the VM was given (DHCP on the NAT interface), captured once before resolv.conf
# points at dnsmasq; dnsmasq forwards everything that is not *.consul to them.
capture_upstream_resolvers() {
  local upstream=$STATE_DIR/resolv.upstream servers
  [[ -s $upstream ]] && return 0
  servers=$(grep -hE '^nameserver' /etc/resolv.conf /run/systemd/resolve/resolv.conf 2>/dev/null |
    grep -vE '^nameserver[[:space:]]+127\.' | sort -u || true)
  [[ -n $servers ]] || die "found no upstream DNS server in /etc/resolv.conf"
  install -d -m 0755 "$STATE_DIR"
  printf '%s\n' "$servers" >"$upstream"
  log "upstream resolvers: $(awk '{ print $2 }' "$upstream" | tr '\n' ' ')"
}
capture_upstream_resolvers

CHANGED=0
install_config "$CONFIG_DIR/system/dnsmasq-consul.conf" /etc/dnsmasq.d/yurt-consul.conf
service_up dnsmasq

# /etc/resolv.conf may be a symlink managed by systemd-resolved on some boxes: replace it by a
# plain file, and keep DHCP lease renewals from taking 127.0.0.1 out again.
if systemctl is-active --quiet systemd-resolved; then
  systemctl disable --now --quiet systemd-resolved
fi
if [[ -L /etc/resolv.conf ]]; then
  rm -f /etc/resolv.conf
fi
install_config "$CONFIG_DIR/system/resolv.conf" /etc/resolv.conf
if [[ -f /etc/dhcp/dhclient.conf ]] && ! grep -q '^prepend domain-name-servers 127.0.0.1;' /etc/dhcp/dhclient.conf; then
  printf '%s\n' 'prepend domain-name-servers 127.0.0.1;' >>/etc/dhcp/dhclient.conf
fi
wait_until 60 "consul.service.consul to resolve through dnsmasq" getent hosts consul.service.consul
log "DNS: consul.service.consul -> $(getent hosts consul.service.consul | awk '{ print $1 }' | head -n 1)"
