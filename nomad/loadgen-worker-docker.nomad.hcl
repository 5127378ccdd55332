# loadgen's remote load workers with Nomad's docker driver: `loadgen run|canary --nomad-workers N
# --nomad-driver docker` registers (or updates) this parameterized batch job and dispatches it N
# times, as nomad/loadgen-worker.nomad.hcl (raw_exec) does; the same meta, payload, restart and
# reschedule, which must stay. The task runs the loadgen image (docker/loadgen.Dockerfile, built
# by `loadgen images build`): its entry point is `python3 -m loadgen.cli`, as nobody.
#
# image: LOADGEN_NOMAD_IMAGE when set (an image your nodes can pull: push loadgen/loadgen:<tag>
# to your registry), else the loadgen image built here, which only a Nomad client sharing this
# machine's Docker engine has.
#
# Host networking: the worker reaches the coordinator (LOADGEN_COORDINATOR_BIND) and the target
# from the node's own network, with no port mapping (and no Docker bridge needed: the local
# dockerd runs with --bridge=none). Adjust to your cluster: datacenters, constraints, resources.
variable "image" {
  type        = string
  description = "The loadgen image (loadgen/loadgen:<tag>, or your registry's copy of it)"
}

variable "job_id" {
  type    = string
  default = "loadgen-worker-docker"
}

variable "datacenters" {
  type    = list(string)
  default = ["*"]
}

variable "cpu" {
  type    = number
  default = 500
}

variable "memory" {
  type    = number
  default = 256
}

job "loadgen-worker-docker" {
  id          = var.job_id
  type        = "batch"
  datacenters = var.datacenters

  parameterized {
    payload       = "required"
    meta_required = ["coordinator", "index", "of", "lease"]
  }

  group "worker" {
    # A worker that fails is not run again: its share of the schedule cannot be caught up, and
    # the coordinator already reports it as lost.
    restart {
      attempts = 0
      mode     = "fail"
    }

    reschedule {
      attempts  = 0
      unlimited = false
    }

    task "worker" {
      driver = "docker"

      dispatch_payload {
        file = "token"
      }

      config {
        image        = var.image
        network_mode = "host"
        # The image's entry point is the CLI (python3 -m loadgen.cli); NOMAD_TASK_DIR is /local in the container.
        args = [
          "worker",
          "--coordinator", "${NOMAD_META_coordinator}",
          "--index", "${NOMAD_META_index}",
          "--of", "${NOMAD_META_of}",
          "--lease", "${NOMAD_META_lease}",
          "--token-file", "${NOMAD_TASK_DIR}/token",
        ]
      }

      # SIGINT first (the worker finishes its requests in flight and reports), SIGKILL after this.
      kill_signal  = "SIGINT"
      kill_timeout = "10s"

      resources {
        cpu    = var.cpu
        memory = var.memory
      }
    }
  }
}
