"""The nomad runtime: service-a and service-b as Nomad jobs whose Connect sidecars Nomad launches.

Like the seed's last stage: a single-node Nomad agent (nomad/conf/agent.hcl, started here,
bound to 127.0.0.1) uses the harness's Consul; the jobs in nomad/ run each instance in its own
network namespace on a bridge we create (CNI bridge networking, which Connect requires), with
an Envoy sidecar started by Nomad from the bootstrap config Nomad asks Consul for. The
services and Envoy run under ``raw_exec`` (no image needed), or with ``--driver docker`` as
containers of the locally built images (loadgen/mesh/images.py).

Registration is Nomad's job here, not ours; everything after it -- config entries, the
Envoy and /hello_a liveness checks, canary, run -- is shared with the other runtimes
(loadgen/mesh/runtime/base.py), because the jobs publish service-a on 127.0.0.1:3000 and each
sidecar's Envoy admin on the same 127.0.0.1:1900x ports as the process runtime.

What it started beyond processes (jobs, the bridge) and its driver are its own part of the run
state: :class:`NomadRecord`. The agent's own life (start, readiness, leftovers of a lost run)
is :mod:`loadgen.mesh.nomad_agent`'s.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from loadgen.errors import EnvironmentProblem, LoadgenError, UnreachableError
from loadgen.interrupts import signals_held
from loadgen.mesh import bridge, entries, envoy_admin, procs, toolchain
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.nomad_agent import (
    NOMAD_PORTS,
    NomadAgent,
    agent_client,
    networking_problems,
    nomad_dir,
    nomad_state_dir,
)
from loadgen.mesh.nomad_api import NomadClient
from loadgen.mesh.runtime.base import ComponentStatus, Progress, Runtime
from loadgen.mesh.runtime.recorded import recorded_components, stop_recorded, worst_health
from loadgen.mesh.runtime.select import NOMAD_DRIVERS
from loadgen.mesh.secure import SecureFiles, forget_secure, nomad_si_tokens
from loadgen.mesh.stages import Instance, Stage
from loadgen.mesh.state import MeshState
from loadgen.paths import project_root

# The agent's life is loadgen.mesh.nomad_agent's; these names are kept here for their callers.
__all__ = ["DRIVERS", "NomadRecord", "NomadRuntime", "job_and_group", "networking_problems", "nomad_dir",
           "nomad_state_dir", "upstream_of"]

SIDECAR_TASK_PREFIX = "connect-proxy-"
DRIVERS = NOMAD_DRIVERS


class NomadRecord:
    """The nomad runtime's part of the run state, a view of ``state.runtime_state`` (what it
    started: jobs, the bridge) and ``state.runtime_options`` (the task driver)."""

    def __init__(self, state: MeshState) -> None:
        self.state = state

    @property
    def jobs(self) -> list[str]:
        """Nomad jobs we submitted (a list kept in the state: change it in place)."""
        jobs = self.state.runtime_state.setdefault("jobs", [])
        return jobs  # type: ignore[no-any-return]

    @property
    def bridge(self) -> str | None:
        """The Linux bridge we created."""
        return self.state.runtime_state.get("bridge") or None

    @bridge.setter
    def bridge(self, name: str | None) -> None:
        self.state.runtime_state["bridge"] = name

    @property
    def driver(self) -> str | None:
        """The Nomad task driver the jobs run with."""
        return self.state.runtime_options.get("driver") or None

    @driver.setter
    def driver(self, name: str) -> None:
        self.state.runtime_options["driver"] = name


def job_and_group(inst: Instance) -> tuple[str, str]:
    """Where an instance of the stage file runs: (job, group) in nomad/*.nomad.hcl.

    service-b's groups are named after the version in the instance's registration meta
    (the resolver's subsets select on it), service-a's after the service.
    """
    version = (inst.registration.get("Meta") or {}).get("version")
    name = str(inst.registration.get("Name") or inst.id)
    return name, str(version) if version else name


def upstream_of(inst: Instance) -> str | None:
    proxy = ((inst.registration.get("Connect") or {}).get("SidecarService") or {}).get("Proxy") or {}
    ups = proxy.get("Upstreams") or []
    return str(ups[0]["DestinationName"]) if ups else None


class NomadRuntime(Runtime):
    name = "nomad"

    def __init__(self, *args: Any, driver: str = "raw_exec", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if driver not in DRIVERS:
            raise EnvironmentProblem(f"the nomad runtime runs the services with {', '.join(DRIVERS)}, not {driver}")
        self.driver = driver
        self.images: dict[str, str] = {}
        self.agent = NomadAgent(self.run, driver)
        self.bridge = self.agent.bridge
        self.state_dir = self.agent.state_dir

    # -- preconditions --------------------------------------------------------------------
    def check_prerequisites(self) -> None:
        problems = networking_problems()  # first: without root nothing else matters
        if problems:
            raise EnvironmentProblem(problems[0])
        toolchain.require("envoy")
        toolchain.require("nomad")
        if self.driver == "docker":
            from loadgen.mesh.images import docker_client

            docker_client()  # raises with how to start the engine

    def host_ports(self, stage: Stage) -> list[tuple[int, str]]:
        # Published ports are iptables DNAT rules, not sockets: a process already listening on
        # one would silently lose its traffic to the mesh, so they must be free.
        wanted = [(p, "the Nomad agent") for p in NOMAD_PORTS]
        for inst in stage.instances:
            wanted.append((inst.envoy_admin_port, f"{inst.id}'s Envoy admin"))
            if inst.app == "service_a":
                wanted.append((inst.port, inst.id))
                wanted += [(p, f"{inst.id}'s upstream listener") for p in inst.upstream_ports()]
        return wanted

    # -- up -------------------------------------------------------------------------------
    def start_workloads(self, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path,
                        say: Progress) -> None:
        record = NomadRecord(state)
        if bridge.ensure(self.bridge):
            record.bridge = self.bridge.name
            self.run.save(state)
            say(f"created bridge {self.bridge.name} ({self.bridge.gateway}/{self.bridge.subnet.prefixlen})")
        record.driver = self.driver
        self.run.save(state)
        if self.driver == "docker":
            from loadgen.mesh.images import build_all

            self.images = {b.name: b.tag for b in build_all(say)}  # instant when nothing changed
        plugin = None
        if self.driver == "docker":
            # The infra container holding each allocation's namespace is our own pause image (no
            # registry to pull one from), and Nomad must not garbage-collect the local images.
            plugin = {"docker": {"config": {"infra_image": self.images["pause"], "gc": {"image": False}}}}
        with self.agent.ensure(state, consul, grpc, consul_bin, say, plugin) as nomad:
            self._submit_jobs(stage, state, nomad, say)
            self._wait_allocations(stage, state, nomad, consul, say)

    def _submit_jobs(self, stage: Stage, state: MeshState, nomad: NomadClient, say: Progress) -> None:
        common = {"python": sys.executable, "project": str(project_root()),
                  "envoy": str(toolchain.require("envoy")), "driver": self.driver}
        if self.driver == "docker":
            common["envoy_image"] = self.images["consul-envoy"]
        jobs: dict[str, dict[str, str]] = {}
        for inst in stage.instances:
            job, _group = job_and_group(inst)
            variables = jobs.setdefault(job, dict(common))
            if self.driver == "docker":
                variables["app_image"] = self.images[inst.app.replace("_", "-")]
            upstream = upstream_of(inst)
            if upstream:
                variables["upstream"] = upstream
        # service-b first, so service-a's upstream has endpoints when its sidecar starts.
        for job in sorted(jobs, reverse=True):
            spec = nomad.parse((nomad_dir() / f"{job}.nomad.hcl").read_text(), jobs[job])
            if state.secure:
                # allow_unauthenticated = false: the job comes with a Consul token that may write
                # its service -- the service's own identity token (Nomad checks it, never stores it).
                spec["ConsulToken"] = SecureFiles(self.run.path).token_file(job).read_text().strip()
            with signals_held():
                nomad.register(spec)
                jobs_recorded = NomadRecord(state).jobs
                if job not in jobs_recorded:
                    jobs_recorded.append(job)
                self.run.save(state)
            say(f"submitted job {job} (nomad/{job}.nomad.hcl, {self.driver}"
                + (f", upstream {jobs[job]['upstream']}" if "upstream" in jobs[job] else "") + ")")

    def _wait_allocations(self, stage: Stage, state: MeshState, nomad: NomadClient, consul: ConsulClient,
                          say: Progress) -> None:
        """Every instance has a running allocation of the job's current version, its Envoy is
        LIVE and its sidecar passes in Consul."""
        deadline = time.monotonic() + self.live_timeout
        say("waiting for the allocations, their Envoy sidecars and their health in Consul")
        waiting = "no allocations yet"
        while time.monotonic() < deadline:
            self.check_alive(state)
            waiting = self._allocation_problem(stage, nomad, consul)
            if waiting is None:
                allocs = {inst.id: self._current_alloc(nomad, inst) for inst in stage.instances}
                say("allocations running: " + ", ".join(f"{i} ({a['ID'][:8]})" for i, a in allocs.items() if a))
                return
            time.sleep(0.3)
        raise UnreachableError(f"the Nomad allocations are not ready after {self.live_timeout:.0f}s: {waiting}",
                               procs.tail(state.processes["nomad"].log))

    def _current_alloc(self, nomad: NomadClient, inst: Instance) -> dict[str, Any] | None:
        job, group = job_and_group(inst)
        spec = nomad.job(job) or {}
        allocs = [a for a in nomad.allocations(job) if a["TaskGroup"] == group and a["DesiredStatus"] == "run"
                  and a.get("JobVersion") == spec.get("Version")]
        return max(allocs, key=lambda a: a.get("CreateIndex", 0), default=None)

    def _allocation_problem(self, stage: Stage, nomad: NomadClient, consul: ConsulClient) -> str | None:
        checks = consul.agent_checks()
        for inst in stage.instances:
            alloc = self._current_alloc(nomad, inst)
            if alloc is None:
                return f"no allocation for {inst.id} yet"
            if alloc["ClientStatus"] == "failed":
                raise UnreachableError(f"the allocation of {inst.id} failed: {_last_events(alloc)}")
            tasks = alloc.get("TaskStates") or {}
            if alloc["ClientStatus"] != "running" or not tasks or any(t["State"] != "running" for t in tasks.values()):
                return f"{inst.id} is {alloc['ClientStatus']} ({_last_events(alloc)})"
            if not envoy_admin.ready(inst.envoy_admin_port):
                return f"{inst.id}'s Envoy is not LIVE yet"
            statuses = _check_statuses(checks, alloc["ID"], sidecar=True)
            if not statuses or any(s != "passing" for s in statuses):
                return f"{inst.id}'s sidecar is not passing in Consul ({', '.join(statuses) or 'not registered'})"
        return None

    # -- status ---------------------------------------------------------------------------
    def components(self, state: MeshState, checks: dict[str, dict[str, Any]],
                   consul_reachable: bool) -> list[ComponentStatus]:
        """The agents loadgen runs (Consul, Nomad), then each instance's app and sidecar task."""
        recorded = recorded_components(state, checks, consul_reachable)
        stage = self.book.stages.get(state.stage) if state.stage else None
        with agent_client(timeout=3.0) as nomad:
            nomad_up = nomad.reachable()
            components = [
                c if c.name != "nomad" else ComponentStatus(
                    c.name, "nomad", c.pid, c.port, c.running,
                    "stopped" if not c.running else "passing" if nomad_up else "critical", c.log)
                for c in recorded if c.name in ("consul", "nomad")
            ]
            if stage is not None and NomadRecord(state).jobs:
                for inst in stage.instances:
                    alloc = self._current_alloc(nomad, inst) if nomad_up else None
                    components += self._alloc_components(inst, alloc, checks)
        return components

    def _alloc_components(self, inst: Instance, alloc: dict[str, Any] | None, checks: dict[str, dict[str, Any]]
                          ) -> list[ComponentStatus]:
        out = []
        tasks = (alloc or {}).get("TaskStates") or {}
        for kind, name in (("app", inst.id), ("sidecar", f"{inst.id}-sidecar")):
            task = next((t for t in tasks if t.startswith(SIDECAR_TASK_PREFIX) == (kind == "sidecar")), None)
            running = alloc is not None and task is not None and tasks[task]["State"] == "running"
            health = "stopped"
            if running and alloc is not None:
                health = worst_health(_check_statuses(checks, alloc["ID"], sidecar=kind == "sidecar"))
            log = None
            if alloc is not None and task is not None:
                log = str(self.state_dir / "alloc" / alloc["ID"] / "alloc" / "logs" / f"{task}.stderr.0")
            port = inst.envoy_admin_port if kind == "sidecar" else (inst.port if inst.app == "service_a" else None)
            out.append(ComponentStatus(name=name, kind=kind, pid=None, port=port, running=running, health=health,
                                       log=log, ref=f"alloc {alloc['ID'][:8]} ({task})" if alloc and task else None))
        return out

    # -- down ---------------------------------------------------------------------------------
    def teardown(self, say: Progress) -> list[str]:
        state = self.run.load()
        record = NomadRecord(state)
        driver, created_bridge = record.driver, record.bridge
        warnings: list[str] = []
        if record.jobs:
            nomad_rec = state.processes.get("nomad")
            with agent_client(timeout=5.0) as nomad:
                if nomad_rec and procs.alive(nomad_rec) and nomad.reachable():
                    self._stop_jobs(record.jobs, nomad, say, warnings)
                else:
                    warnings.append("the Nomad agent is not running: its tasks are stopped directly")
            record.jobs.clear()
            self.run.save(state)
            if state.secure:
                self._revoke_si_tokens(say, warnings)
        # Config entries, then the Nomad and Consul agents.
        if state.empty:
            self.run.state_file.unlink(missing_ok=True)
            say("nothing to stop")
        else:
            warnings += entries.release(state, say, self.run.path)
            stop_recorded(self.run, state, say)
            forget_secure(self.run.path, say)
        # Whatever an unclean stop or a lost run left, recorded or not.
        self.agent.reap_orphans(say)
        known = self.agent.known_allocs()
        if driver == "docker":
            self._remove_containers(known, say)
        removed = bridge.remove_leftover_rules(self.bridge, known)
        netns = bridge.remove_namespaces(known)
        if netns:
            say(f"removed {netns} network namespace(s) left from allocations")
        self.agent.clean_data_dir()
        if removed:
            say(f"removed {removed} iptables rule(s)/chain(s) left from allocations")
        if created_bridge:
            with contextlib.suppress(LoadgenError):
                if bridge.remove(self.bridge):
                    say(f"removed bridge {self.bridge.name}")
        return warnings

    def _stop_jobs(self, jobs: list[str], nomad: NomadClient, say: Progress, warnings: list[str]) -> None:
        allocs = [a["ID"] for job in jobs for a in nomad.allocations(job)
                  if a["ClientStatus"] in ("pending", "running")]
        namespaces = list(allocs)
        for job in jobs:
            try:
                nomad.stop(job, purge=False)
            except LoadgenError as exc:
                warnings.append(f"could not stop job {job}: {exc.message}")
        # Wait until the tasks have exited and Nomad has torn the allocations' networks down
        # (CNI deletes their namespaces and iptables rules); purging first would skip that wait.
        deadline = time.monotonic() + 30
        while allocs and time.monotonic() < deadline:
            allocs = [a for a in allocs if ((nomad.allocation(a) or {}).get("ClientStatus") in ("pending", "running"))]
            time.sleep(0.2)
        if allocs:
            warnings.append(f"{len(allocs)} allocation(s) still running 30s after their jobs were stopped")
        # The network teardown follows the task exits; give it a moment before the agent stops.
        while bridge.alloc_namespaces(namespaces) and time.monotonic() < deadline:
            time.sleep(0.2)
        for job in jobs:
            with contextlib.suppress(LoadgenError):
                nomad.stop(job, purge=True)
                say(f"stopped and purged job {job}")
        with contextlib.suppress(LoadgenError):
            nomad.gc()

    def _revoke_si_tokens(self, say: Progress, warnings: list[str]) -> None:
        """Nomad revokes the service-identity token of each sidecar when its allocation stops;
        wait a moment for that, then delete any it left (`down` leaves no token loadgen's
        mesh made, its own or Nomad's)."""
        files = SecureFiles(self.run.path)
        if not files.token_file("management").exists():
            return
        try:
            with ConsulClient(settings=files.settings("management"), timeout=5.0) as consul:
                deadline = time.monotonic() + 5
                left = nomad_si_tokens(consul)
                while left and time.monotonic() < deadline:
                    time.sleep(0.2)
                    left = nomad_si_tokens(consul)
                for accessor in left:
                    consul.acl_delete_token(accessor)
        except LoadgenError as exc:
            warnings.append(f"could not check the service-identity tokens Nomad derived: {exc.message}")
            return
        say(f"deleted {len(left)} service-identity token(s) Nomad had not revoked" if left
            else "Nomad revoked the service-identity tokens it derived for the sidecars")

    def _remove_containers(self, alloc_ids: list[str], say: Progress) -> None:
        """Containers (tasks and pause) of our allocations that an unclean stop left."""
        from loadgen.mesh.images import docker_client

        with contextlib.suppress(LoadgenError):
            client = docker_client()
            for box in client.containers.list(all=True, filters={"label": "com.hashicorp.nomad.alloc_id"}):
                if box.labels.get("com.hashicorp.nomad.alloc_id") in alloc_ids:
                    box.remove(force=True)
                    say(f"removed leftover container {box.name}")

def _check_statuses(checks: dict[str, dict[str, Any]], alloc_id: str, sidecar: bool) -> list[str]:
    """Consul check statuses of an allocation's services: its sidecar's, or its app's."""
    return [str(c.get("Status")) for c in checks.values()
            if str(c.get("ServiceID", "")).startswith(f"_nomad-task-{alloc_id}")
            and str(c.get("ServiceName", "")).endswith("-sidecar-proxy") == sidecar]


def _last_events(alloc: dict[str, Any]) -> str:
    """Per task, the event that failed it, else its newest one (what Nomad's UI shows first)."""
    out = []
    for task, st in sorted((alloc.get("TaskStates") or {}).items()):
        events = st.get("Events") or []
        failing = [e for e in events if e.get("FailsTask") or "Fail" in str(e.get("Type"))]
        if events:
            ev = (failing or events)[-1]
            out.append(f"{task}: {ev.get('Type')}{': ' + ev['DisplayMessage'] if ev.get('DisplayMessage') else ''}")
    return "; ".join(out) or alloc.get("ClientStatus", "")
