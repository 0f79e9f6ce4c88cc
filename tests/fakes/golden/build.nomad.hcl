# A parameterized batch job shaped like Yurt's build job.
job "yurt-build" {
  type        = "batch"
  datacenters = ["dc1"]

  parameterized {
    payload       = "forbidden"
    meta_required = ["app", "build_id", "commit", "image"]
    meta_optional = ["cache_ref"]
  }

  meta {
    yurt_app = "_build"
  }

  group "build" {
    count = 1

    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "build" {
      driver = "docker"

      config {
        image = "registry.local:5000/yurt-builder:1"
        args  = ["build", "${NOMAD_META_app}", "${NOMAD_META_build_id}"]
      }

      artifact {
        source      = "http://controller.local:8000/builds/${NOMAD_META_build_id}/source.tar.gz"
        destination = "local/src"
        options {
          archive = "tar.gz"
        }
        headers {
          Authorization = "Bearer ${NOMAD_META_build_id}"
        }
      }

      resources {
        cpu    = 1000
        memory = 2048
      }
    }
  }
}
