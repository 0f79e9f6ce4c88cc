# Nomad server on node1: a single-server cluster (demo only: no redundancy).
server {
  enabled          = true
  bootstrap_expect = 1
}
