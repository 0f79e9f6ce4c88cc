# Consul server on node1: a single-server cluster (demo only: no redundancy).
server           = true
bootstrap_expect = 1

ui_config {
  enabled = true
}
