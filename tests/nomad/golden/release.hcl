# Rendered by Yurt from jobspecs/release.nomad.hcl.j2; Yurt owns this job (see its meta).
job "shop" {
  type        = "batch"
  namespace   = "yurt-release"
  region      = "global"
  datacenters = ["dc1"]

  meta = {
    "yurt_app"            = "shop"
    "yurt_release"        = "v7"
    "yurt_build"          = "01J9Z3K8Q4W6E2R5T7Y9A1B3C5"
    "yurt_config_version" = "3"
    "yurt_description"    = "Deploy 1a2b3c4"
    "yurt_run"            = "5f0c2a9e4b7d4c1e8a3b6d9f2e1c4a7b"
  }

  group "release" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "release" {
      driver = "docker"

      config {
        image = "registry.service.consul:5000/shop@sha256:3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f"
        args  = ["/bin/sh", "-c", "python manage.py migrate --noinput"]
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
}
