# Rendered by Yurt from jobspecs/build.nomad.hcl.j2; Yurt owns this job (see its meta).
job "yurt-build" {
  type        = "batch"
  namespace   = "default"
  region      = "global"
  datacenters = ["dc1"]

  parameterized {
    payload       = "forbidden"
    meta_required = ["app", "build_id", "commit", "image", "build_token"]
    meta_optional = ["buildpack", "stack_image"]
  }

  meta = {
    "yurt_kind" = "build"
  }

  group "build" {
    count = 1

    # A failed build fails the push; the pusher retries, Nomad does not.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    ephemeral_disk {
      size = 4096
    }

    task "build" {
      driver = "docker"

      config {
        image = "registry.service.consul:5000/yurt-builder:1"
      }

      artifact {
        source      = "http://192.168.56.11:7100/internal/builds/${NOMAD_META_build_id}/source.tar.gz"
        destination = "local/src"

        headers {
          Authorization = "Bearer ${NOMAD_META_build_token}"
        }
      }

      env = {
        "YURT_CONTROLLER_URL" = "http://192.168.56.11:7100"
        "YURT_REGISTRY"       = "registry.service.consul:5000"
        "YURT_SOURCE_DIR"     = "/local/src"
      }

      kill_timeout = "30s"

      resources {
        cpu        = 1000
        memory     = 1024
        memory_max = 2048
      }
    }
  }
}
