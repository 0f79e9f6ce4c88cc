# Rendered by Yurt from jobspecs/app.nomad.hcl.j2; Yurt owns this job (see its meta).
job "shop" {
  type        = "service"
  namespace   = "yurt"
  region      = "global"
  datacenters = ["dc1"]

  # Ownership; the release id makes every release a new job version.
  meta = {
    "yurt_app"            = "shop"
    "yurt_release"        = "v7"
    "yurt_build"          = "01J9Z3K8Q4W6E2R5T7Y9A1B3C5"
    "yurt_config_version" = "3"
    "yurt_description"    = "Deploy 1a2b3c4"
    "yurt_formation"      = "clock=0,web=3,worker=2"
  }

  group "web" {
    count = 3

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
      tags = ["urlprefix-shop.apps.example.com/", "urlprefix-www.shop.example/"]
      meta = {
        "yurt_app"     = "shop"
        "yurt_release" = "v7"
      }

      check {
        type     = "http"
        path     = "/healthz"
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
      max_parallel      = 3
      health_check      = "checks"
      min_healthy_time  = "10s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
      auto_revert       = true
      canary            = 3
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
        args  = ["/bin/sh", "-c", "bin/web"]
      }

      env = {
        "PORT" = "5000"
      }

      vault {
        role        = "yurt-app"
        env         = false
        change_mode = "noop"
      }

      identity {
        name = "vault_default"
        aud  = ["vault.io"]
        ttl  = "1h"
      }

      template {
        data        = "{{ with secret \"secret/data/yurt/apps/shop?version=3\" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | toJSON }}\n{{ end }}{{ end }}"
        destination = "secrets/config.env"
        env         = true
        change_mode = "noop"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 100
        memory = 256
      }
    }
  }

  group "clock" {
    count = 0

    update {
      max_parallel      = 1
      health_check      = "task_states"
      min_healthy_time  = "10s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
      auto_revert       = true
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

    task "clock" {
      driver = "docker"

      config {
        image = "registry.service.consul:5000/shop@sha256:3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f"
        args  = ["/bin/sh", "-c", "bin/clock"]
      }

      vault {
        role        = "yurt-app"
        env         = false
        change_mode = "noop"
      }

      identity {
        name = "vault_default"
        aud  = ["vault.io"]
        ttl  = "1h"
      }

      template {
        data        = "{{ with secret \"secret/data/yurt/apps/shop?version=3\" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | toJSON }}\n{{ end }}{{ end }}"
        destination = "secrets/config.env"
        env         = true
        change_mode = "noop"
      }

      kill_timeout = "30s"

      resources {
        cpu    = 100
        memory = 256
      }
    }
  }

  group "worker" {
    count = 2

    update {
      max_parallel      = 1
      health_check      = "task_states"
      min_healthy_time  = "10s"
      healthy_deadline  = "5m"
      progress_deadline = "10m"
      auto_revert       = true
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

    task "worker" {
      driver = "docker"

      config {
        image = "registry.service.consul:5000/shop@sha256:3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f"
        args  = ["/bin/sh", "-c", "bin/worker"]
      }

      vault {
        role        = "yurt-app"
        env         = false
        change_mode = "noop"
      }

      identity {
        name = "vault_default"
        aud  = ["vault.io"]
        ttl  = "1h"
      }

      template {
        data        = "{{ with secret \"secret/data/yurt/apps/shop?version=3\" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | toJSON }}\n{{ end }}{{ end }}"
        destination = "secrets/config.env"
        env         = true
        change_mode = "noop"
      }

      kill_timeout = "30s"

      resources {
        cpu        = 300
        memory     = 512
        memory_max = 768
      }
    }
  }
}
