# A hand-written app job like the ones the controller renders from jobspecs/, to check the
# cluster end to end without the controller: an app job in the yurt namespace whose job ID is
# the app name, routed by Traefik from its Consul tags, reading its config vars from Vault
# through workload identity (role yurt-app: only secret/data/yurt/apps/hello). Its job ID is
# hello, so stop it before creating a Yurt app of that name. See docs/cluster.md for the steps:
#   vault kv put secret/yurt/apps/hello GREETING='Hello from Vault'
#   nomad job run -var base_domain=<node1 ip>.sslip.io /yurt/vagrant/jobs/hello.nomad.hcl
#   curl http://hello.<node1 ip>.sslip.io/
variable "base_domain" {
  type        = string
  description = "Apps are served as <app>.<base_domain>, e.g. 192.168.56.11.sslip.io"
}

job "hello" {
  namespace = "yurt"
  type      = "service"

  update {
    health_check     = "checks"
    min_healthy_time = "5s"
    healthy_deadline = "2m"
    auto_revert      = true
  }

  group "web" {
    count = 2

    spread {
      attribute = "${node.unique.name}"
    }

    network {
      port "http" {
        to = 8080
      }
    }

    service {
      name = "hello"
      port = "http"
      tags = [
        "traefik.enable=true",
        "traefik.http.routers.hello.rule=Host(`hello.${var.base_domain}`)",
        "traefik.http.routers.hello.entrypoints=web",
      ]

      check {
        type     = "http"
        path     = "/"
        interval = "10s"
        timeout  = "2s"
      }
    }

    task "web" {
      driver = "docker"

      config {
        image   = "busybox:1.36.1"
        command = "httpd"
        args    = ["-f", "-p", "8080", "-h", "/local/www"]
        ports   = ["http"]
      }

      vault {
        role = "yurt-app"
      }

      # Rendering blocks the task until the secret exists and this job's identity may read it.
      template {
        destination = "local/www/index.html"
        data        = <<-HTML
          <p>{{ with secret "secret/data/yurt/apps/hello" }}{{ .Data.data.GREETING }}{{ end }}</p>
          <p>served by {{ env "node.unique.name" }}</p>
        HTML
      }

      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
