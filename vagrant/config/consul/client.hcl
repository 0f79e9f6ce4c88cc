# Consul client agent on node2..N: joins the server on node1 (retry_join in common.hcl) and
# serves the local HTTP API and DNS that Nomad, Traefik and dnsmasq use on this node.
server = false
