# Consul agent settings shared by every node of the Yurt demo cluster.
# @...@ placeholders are filled in per node by vagrant/lib.sh (render).
datacenter = "dc1"
node_name  = "@NODE_NAME@"
data_dir   = "/opt/consul"
log_level  = "INFO"

# Gossip and RPC on the private network; the HTTP API and DNS on every address so the host can
# open the UI (demo only: no TLS, no ACLs).
bind_addr      = "@NODE_IP@"
advertise_addr = "@NODE_IP@"
client_addr    = "0.0.0.0"
retry_join     = ["@SERVER_IP@"]

ports {
  http = 8500
  dns  = 8600
}

# Nomad registers services and reads the catalog without a token. Set explicitly so a change
# of default in a later Consul release cannot silently lock Nomad and Traefik out.
acl {
  enabled = false
}
