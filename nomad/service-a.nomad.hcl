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
  type    = string
  default = "raw_exec"
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
          driver = "raw_exec"
          # Nomad's bootstrap points Envoy at Consul's gRPC through a socket path relative to
          # the allocation root (right for its docker sidecar); raw_exec runs in the task
          # directory, so give the socket's absolute path.
          env {
            CONSUL_GRPC_ADDR = "unix://${NOMAD_ALLOC_DIR}/tmp/consul_grpc.sock"
          }
          config {
            command = var.envoy
            args = [
              "-c", "${NOMAD_SECRETS_DIR}/envoy_bootstrap.json",
              "-l", "warning",
              "--disable-hot-restart",
              "--config-yaml", "{admin: {address: {socket_address: {address: 0.0.0.0, port_value: 19100}}}}",
            ]
          }
        }
      }
    }

    task "app" {
      driver = var.driver
      config {
        command = var.python
        args    = ["-m", "services.service_a.app"]
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
