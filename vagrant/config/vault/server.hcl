# Vault server on node1: one node, Raft storage, no TLS (demo only).
ui            = true
disable_mlock = true
api_addr      = "http://@NODE_IP@:8200"
cluster_addr  = "http://@NODE_IP@:8201"

storage "raft" {
  path    = "/opt/vault/data"
  node_id = "@NODE_NAME@"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_disable     = true
}

# Registers the "vault" service in the local Consul agent (vault.service.consul).
service_registration "consul" {
  address = "127.0.0.1:8500"
}
