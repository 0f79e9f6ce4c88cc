# Host volumes on node1 only: they pin the jobs that use them to node1.
client {
  # The cluster registry's storage (vagrant/jobs/registry.nomad.hcl).
  host_volume "yurt-registry" {
    path      = "/opt/yurt/registry"
    read_only = false
  }

  # Reserved for the Yurt controller's data dir (its job comes with issue #5).
  host_volume "yurt-controller" {
    path      = "/opt/yurt/controller"
    read_only = false
  }
}
