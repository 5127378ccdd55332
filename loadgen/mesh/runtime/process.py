"""The embedded default runtime: Consul, the services and their Envoy sidecars as local processes."""

from __future__ import annotations

import contextlib
import sys
import time
from urllib.parse import urlparse

import httpx

from loadgen.errors import EnvironmentProblem, LoadgenError, UnreachableError
from loadgen.interrupts import signals_held
from loadgen.mesh import envoy_admin, procs, toolchain
from loadgen.mesh.consul_api import DEFAULT_CONSUL, ConsulClient
from loadgen.mesh.liveness import (
    EnvoyExpectation,
    active_root,
    ca_expectation,
    envoy_expectations,
    seen_app_ids,
    wait_hello_a,
)
from loadgen.mesh.runtime.base import ComponentStatus, MeshStatus, Progress, Target, half_up_problems
from loadgen.mesh.stages import Instance, Stage, StageBook, load_stages
from loadgen.mesh.state import MeshState, RunDir
from loadgen.paths import consul_dir, project_root

# Ports the dev agent of consul/agent.hcl binds (checked before it is started).
CONSUL_DEV_PORTS = (8500, 8502, 8600, 8300, 8301, 8302)
SERVICE_A_URL = "http://127.0.0.1:3000/hello_a"
# Answers in a row that make a stage live (with every expected APP_ID among them): ~1 s of
# sequential requests, so a sidecar still swapping its certificates shows up as a failure.
LIVE_BURST = 30


def _noop(_msg: str) -> None:
    pass




