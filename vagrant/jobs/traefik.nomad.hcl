# Traefik on port 80 of every node (a system job), routing by Host header to the services it
# finds in the Consul catalog. Only services tagged traefik.enable=true are exposed
# (exposedByDefault=false), and only instances whose Consul checks pass or warn get traffic.
# Apps' routing tags (rule, entrypoint "web") come from the controller's job templates (jobspecs/).
# Dashboard and /ping: http://<node>:8081 (demo only: no auth).
job "traefik" {
  type     = "system"
  priority = 90

  group "traefik" {
    network {
      port "http" {
        static = 80
      }

      port "admin" {
        static = 8081
      }
    }

    service {
      name = "traefik"
      port = "http"

      check {
        name     = "ping"
        type     = "http"
        port     = "admin"
        path     = "/ping"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "traefik" {
      driver = "docker"

      config {
        image = "traefik:v3.7.9"

        # Host networking: binds port 80 on every node address and reaches the node's Consul
        # agent on 127.0.0.1.
        network_mode = "host"

        args = [
          "--entrypoints.web.address=:80",
          "--entrypoints.traefik.address=:8081",
          "--ping=true",
          "--api.dashboard=true",
          "--api.insecure=true",
          "--accesslog=true",
          "--providers.consulcatalog=true",
          "--providers.consulcatalog.exposedByDefault=false",
          "--providers.consulcatalog.endpoint.address=127.0.0.1:8500",
          "--providers.consulcatalog.watch=true",
        ]
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
