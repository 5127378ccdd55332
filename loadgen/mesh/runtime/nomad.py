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
state: :class:`NomadRecord`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from loadgen.errors import EnvironmentProblem, LoadgenError, UnreachableError
from loadgen.interrupts import signals_held
from loadgen.mesh import bridge, entries, envoy_admin, procs, toolchain
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.nomad_api import DEFAULT_NOMAD, NomadClient
from loadgen.mesh.runtime.base import ComponentStatus, Progress, Runtime
from loadgen.mesh.runtime.recorded import recorded_components, stop_recorded, worst_health
from loadgen.mesh.runtime.select import NOMAD_DRIVERS
from loadgen.mesh.secure import (
    SecureFiles,
    forget_secure,
    issue_nomad_token,
    nomad_si_tokens,
    write_nomad_config,
)
from loadgen.mesh.stages import Instance, Stage
from loadgen.mesh.state import MeshState
from loadgen.paths import project_root

NOMAD_PORTS = (4646, 4647, 4648)
NOMAD_STATE_ROOT = Path("/run/loadgen-nomad")
CNI_PLUGINS = ("bridge", "host-local", "loopback", "portmap", "firewall")
SIDECAR_TASK_PREFIX = "connect-proxy-"
DRIVERS = NOMAD_DRIVERS


def nomad_dir() -> Path:
    return project_root() / "nomad"


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


