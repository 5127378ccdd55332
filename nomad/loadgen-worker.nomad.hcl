# loadgen's remote load workers: `loadgen run|canary --nomad-workers N` registers (or updates)
# this parameterized batch job and dispatches it N times, each dispatch one worker:
#   meta    coordinator (the CLI's base URL), index (k), of (N), lease (seconds)
#   payload the run's random token, written to the task's local/token (never in argv or meta)
# Each worker asks the coordinator for its share of the schedule and posts its tallies back, so
# a worker's allocation needs a route to the coordinator's address (LOADGEN_COORDINATOR_BIND).
#
# Adjust to your cluster: datacenters, constraints, resources; the docker driver instead of
# raw_exec (an image with loadgen installed: `python -m loadgen.cli worker ...` as below).
variable "python" {
  type        = string
  description = "The Python with loadgen's dependencies (the checkout's .venv/bin/python)"
}

variable "project" {
  type        = string
  description = "The checkout (PYTHONPATH)"
}

variable "job_id" {
  type    = string
  default = "loadgen-worker"
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

job "loadgen-worker" {
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
      driver = "raw_exec"

      dispatch_payload {
        file = "token"
      }

      config {
        command = var.python
        args = [
          "-m", "loadgen.cli", "worker",
          "--coordinator", "${NOMAD_META_coordinator}",
          "--index", "${NOMAD_META_index}",
          "--of", "${NOMAD_META_of}",
          "--lease", "${NOMAD_META_lease}",
          "--token-file", "${NOMAD_TASK_DIR}/token",
        ]
      }

      env {
        PYTHONPATH = var.project
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
