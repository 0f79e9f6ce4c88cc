# The cluster's container registry (CNCF distribution), where the build job pushes app images
# and every client pulls them from: registry.service.consul:5000 (plain HTTP, demo only; every
# Docker daemon lists it under insecure-registries). Its storage is the yurt-registry host
# volume, which exists on node1 only, so the job always lands there and images survive
# restarts of the allocation.
job "registry" {
  type     = "service"
  priority = 80

  group "registry" {
    count = 1

    volume "storage" {
      type      = "host"
      source    = "yurt-registry"
      read_only = false
    }

    network {
      port "http" {
        static = 5000
        to     = 5000
      }
    }

    service {
      name = "registry"
      port = "http"

      check {
        name     = "v2 API"
        type     = "http"
        path     = "/v2/"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "registry" {
      driver = "docker"

      config {
        image = "registry:2.8.3"
        ports = ["http"]
      }

      volume_mount {
        volume      = "storage"
        destination = "/var/lib/registry"
      }

      env {
        REGISTRY_STORAGE_DELETE_ENABLED = "true"
      }

      resources {
        cpu    = 200
        memory = 256
      }
    }
  }
}
