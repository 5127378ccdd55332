# service-a as a Nomad job, with a Connect sidecar that Nomad launches itself.
# Variables are set by loadgen (`loadgen up --runtime nomad`) through /v1/jobs/parse.

variable "python" {
  type        = string
  description = "Python interpreter that has the services' dependencies"
}

variable "project" {
  type        = string
  description = "Project root (on PYTHONPATH, so `-m services.service_a.app` resolves)"
}

variable "envoy" {
  type        = string
  description = "Path of the pinned Envoy binary the sidecar runs"
}

variable "upstream" {
  type        = string
  default     = "service-b"
  description = "service-b (connect basic) or service-a itself (L7 stages: its router sends /hello_b on)"
}

variable "driver" {
  type        = string
  default     = "raw_exec"
  description = "raw_exec: the services and Envoy as local processes; docker: as containers of the images below"
}

variable "app_image" {
  type        = string
  default     = ""
  description = "With the docker driver: the locally built loadgen/service-a image"
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
}

job "service-a" {
  datacenters = ["dc1"]
  type        = "service"
  meta {
    loadgen = "mesh"
  }

  group "service-a" {
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
      # GET 127.0.0.1:3000/hello_a on the host, as in the other runtimes.
      port "http" {
        static = 3000
        to     = 3000
      }
      port "envoy_admin" {
        static = 19000
        to     = 19100
      }
      # The sidecar's upstream listener, published like the other runtimes' 127.0.0.1:9000, so
      # the time-to-apply probes can send traffic through service-a's sidecar from the host.
      port "upstream" {
        static = 9000
        to     = 9000
      }
      # The sidecar's mTLS listener, on the bridge gateway (see nomad/conf/agent.hcl).
      port "mesh" {
        to           = -1
        host_network = "mesh"
      }
    }

    service {
      name = "service-a"
      port = "http"
      meta {
        role     = "frontend"
        instance = "service-a"
      }
      check {
        name     = "service-a HTTP"
        type     = "http"
        path     = "/healthz"
        interval = "1s"
        timeout  = "1s"
      }
      connect {
        sidecar_service {
          port                      = "mesh"
          disable_default_tcp_check = true
          proxy {
            local_service_port = 3000
            upstreams {
              destination_name = var.upstream
              local_bind_port  = 9000
              # On the namespace's interface too, so the published port reaches it.
              local_bind_address = "0.0.0.0"
            }
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
          args    = ["-m", "services.service_a.app"]
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
        PORT        = "3000"
        # Inside the allocation's own namespace; published on the host's 127.0.0.1:3000.
        BIND_ADDR   = "0.0.0.0"
        SIDECAR_URL = "http://127.0.0.1:9000"
      }
      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
