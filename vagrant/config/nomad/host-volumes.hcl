# Host volumes on node1 only: they pin the jobs that use them to node1. (The Yurt controller
# keeps its data in /var/lib/yurt: it is a systemd unit, not a job; see docs/cluster.md.)
client {
  # The cluster registry's storage (vagrant/jobs/registry.nomad.hcl).
  host_volume "yurt-registry" {
    path      = "/opt/yurt/registry"
    read_only = false
  }
}
