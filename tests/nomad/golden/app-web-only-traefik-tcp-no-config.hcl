# Rendered by Yurt from jobspecs/app.nomad.hcl.j2; Yurt owns this job (see its meta).
job "shop" {
  type        = "service"
  namespace   = "yurt"
  region      = "global"
  datacenters = ["dc1"]

  # Ownership; the release id makes every release a new job version.
  meta = {
    "yurt_app"       = "shop"
    "yurt_release"   = "v7"
    "yurt_build"     = "01J9Z3K8Q4W6E2R5T7Y9A1B3C5"
    "yurt_formation" = "web=1"
  }

  group "web" {
    count = 1

    network {
      port "http" {
        to = 5000
      }
    }

    service {
      name     = "shop-web"
      port     = "http"
      provider = "consul"
      # The same for every release and for canaries (Traefik drops routers whose instances
      # disagree); only instances whose check passes get traffic.
      tags = [
        "traefik.enable=true",
        "traefik.http.routers.shop-web.rule=Host(`shop.apps.example.com`)",
        "traefik.http.routers.shop-web.entrypoints=web",
      ]
      meta = {
        "yurt_app"     = "shop"
        "yurt_release" = "v7"
      }

      check {
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "1m"
        }
      }
    }

    # Deregister from Consul first, so routers stop sending traffic before the task is killed.
    shutdown_delay = "10s"

    update {
      max_parallel      = 1
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
      auto_revert       = true
      canary            = 1
      auto_promote      = true
    }

    restart {
      attempts = 2
      interval = "5m"
      delay    = "10s"
      mode     = "fail"
    }

    reschedule {
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
      unlimited      = true
    }

    task "web" {
      driver = "docker"

      config {
        image = "registry.service.consul:5000/shop@sha256:3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f"
        ports = ["http"]
      }

      env = {
        "PORT" = "5000"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 100
        memory = 256
      }
    }
  }
}