class ProcessRuntime:
    """Runs every part of a stage as a local process, tracked in a run directory."""

    name = "process"

    def __init__(
        self,
        run_dir: RunDir,
        consul_address: str | None = None,
        book: StageBook | None = None,
        live_timeout: float = 90.0,
        keep_on_failure: bool = False,
    ) -> None:
        self.run = run_dir
        self.explicit_consul = consul_address
        self.book = book or load_stages()
        self.live_timeout = live_timeout
        self.keep_on_failure = keep_on_failure

    # -- up ---------------------------------------------------------------------------
    def up(self, stage: Stage, progress: Progress | None = None) -> Target:
        say = progress or _noop
        with self.run.locked():
            state = self.run.load()
            previous = self.book.stages.get(state.stage) if state.stage else None
            if self.explicit_consul is None and state.consul_address and not state.consul_managed and not state.empty:
                # The running mesh was brought up with --consul: keep using that agent.
                self.explicit_consul = state.consul_address
            self._check_parts()
            consul_bin = toolchain.require("consul")
            self._check_ports(stage, state)

            fresh = state.empty
            state.runtime = self.name
            try:
                consul = self._ensure_consul(state, consul_bin, say)
                try:
                    grpc = self._check_connect(consul)
                    self._start_workloads(stage, state, consul, grpc, consul_bin, say)
                    self._apply_entries(stage, state, consul, say)
                    state.stage = stage.name
                    state.runtime = self.name
                    self.run.save(state)
                    self._wait_live(stage, previous, state, consul, say)
                finally:
                    consul.close()
            except BaseException as exc:
                # A failed or interrupted first `up` (Ctrl-C and SIGTERM raise KeyboardInterrupt,
                # not an Exception) takes down what it started: no half-up mesh is left (logs stay
                # in the run directory). A failed switch leaves the running mesh for inspection.
                if fresh and not self.keep_on_failure:
                    if not self.run.load().empty:
                        why = "interrupted: " if isinstance(exc, KeyboardInterrupt) else ""
                        say(f"{why}taking down what this `up` started (logs stay in {self.run.logs})")
                    with signals_held():
                        self._down_locked(_noop if self.run.load().empty else say)
                raise
            return self._target(stage, state)

    def _check_parts(self) -> None:
        """What this runtime needs besides Consul (raises with the fix when it is missing)."""
        toolchain.require("envoy")

    def _start_workloads(
        self, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: object, say: Progress
    ) -> None:
        """Start the stage's apps and sidecars and register them: the step runtimes do differently."""
        self._start_apps(stage, state, say)
        self._register(stage, state, consul, say)
        self._start_sidecars(stage, state, consul, grpc, consul_bin, toolchain.require("envoy"), say)

    def _check_connect(self, consul: ConsulClient) -> str:
        """The agent must have Connect and its gRPC (xDS) port on; returns the gRPC address."""
        cfg = consul.agent_self().get("DebugConfig", {})
        if cfg.get("ConnectEnabled") is False:
            raise UnreachableError(
                f"Consul at {consul.address} has Connect disabled; enable it (connect {{ enabled = true }})"
            )
        port = cfg.get("GRPCPort") or 0
        if port <= 0:
            raise UnreachableError(
                f"Consul at {consul.address} has no gRPC port, which Envoy needs for xDS (ports {{ grpc = 8502 }})"
            )
        host = urlparse(consul.address).hostname or "127.0.0.1"
        return f"{host}:{port}"

    def _check_ports(self, stage: Stage, state: MeshState) -> None:
        """Every port we are about to bind must be free, or held by a process of this mesh."""
        wanted: list[tuple[int, str]] = []
        consul_running = state.consul_managed and "consul" in state.processes and procs.alive(
            state.processes["consul"]
        )
        if self.explicit_consul is None and not consul_running and not self._default_consul_answers():
            wanted += [(p, "the Consul dev agent") for p in CONSUL_DEV_PORTS]
        self._ensure_free(wanted + self._host_ports(stage), state)

    def _host_ports(self, stage: Stage) -> list[tuple[int, str]]:
        """The host ports the stage's parts listen on, and what for."""
        wanted: list[tuple[int, str]] = []
        for inst in stage.instances:
            wanted.append((inst.port, inst.id))
            wanted.append((inst.envoy_admin_port, f"{inst.id}'s Envoy admin"))
            wanted += [(p, f"{inst.id}'s upstream listener") for p in inst.upstream_ports()]
            if inst.sidecar_port:
                wanted.append((inst.sidecar_port, f"{inst.id}'s sidecar listener"))
        return wanted

    def _ensure_free(self, wanted: list[tuple[int, str]], state: MeshState) -> None:
        ours: set[int] | None = None
        for port, what in wanted:
            if not procs.port_in_use(port):
                continue
            owner = procs.port_owner_pid(port)
            if ours is None:
                ours = procs.family(list(state.processes.values()))
            if owner is not None and owner in ours:
                continue
            raise EnvironmentProblem(
                f"port {port} (for {what}) is already in use"
                f"{' by ' + procs.port_owner(port) if owner else ''}; "
                "free it or run `loadgen down` if it is an earlier mesh"
            )

    def _default_consul_answers(self) -> bool:
        with ConsulClient(DEFAULT_CONSUL, timeout=1.0) as c:
            return c.reachable()

    def _ensure_consul(self, state: MeshState, consul_bin: object, say: Progress) -> ConsulClient:
        if self.explicit_consul is not None:
            client = ConsulClient(self.explicit_consul)
            if not client.reachable():
                client.close()
                raise UnreachableError(f"Consul at {client.address} is unreachable (is the agent running?)")
            state.consul_address = client.address
            self.run.save(state)
            say(f"using Consul at {client.address}")
            return client
        rec = state.processes.get("consul")
        if rec and procs.alive(rec):
            client = ConsulClient(state.consul_address or DEFAULT_CONSUL)
            if client.reachable():
                say(f"reusing the Consul dev agent (pid {rec.pid})")
                return client
            client.close()
        client = ConsulClient(DEFAULT_CONSUL)
        if client.reachable():
            state.consul_address = client.address
            self.run.save(state)
            say(f"reusing the Consul agent already answering at {client.address}")
            return client
        say("starting the Consul dev agent")
        with signals_held():
            rec = procs.spawn(
                "consul",
                [str(consul_bin), "agent", "-dev", "-config-file", str(consul_dir() / "agent.hcl")],
                # In the run directory: a dev agent reads ./services as persisted services, and the
                # project root's services/ holds the apps' Python.
                self.run.log("consul"), cwd=self.run.path, port=8500,
            )
            state.processes["consul"] = rec
            state.consul_managed = True
            state.consul_address = client.address
            self.run.save(state)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not procs.alive(rec):
                raise UnreachableError("the Consul dev agent exited during start-up", procs.tail(rec.log))
            try:
                if client.leader():
                    say(f"Consul dev agent up (pid {rec.pid})")
                    return client
            except LoadgenError:
                pass
            time.sleep(0.2)
        raise UnreachableError("the Consul dev agent did not elect a leader within 30s", procs.tail(rec.log))

    def _start_apps(self, stage: Stage, state: MeshState, say: Progress) -> None:
        started: list[Instance] = []
        for inst in stage.instances:
            rec = state.processes.get(inst.id)
            if rec and procs.alive(rec):
                continue
            with signals_held():
                rec = self._launch_app(inst)
                state.processes[inst.id] = rec
                self.run.save(state)
            started.append(inst)
            say(f"started {inst.id} on :{inst.port} ({self._describe(rec)})")
        for inst in started:
            self._wait_http(inst.id, f"http://127.0.0.1:{inst.port}/healthz", state)

    def _wait_http(self, name: str, url: str, state: MeshState, timeout: float = 20.0) -> None:
        rec = state.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not procs.alive(rec):
                raise UnreachableError(f"{name} exited during start-up", self._tail(rec))
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise UnreachableError(f"{name} did not answer {url} within {timeout:.0f}s", self._tail(rec))

    def _register(self, stage: Stage, state: MeshState, consul: ConsulClient, say: Progress) -> None:
        for inst in stage.instances:
            consul.register_service(inst.registration)
            if inst.id not in state.services:
                state.services.append(inst.id)
        self.run.save(state)
        say(f"registered {', '.join(i.id for i in stage.instances)} with Consul")

    def _start_sidecars(
        self, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: object,
        envoy_bin: object, say: Progress,
    ) -> None:
        started: list[Instance] = []
        for inst in stage.instances:
            name = f"{inst.id}-sidecar"
            rec = state.processes.get(name)
            if rec and procs.alive(rec):
                continue
            args = [
                "-sidecar-for", inst.id,
                "-admin-bind", f"127.0.0.1:{inst.envoy_admin_port}",
                "-http-addr", consul.address,
                "-grpc-addr", grpc,
            ]
            with signals_held():
                rec = self._launch_sidecar(inst, args, consul_bin, envoy_bin)
                state.processes[name] = rec
                self.run.save(state)
            started.append(inst)
            say(f"started Envoy sidecar for {inst.id} (admin :{inst.envoy_admin_port}, {self._describe(rec)})")
        deadline = time.monotonic() + 30
        for inst in started:
            rec = state.processes[f"{inst.id}-sidecar"]
            while not envoy_admin.ready(inst.envoy_admin_port):
                if not procs.alive(rec):
                    raise UnreachableError(f"the Envoy sidecar of {inst.id} exited", self._tail(rec))
                if time.monotonic() > deadline:
                    raise UnreachableError(
                        f"the Envoy sidecar of {inst.id} is not LIVE after 30s: it got no config from Consul's "
                        f"xDS at {grpc} (log: {rec.log})",
                        self._tail(rec),
                    )
                time.sleep(0.1)

    # -- how a part is started, stopped and read: the one place runtimes differ ------------
    def _launch_app(self, inst: Instance) -> procs.ProcRecord:
        argv = [sys.executable, "-m", f"services.{inst.app}.app"]
        return procs.spawn(inst.id, argv, self.run.log(inst.id), inst.app_env(), project_root(), inst.port)

    def _launch_sidecar(self, inst: Instance, args: list[str], consul_bin: object, envoy_bin: object
                        ) -> procs.ProcRecord:
        name = f"{inst.id}-sidecar"
        argv = [str(consul_bin), "connect", "envoy", *args, "-envoy-binary", str(envoy_bin)]
        return procs.spawn(name, argv, self.run.log(name), port=inst.envoy_admin_port)

    def _stop(self, rec: procs.ProcRecord) -> None:
        procs.stop(rec)

    def _tail(self, rec: procs.ProcRecord, lines: int = 15) -> str:
        return procs.tail(rec.log, lines)

    def _describe(self, rec: procs.ProcRecord) -> str:
        return f"pid {rec.pid}"

    def _apply_entries(self, stage: Stage, state: MeshState, consul: ConsulClient, say: Progress) -> None:
        wanted = {e.key for e in stage.config_entries}
        # Remove what the previous stage wrote and this one does not, newest first.
        for key in reversed(list(state.config_entries)):
            if key not in wanted:
                consul.delete_config(*key)
                state.config_entries.remove(key)
                self.run.save(state)
                say(f"removed {key[0]}/{key[1]}")
        for entry in stage.config_entries:
            consul.write_config(entry.body)
            if entry.key not in state.config_entries:
                state.config_entries.append(entry.key)
            self.run.save(state)
            say(f"applied {entry.path.relative_to(consul_dir())}")

    def _wait_live(
        self, stage: Stage, previous: Stage | None, state: MeshState, consul: ConsulClient, say: Progress
    ) -> None:
        deadline = time.monotonic() + self.live_timeout
        expectations = envoy_expectations(stage, previous)
        say(f"waiting for the sidecars' Envoy to show {len(expectations)} config change(s) and trust "
            "Consul's CA")
        all_ids = tuple(i.id for i in stage.instances)
        while True:
            # Every expectation must hold in the same snapshot, not each at some moment. The CA
            # one is read afresh each time: after Consul restarted, the sidecars still show the
            # old (right-looking) config until their xDS streams re-sync, then swap certificates.
            ca = self._ca_expectation(consul, all_ids)
            dumps = {}
            for inst in stage.instances:
                with contextlib.suppress(httpx.HTTPError):
                    dumps[inst.id] = envoy_admin.config_dump(inst.envoy_admin_port)
            failing = [e for e in [*expectations, ca] if not e.holds(dumps)]
            if not failing:
                break
            self._check_alive(state)
            if time.monotonic() > deadline:
                raise UnreachableError(
                    f"stage {stage.name} not live: Envoy does not show that {failing[0].description}"
                )
            time.sleep(0.25)
        say("Envoy sidecars show the stage's config and trust Consul's active CA root")
        remaining = max(5.0, deadline - time.monotonic())
        ids = f" from APP_IDs {', '.join(stage.expect.app_ids)}" if stage.expect.app_ids else ""
        say(f"waiting for {LIVE_BURST} GET /hello_a in a row to answer {stage.expect.hello_a}{ids}")
        live, last, answers = wait_hello_a(SERVICE_A_URL, stage.expect.hello_a, stage.expect.app_ids, remaining,
                                           consecutive=LIVE_BURST)
        if not live:
            self._check_alive(state)
            what = last.describe() if last else "no answer"
            seen = seen_app_ids(answers)
            missing = [i for i in stage.instances if i.app_env().get("APP_ID") in set(stage.expect.app_ids) - seen]
            # The silent instances' sidecar logs say why (e.g. a listener that failed to bind).
            detail = "\n".join(f"--- {i.id}-sidecar:\n{self._tail(state.processes[f'{i.id}-sidecar'])}"
                                for i in missing if f"{i.id}-sidecar" in state.processes) or None
            raise UnreachableError(
                f"stage {stage.name} not live: GET /hello_a should be {stage.expect.hello_a}"
                f"{' from APP_IDs ' + ','.join(stage.expect.app_ids) if stage.expect.app_ids else ''}"
                f", last answer {what}; answers: "
                + (", ".join(f"{n}x {k}" for k, n in answers.most_common()) or "none"),
                detail,
            )
        say(f"GET /hello_a answers as stage {stage.name} expects ({last.describe() if last else ''})")

    def _ca_expectation(self, consul: ConsulClient, instances: tuple[str, ...]) -> EnvoyExpectation:
        """Every sidecar trusts the CA root Consul signs certificates with now."""
        try:
            # Through the client's own request path (address, ACL token, errors as LoadgenError).
            found = active_root(consul._request("GET", "/v1/connect/ca/roots").json())
        except LoadgenError:
            found = None
        if found is None:
            # Right after an agent starts its CA may not be set up yet: not live, ask again.
            return EnvoyExpectation(f"Consul at {consul.address} has an active Connect CA root", instances,
                                    lambda _d: False)
        return ca_expectation(instances, *found)

    def _check_alive(self, state: MeshState) -> None:
        for name, rec in state.processes.items():
            if not procs.alive(rec):
                raise UnreachableError(f"{name} (pid {rec.pid}) has exited", procs.tail(rec.log))

    def current_target(self, stage: Stage) -> Target:
        """Where the running mesh answers, without touching it (no config is rewritten)."""
        return self._target(stage, self.run.load())

    def _target(self, stage: Stage, state: MeshState) -> Target:
        return Target(
            service_a_url=SERVICE_A_URL,
            consul_address=state.consul_address or DEFAULT_CONSUL,
            sidecar_admin={i.id: i.envoy_admin_port for i in stage.instances},
            stage=stage.name,
            runtime=self.name,
        )

    # -- down ---------------------------------------------------------------------------
    def down(self, progress: Progress | None = None) -> list[str]:
        """Undo everything ``up`` did; returns warnings (e.g. Consul unreachable for cleanup)."""
        with self.run.locked():
            return self._down_locked(progress or _noop)

    def _down_locked(self, say: Progress) -> list[str]:
        warnings: list[str] = []
        state = self.run.load()
        if state.empty:
            self.run.state_file.unlink(missing_ok=True)
            say("nothing to stop")
            return warnings
        address = state.consul_address or DEFAULT_CONSUL
        with ConsulClient(address, timeout=3.0) as consul:
            if consul.reachable():
                # Keep going on a failed call: the processes must be stopped regardless.
                for key in reversed(state.config_entries):
                    try:
                        consul.delete_config(*key)
                        say(f"removed {key[0]}/{key[1]}")
                    except LoadgenError as exc:
                        warnings.append(f"could not remove {key[0]}/{key[1]}: {exc.message}")
                for sid in state.services:
                    try:
                        consul.deregister_service(f"{sid}-sidecar-proxy")
                        consul.deregister_service(sid)
                        say(f"deregistered {sid}")
                    except LoadgenError as exc:
                        warnings.append(f"could not deregister {sid}: {exc.message}")
            elif state.services or state.config_entries:
                warnings.append(
                    f"Consul at {address} is unreachable: registrations and config entries left as they are"
                )
        state.config_entries.clear()
        state.services.clear()
        # Sidecars first (they depend on Consul), then apps, then the agent we started.
        order = sorted(state.processes.items(), key=lambda kv: (kv[0] == "consul", not kv[0].endswith("-sidecar")))
        for name, rec in order:
            if name == "consul":
                procs.stop(rec)  # the dev agent is a process in every runtime
            else:
                self._stop(rec)
            say(f"stopped {name} ({self._describe(rec)})")
        state.processes.clear()
        self.run.state_file.unlink(missing_ok=True)
        return warnings

    # -- status -------------------------------------------------------------------------
    def status(self) -> MeshStatus:
        state = self.run.load()
        address = state.consul_address or DEFAULT_CONSUL
        components: list[ComponentStatus] = []
        entries: list[dict[str, object]] = []
        with ConsulClient(address, timeout=2.0) as consul:
            reachable = consul.reachable()
            checks = consul.agent_checks() if reachable else {}
            for name, rec in state.processes.items():
                running = procs.alive(rec)
                kind = "consul" if name == "consul" else "sidecar" if name.endswith("-sidecar") else "app"
                components.append(
                    ComponentStatus(
                        name=name, kind=kind, pid=rec.pid, port=rec.port, running=running,
                        health=_health(name, kind, running, reachable, checks), log=rec.log,
                        ref=self._describe(rec) if rec.container else None,
                    )
                )
            if reachable:
                for kind, name in state.config_entries:
                    live = consul.get_config(kind, name)
                    entries.append({"kind": kind, "name": name, "present": live is not None,
                                    "modify_index": (live or {}).get("ModifyIndex")})
        return MeshStatus(
            stage=state.stage, runtime=self.name, consul_address=state.consul_address,
            consul_reachable=reachable, components=components, config_entries=entries,
            problems=self._problems(state, components, reachable),
        )

    def _problems(self, state: MeshState, components: list[ComponentStatus], reachable: bool) -> list[str]:
        """Why a recorded mesh is only half up (none when nothing is recorded: then nothing is up)."""
        if state.empty:
            return []
        stage = self.book.stages.get(state.stage) if state.stage else None
        return half_up_problems(stage, state.stage, components, state.consul_address, reachable)


def _health(name: str, kind: str, running: bool, reachable: bool, checks: dict[str, dict[str, object]]) -> str:
    if not running:
        return "stopped"
    if kind == "consul":
        return "passing" if reachable else "critical"
    service_id = f"{name.removesuffix('-sidecar')}-sidecar-proxy" if kind == "sidecar" else name
    return worst_health([str(c.get("Status")) for c in checks.values() if c.get("ServiceID") == service_id])


def worst_health(statuses: list[str]) -> str:
    """One health from a part's Consul check statuses: the worst of them, "unknown" without any."""
    if not statuses:
        return "unknown"
    for level in ("critical", "warning"):
        if level in statuses:
            return level
    return "passing"
