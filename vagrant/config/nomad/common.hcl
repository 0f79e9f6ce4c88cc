# Nomad agent settings shared by every node of the Yurt demo cluster.
# @...@ placeholders are filled in per node by vagrant/lib.sh (render).
datacenter = "dc1"
region     = "global"
name       = "@NODE_NAME@"
data_dir   = "/opt/nomad/data"
bind_addr  = "0.0.0.0"

# Without this Nomad would advertise the NAT interface's address, which is the same on every
# VirtualBox VM and unreachable from the others.
advertise {
  http = "@NODE_IP@"
  rpc  = "@NODE_IP@"
  serf = "@NODE_IP@"
}

ports {
  http = 4646
  rpc  = 4647
  serf = 4648
}

# Services are registered in the local Consul agent; servers and clients find each other
# through it, so no Nomad config names another node's address.
consul {
  address          = "127.0.0.1:8500"
  auto_advertise   = true
  server_auto_join = true
  client_auto_join = true
}

# Workload identity for Vault: tasks with a vault block get a JWT with audience vault.io, which
# the client exchanges at Vault's jwt-nomad auth method for a token (role: yurt-app, or the
# task's vault.role). Vault fetches the signing keys from the server's JWKS endpoint
# (http://127.0.0.1:4646/.well-known/jwks.json on node1, where Vault runs).
vault {
  enabled               = true
  address               = "http://@SERVER_IP@:8200"
  jwt_auth_backend_path = "jwt-nomad"

  # Read by the servers only.
  default_identity {
    aud = ["vault.io"]
    ttl = "1h"
  }
}
