# service-b as a Nomad job: one group per version (the resolver's subsets select on
# meta.version), each instance with a Connect sidecar that Nomad launches itself.
# Variables are set by loadgen (`loadgen up --runtime nomad`) through /v1/jobs/parse.

variable "python" {
  type        = string
  description = "Python interpreter that has the services' dependencies"
}

variable "project" {
  type        = string
  description = "Project root (on PYTHONPATH, so `-m services.service_b.app` resolves)"
}

variable "envoy" {
  type        = string
  description = "Path of the pinned Envoy binary the sidecars run"
}

variable "driver" {
  type        = string
  default     = "raw_exec"
  description = "raw_exec: the services and Envoy as local processes; docker: as containers of the images below"
}

variable "app_image" {
  type        = string
  default     = ""
  description = "With the docker driver: the locally built loadgen/service-b image"
}

variable "envoy_image" {
  type        = string
  default     = ""
  description = "With the docker driver: the locally built loadgen/consul-envoy image (its envoy binary)"
}

locals {
  # Envoy from the bootstrap config Nomad wrote, with its admin API on the namespace's
  # interface, so the published envoy_admin port reaches it.
  envoy_args = [
    "-c", "${NOMAD_SECRETS_DIR}/envoy_bootstrap.json",
    "-l", "warning",
    "--disable-hot-restart",
    "--config-yaml", "{admin: {address: {socket_address: {address: 0.0.0.0, port_value: 19100}}}}",
  ]

  versions = {
    v1 = { app_id = "1", admin = 19001, instance = "service-b-1" }
    v2 = { app_id = "2", admin = 19002, instance = "service-b-2" }
  }
}

job "service-b" {
  datacenters = ["dc1"]
  type        = "service"
  meta {
    loadgen = "mesh"
  }

  dynamic "group" {
    for_each = local.versions
    labels   = [group.key]
    content {
      count = 1

      # A task that dies is restarted after 1 s (Nomad's default waits 15 s).
      restart {
        attempts = 3
        interval = "1m"
        delay    = "1s"
        mode     = "fail"
      }

      network {
        mode = "bridge"
        # Published on 127.0.0.1 so Consul's HTTP check can reach the app.
        port "http" {
          to = 3001
        }
        # Envoy admin, published on 127.0.0.1 like the other runtimes' sidecars.
        port "envoy_admin" {
          static = group.value.admin
          to     = 19100
        }
        # The sidecar's mTLS listener, on the bridge gateway (see nomad/conf/agent.hcl).
        port "mesh" {
          to           = -1
          host_network = "mesh"
        }
      }

      service {
        name = "service-b"
        port = "http"
        meta {
          version  = group.key
          app_id   = group.value.app_id
          instance = group.value.instance
        }
        check {
          name     = "service-b HTTP"
          type     = "http"
          path     = "/healthz"
          interval = "1s"
          timeout  = "1s"
        }
        connect {
          sidecar_service {
            port = "mesh"
            # Nomad's default TCP check runs every 10 s and starts critical, which would hold
            # a fresh sidecar out of its upstreams' endpoints for up to 10 s; the alias check
            # (the app's 1 s HTTP check) stays.
            disable_default_tcp_check = true
            # The registered port is the host side of the mapping (for Consul's check); the
            # sidecar reaches the app inside the namespace.
            proxy {
              local_service_port = 3001
            }
          }
          sidecar_task {
            driver = var.driver
            # Nomad's bootstrap points Envoy at Consul's gRPC through a socket path relative to
            # the working directory (right in its docker sidecar, where it is /); raw_exec runs in
            # the task directory, so name the socket by the allocation directory, right in both.
            env {
              CONSUL_GRPC_ADDR = "unix://${NOMAD_ALLOC_DIR}/tmp/consul_grpc.sock"
            }
            # The same Envoy either way: the pinned binary (raw_exec) or the consul-envoy image's.
            dynamic "config" {
              for_each = var.driver == "docker" ? [] : [1]
              content {
                command = var.envoy
                args = local.envoy_args
              }
            }
            dynamic "config" {
              for_each = var.driver == "docker" ? [1] : []
              content {
                image      = var.envoy_image
                entrypoint = ["/usr/local/bin/envoy"]
                args = local.envoy_args
              }
            }
          }
        }
      }

      task "app" {
        driver = var.driver
        dynamic "config" {
          for_each = var.driver == "docker" ? [] : [1]
          content {
            command = var.python
            args    = ["-m", "services.service_b.app"]
          }
        }
        dynamic "config" {
          for_each = var.driver == "docker" ? [1] : []
          content {
            image = var.app_image  # its entrypoint runs the app
          }
        }
        env {
          PYTHONPATH  = var.project
          PYTHONUNBUFFERED = "1"
          PORT        = "3001"
          # Inside the allocation's own namespace: reachable from its sidecar and through
          # the published port, not from outside this machine.
          BIND_ADDR   = "0.0.0.0"
          APP_ID      = group.value.app_id
          VERSION     = group.key
          INSTANCE_ID = group.value.instance
        }
        resources {
          cpu    = 200
          memory = 128
        }
      }
    }
  }
}
