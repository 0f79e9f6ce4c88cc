# Fabio: the documented alternative to Traefik (not started by provisioning). It routes on
# `urlprefix-<host>/` service tags and only to instances with at least one passing Consul check
# (a service without checks is never routed). Both bind port 80, so swap them:
#   nomad job stop -purge traefik && nomad job run /yurt/vagrant/jobs/fabio.nomad.hcl
# UI: http://<node>:9998 (demo only: no auth).
job "fabio" {
  type     = "system"
  priority = 90

  group "fabio" {
    network {
      port "http" {
        static = 80
      }

      port "ui" {
        static = 9998
      }
    }

    service {
      name = "fabio"
      port = "http"

      check {
        name     = "health"
        type     = "http"
        port     = "ui"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "fabio" {
      driver = "docker"

      config {
        image        = "fabiolb/fabio:1.7.3"
        network_mode = "host"
        args = [
          "-proxy.addr=:80",
          "-ui.addr=:9998",
          "-registry.consul.addr=127.0.0.1:8500",
        ]
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
