# Nomad client on every node (node1 runs both server and client).
client {
  enabled = true

  # The private network's interface (e.g. eth1): node address for services and port mappings.
  network_interface = "@NODE_IFACE@"

  # CNI plugins for bridge networking (installed by provision/1-packages.sh).
  cni_path       = "/opt/cni/bin"
  cni_config_dir = "/opt/cni/config"

  meta {
    yurt_node = "@NODE_NAME@"
  }
}

plugin "docker" {
  config {
    # The build job (yurt-build) builds OCI images on the node: it mounts the Docker socket
    # (needs volumes) and may run a privileged builder. Demo only: any job submitter can do
    # the same, which on a shared cluster is root on the node.
    allow_privileged = true

    volumes {
      enabled = true
    }

    # Labels on every container, so `docker ps` on a node shows which job/task it is.
    extra_labels = ["job_name", "task_group_name", "task_name", "namespace", "node_name"]

    gc {
      image       = true
      image_delay = "30m"
      container   = true
    }
  }
}
