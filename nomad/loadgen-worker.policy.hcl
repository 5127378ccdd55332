# The Nomad ACL policy `loadgen run|canary --nomad-workers N` needs, and no more:
#   nomad acl policy apply -description "loadgen workers" loadgen-worker nomad/loadgen-worker.policy.hcl
#   nomad acl token create -name loadgen -policy loadgen-worker      # its Secret ID goes in NOMAD_TOKEN
# submit-job: parse and register the parameterized job, stop and purge the dispatched jobs;
# dispatch-job: dispatch one job per worker; read-job: watch their evaluations and allocations;
# list-jobs: see whether another run still has workers under the parameterized job before
# purging it (without it the job is left registered: it runs nothing, and the run says so).
# Another namespace than "default": name it here and set NOMAD_NAMESPACE.
namespace "default" {
  capabilities = ["submit-job", "dispatch-job", "read-job", "list-jobs"]
}