def networking_problems() -> list[str]:
    """What keeps Nomad's bridge networking (and so Connect) from working here, each with its fix."""
    problems = []
    if os.geteuid() != 0:
        problems.append(
            "the nomad runtime needs root: Connect needs Nomad's bridge networking, whose CNI plugins create "
            "network namespaces, veth pairs and iptables rules (run as root, or use --runtime process)"
        )
    cni = Path("/usr/lib/cni")
    missing = [p for p in CNI_PLUGINS if not (cni / p).exists()]
    if missing:
        problems.append(f"CNI plugins missing from {cni}: {', '.join(missing)} "
                        "(apt-get install containernetworking-plugins)")
    for tool, package in (("iptables", "iptables"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            problems.append(f"`{tool}` is missing (apt-get install {package})")
    return problems


class NomadRuntime(Runtime):
    name = "nomad"

    def __init__(self, *args: Any, driver: str = "raw_exec", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if driver not in DRIVERS:
            raise EnvironmentProblem(f"the nomad runtime runs the services with {', '.join(DRIVERS)}, not {driver}")
        self.driver = driver
        self.images: dict[str, str] = {}
        self.agent_hcl = nomad_dir() / "conf" / "agent.hcl"
        self.bridge = bridge.read_spec(self.agent_hcl)
        self.data_dir = self.run.path / "nomad"
        self.state_dir = nomad_state_dir(self.run.path)

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
        with self._ensure_agent(state, consul, grpc, consul_bin, say) as nomad:
            self._submit_jobs(stage, state, nomad, say)
            self._wait_allocations(stage, state, nomad, consul, say)

    @contextlib.contextmanager
    def _ensure_agent(self, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path, say: Progress
                      ) -> Any:
        client = NomadClient(DEFAULT_NOMAD)
        try:
            rec = state.processes.get("nomad")
            if rec and procs.alive(rec) and client.reachable():
                say(f"reusing the Nomad agent (pid {rec.pid})")
            else:
                if client.reachable():
                    raise EnvironmentProblem(f"a Nomad agent that loadgen did not start answers at {client.address}; "
                                             "stop it first (the nomad runtime runs its own, bound to 127.0.0.1)")
                self._start_agent(state, consul, grpc, consul_bin, client, say)
            yield client
        finally:
            client.close()

    def _start_agent(self, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path,
                     client: NomadClient, say: Progress) -> None:
        # A fresh data dir: an old one would bring back jobs and allocations of a lost run.
        self._reap_orphans(say)
        lost = self._known_allocs()
        bridge.remove_leftover_rules(self.bridge, lost)
        bridge.remove_namespaces(lost)
        self._clean_data_dir()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # Nomad runs `consul connect envoy -bootstrap` itself, so consul must be on its PATH.
        bin_dir = self.data_dir / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (bin_dir / "consul").symlink_to(Path(str(consul_bin)).resolve())
        local = self.data_dir / "local.json"
        config: dict[str, Any] = {"data_dir": str(self.state_dir)}
        extra: list[str] = []
        if state.secure:
            # HTTPS and gRPC TLS with the mesh's CA and a Consul token of Nomad's own, in a 0600
            # file of secure/ (never in local.json, which is not private). Nomad's ACLs stay off.
            files = SecureFiles(self.run.path)
            issue_nomad_token(files, consul)
            extra = ["-config", str(write_nomad_config(files, grpc))]
            say(f"Nomad talks to Consul over TLS with a token of its own ({files.nomad_config}); "
                "Nomad's own ACLs are off")
        else:
            config["consul"] = {"address": consul.address.split("://", 1)[-1], "grpc_address": grpc}
        if self.driver == "docker":
            # The infra container holding each allocation's namespace is our own pause image (no
            # registry to pull one from), and Nomad must not garbage-collect the local images.
            config["plugin"] = {"docker": {"config": {"infra_image": self.images["pause"], "gc": {"image": False}}}}
        local.write_text(json.dumps(config))
        argv = [str(toolchain.require("nomad")), "agent", "-config", str(self.agent_hcl), "-config", str(local), *extra]
        say("starting the Nomad agent (server + client)")
        with signals_held():  # started and recorded, or neither: `down` must know what to stop
            rec = procs.spawn("nomad", argv, self.run.log("nomad"),
                              {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}, cwd=self.data_dir,
                              port=NOMAD_PORTS[0])
            state.processes["nomad"] = rec
            self.run.save(state)
        deadline = time.monotonic() + 60
        problem = "no answer"
        while time.monotonic() < deadline:
            if not procs.alive(rec):
                raise UnreachableError("the Nomad agent exited during start-up", procs.tail(rec.log))
            with contextlib.suppress(LoadgenError):
                problem = self._node_problem(client)
                if problem is None:
                    say(f"Nomad agent up (pid {rec.pid}); its client is ready with {self.driver} and bridge networking")
                    return
            time.sleep(0.3)
        raise UnreachableError(f"the Nomad agent is not ready after 60s: {problem}", procs.tail(rec.log))

    def _node_problem(self, client: NomadClient) -> str | None:
        """Why the agent's client node cannot run the jobs yet (None when it can)."""
        if not client.leader():
            return "no leader elected"
        nodes = client.nodes()
        if not nodes:
            return "its client has not registered"
        node = client.node(nodes[0]["ID"]) or {}
        if node.get("Status") != "ready":
            return f"its client node is {node.get('Status')}"
        driver = (node.get("Drivers") or {}).get(self.driver) or {}
        if not driver.get("Healthy"):
            return f"the {self.driver} driver is not healthy ({driver.get('HealthDescription') or 'not detected'})"
        if not any(n.get("Mode") == "bridge" for n in (node.get("NodeResources") or {}).get("Networks") or []):
            return "bridge networking is not available (bridge kernel module?)"
        if "mesh" not in (node.get("HostNetworks") or {}):
            return f"host network 'mesh' (bridge {self.bridge.name}) was not fingerprinted"
        return None

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
        with NomadClient(DEFAULT_NOMAD, timeout=3.0) as nomad:
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
            with NomadClient(DEFAULT_NOMAD, timeout=5.0) as nomad:
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
        self._reap_orphans(say)
        known = self._known_allocs()
        if driver == "docker":
            self._remove_containers(known, say)
        removed = bridge.remove_leftover_rules(self.bridge, known)
        netns = bridge.remove_namespaces(known)
        if netns:
            say(f"removed {netns} network namespace(s) left from allocations")
        self._clean_data_dir()
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

    def _reap_orphans(self, say: Progress) -> None:
        """Tasks outlive a Nomad agent that died; stop any still running from our data dir."""
        root = str(self.state_dir) + "/"
        for p in psutil.process_iter(["pid", "name", "cwd", "cmdline"]):
            with contextlib.suppress(psutil.Error):
                # Tasks run in their task directory; Nomad's executors and loggers name it in
                # their arguments. Anything else (a user's `tail -f` on a log) is left alone.
                in_task_dir = (p.info["cwd"] or "").startswith(root)
                helper = (p.info["name"] or "").startswith(("nomad", "envoy", "python")) and any(
                    root in a for a in p.info["cmdline"] or [])
                if in_task_dir or helper:
                    p.kill()
                    say(f"stopped leftover task process {p.info['pid']} ({p.info['name']})")

    def _remove_containers(self, alloc_ids: list[str], say: Progress) -> None:
        """Containers (tasks and pause) of our allocations that an unclean stop left."""
        from loadgen.mesh.images import docker_client

        with contextlib.suppress(LoadgenError):
            client = docker_client()
            for box in client.containers.list(all=True, filters={"label": "com.hashicorp.nomad.alloc_id"}):
                if box.labels.get("com.hashicorp.nomad.alloc_id") in alloc_ids:
                    box.remove(force=True)
                    say(f"removed leftover container {box.name}")

    def _known_allocs(self) -> list[str]:
        """Every allocation our agent ran (its data dir keeps a directory per allocation)."""
        alloc_dir = self.state_dir / "alloc"
        return [p.name for p in alloc_dir.iterdir()] if alloc_dir.is_dir() else []

    def _clean_data_dir(self) -> None:
        for path in (self.state_dir, self.data_dir):
            if not path.exists():
                continue
            # Nomad mounts each task's secrets dir (tmpfs); unmount what an unclean stop left.
            with open("/proc/mounts") as fh:
                mounts = [line.split()[1] for line in fh if line.split()[1].startswith(str(path) + "/")]
            for mount in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", mount], capture_output=True)
            shutil.rmtree(path, ignore_errors=True)


def nomad_state_dir(run_path: Path) -> Path:
    """Nomad's data_dir for a run directory: short, because each allocation gets unix sockets
    (alloc/tmp/consul_grpc.sock) and Linux limits their paths to 107 bytes -- a run directory
    under a long home or pytest's tmp would not fit."""
    digest = hashlib.sha256(str(run_path.resolve()).encode()).hexdigest()[:10]
    return NOMAD_STATE_ROOT / digest


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
