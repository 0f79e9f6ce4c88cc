# A service job shaped like Yurt's app job: canaries, template + vault, routing tags.
job "yurt-myapp" {
  type        = "service"
  datacenters = ["dc1"]
  namespace   = "default"

  meta {
    yurt_app     = "myapp"
    yurt_release = "v3"
  }

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  update {
    max_parallel      = 1
    health_check      = "checks"
    min_healthy_time  = "10s"
    healthy_deadline  = "3m"
    progress_deadline = "10m"
    auto_revert       = true
    auto_promote      = true
    canary            = 1
  }

  group "web" {
    count = 2

    network {
      port "http" {
        to = 5000
      }
    }

    service {
      name     = "myapp-web"
      port     = "http"
      provider = "consul"
      tags = [
        "traefik.enable=true",
        "traefik.http.routers.myapp.rule=Host(`myapp.example.com`)",
        "urlprefix-myapp.example.com/",
      ]
      canary_tags = ["canary"]

      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    restart {
      attempts = 2
      interval = "5m"
      delay    = "10s"
      mode     = "fail"
    }

    reschedule {
      unlimited      = true
      delay          = "30s"
      delay_function = "exponential"
      max_delay      = "10m"
    }

    ephemeral_disk {
      size = 200
    }

    shutdown_delay = "5s"

    task "web" {
      driver = "docker"

      config {
        image   = "registry.local:5000/myapp@sha256:0123456789abcdef"
        ports   = ["http"]
        command = "/cnb/lifecycle/launcher"
        args    = ["web"]
        auth {
          username = "yurt"
          password = "secret"
        }
      }

      env {
        PORT = "${NOMAD_PORT_http}"
      }

      vault {
        role        = "yurt-apps"
        change_mode = "restart"
      }

      identity {
        name = "vault_default"
        aud  = ["vault.io"]
        ttl  = "1h"
      }

      template {
        data        = <<EOT
{{ with secret "secret/data/yurt/apps/myapp?version=7" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v | toJSON }}
{{ end }}{{ end }}
EOT
        destination = "secrets/app.env"
        env         = true
        change_mode = "restart"
      }

      resources {
        cpu        = 200
        memory     = 256
        memory_max = 512
      }

      kill_timeout = "20s"

      logs {
        max_files     = 5
        max_file_size = 10
      }
    }
  }
}
