"""The contract every runtime (process, docker, nomad) fulfils: read this file to add one.

A runtime brings a :class:`~loadgen.mesh.stages.Stage` up on this machine and reports on it.
Callers (the commands, :func:`loadgen.mesh.local.borrowed_stage`) use only its public
methods: :meth:`Runtime.up`, :meth:`Runtime.down`, :meth:`Runtime.status`,
:meth:`Runtime.current_target` and :meth:`Runtime.logs`, which :class:`Runtime` implements
once, for every runtime, around the Consul agent (started or reused), the stage's config
entries, the liveness checks and the run directory's bookkeeping.

What a runtime implements are the hooks, marked *hook* below:

- :meth:`Runtime.check_prerequisites` -- is everything it needs here (binaries, root, an engine)?
- :meth:`Runtime.host_ports` -- which host ports the stage's parts will listen on;
- :meth:`Runtime.start_workloads` -- start the apps and their Envoy sidecars, registered in Consul;
- :meth:`Runtime.teardown` -- stop everything it started (and leftovers of a lost run);
- :meth:`Runtime.components` -- a status row per part;
- :meth:`Runtime.part_log` and :meth:`Runtime.check_alive` have defaults for parts recorded as
  processes (override them when a part's log or liveness is elsewhere).

Whatever it runs, a runtime publishes service-a on :data:`SERVICE_A_URL`, its upstream
listener and each sidecar's Envoy admin on the ports the stage file gives, on 127.0.0.1, so
canary, run and the probes work unchanged. Parts are named "<instance id>" and
"<instance id>-sidecar". Shared mechanics live in plain modules the hooks call:
:mod:`loadgen.mesh.runtime.recorded` (recorded parts: ports, liveness, stopping, status rows),
:mod:`loadgen.mesh.runtime.host_parts` (apps and sidecars started on this host).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from loadgen.errors import ExitCode, LoadgenError
from loadgen.interrupts import signals_held
from loadgen.mesh import procs
from loadgen.mesh.state import MeshState, RunDir

if TYPE_CHECKING:
    # The rest is imported where it is used: `loadgen down` with nothing up reads the run state
    # only, and needs no Consul client (httpx), stage files, secure setup or toolchain.
    from loadgen.mesh.consul_api import ConsulClient, ConsulSettings
    from loadgen.mesh.stages import Stage, StageBook

Progress = Callable[[str], None]

# Where service-a answers on every runtime.
SERVICE_A_URL = "http://127.0.0.1:3000/hello_a"


def _noop(_msg: str) -> None:
    pass


@dataclass(frozen=True)
class Target:
    """Where load goes and where its effects can be observed."""

    service_a_url: str
    consul_address: str
    sidecar_admin: dict[str, int] = field(default_factory=dict)  # instance id -> Envoy admin port
    stage: str | None = None
    runtime: str = "process"
    # How to reach its Consul: read-only (canary, watchers) and to write config (probes). None:
    # the consul CLI's environment at consul_address.
    consul_read: ConsulSettings | None = None
    consul_write: ConsulSettings | None = None

    def consul(self, write: bool = False) -> ConsulClient:
        """A client of the mesh's Consul with the right credentials."""
        from loadgen.mesh.consul_api import ConsulClient

        settings = self.consul_write if write else self.consul_read
        return ConsulClient(settings=settings) if settings else ConsulClient(self.consul_address)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    kind: str  # consul, app, sidecar
    pid: int | None
    port: int | None
    running: bool
    health: str  # passing / warning / critical / unknown / stopped
    log: str | None = None
    ref: str | None = None  # what the runtime calls it besides a pid: "container 3f2a…", "alloc 1e07a5c5"


@dataclass(frozen=True)
class MeshStatus:
    stage: str | None
    runtime: str
    consul_address: str | None
    consul_reachable: bool
    components: list[ComponentStatus]
    config_entries: list[dict[str, object]]
    # Why a recorded mesh is only half up beyond a stopped component: no stage (an `up` that
    # never finished), a part of the stage never started, Consul unreachable.
    problems: list[str] = field(default_factory=list)
    # ACLs (on, default policy) and TLS (verified against what), when Consul answered.
    security: str | None = None
    # Whose Consul consul_address is: "the local mesh's", "CONSUL_HTTP_ADDR", "the default address".
    consul_source: str | None = None

    @property
    def up(self) -> bool:
        return bool(self.components) and all(c.running for c in self.components) and not self.problems


def half_up_problems(stage: Stage | None, recorded_stage: str | None, components: list[ComponentStatus],
                     consul_address: str | None, consul_reachable: bool) -> list[str]:
    """What makes a recorded mesh less than its stage, besides parts that stopped.

    Every part is named "<instance id>" or "<instance id>-sidecar" on every runtime, so the
    stage's instances say what must be there.
    """
    problems: list[str] = []
    if recorded_stage is None:
        problems.append("no stage is recorded: an `up` did not finish (run `loadgen up --stage …` or `loadgen down`)")
    elif stage is None:
        problems.append(f"the recorded stage {recorded_stage!r} is not in consul/stages.toml")
    else:
        names = {c.name for c in components}
        problems += [f"{name} of stage {stage.name} is not running (never started)"
                     for inst in stage.instances for name in (inst.id, f"{inst.id}-sidecar") if name not in names]
    if not consul_reachable:
        problems.append(f"Consul at {consul_address or 'the default address'} is unreachable")
    return problems


class Runtime(ABC):
    """Brings stages up on this machine, takes them down and reports on them (see the module
    docstring for the contract: public methods for callers, *hooks* for runtimes)."""

    name: ClassVar[str]  # "process", "docker", "nomad": recorded in the run state

    def __init__(
        self,
        run_dir: RunDir,
        consul_address: str | None = None,
        book: StageBook | None = None,
        live_timeout: float = 90.0,
        keep_on_failure: bool = False,
        secure: bool | None = None,
    ) -> None:
        """``secure``: True for `up --secure` (ACLs default-deny + TLS), False for a plain
        agent, None for whatever the running mesh is (plain when nothing runs)."""
        self.run = run_dir
        self.secure = secure
        self.explicit_consul = consul_address
        self._book = book
        self.live_timeout = live_timeout
        self.keep_on_failure = keep_on_failure

    @property
    def book(self) -> StageBook:
        """The stages (consul/stages.toml), read on first use: `status` and `down` with nothing
        recorded need none."""
        if self._book is None:
            from loadgen.mesh.stages import load_stages

            self._book = load_stages()
        return self._book

    # -- hooks: what a runtime implements ----------------------------------------------------
    @abstractmethod
    def check_prerequisites(self) -> None:
        """*Hook.* Raise a LoadgenError (with the fix) when something this runtime needs besides
        Consul is missing: a binary, root, an engine. Called first, before anything starts."""

    @abstractmethod
    def host_ports(self, stage: Stage) -> list[tuple[int, str]]:
        """*Hook.* The host ports the stage's parts will bind, and what for; `up` refuses
        (exit 5) when one is taken by anything but this mesh."""

    @abstractmethod
    def start_workloads(self, stage: Stage, state: MeshState, consul: ConsulClient, grpc: str, consul_bin: Path,
                        say: Progress) -> None:
        """*Hook.* Start the stage's apps and their Envoy sidecars (or keep those already running),
        registered in Consul, and return once each sidecar's Envoy is LIVE.

        Record what was started in ``state`` and save it (``self.run.save(state)``) as you go,
        inside :func:`loadgen.interrupts.signals_held`, so that `down` can always stop it.
        ``grpc`` is Consul's xDS address, ``consul_bin`` the consul binary. Config entries and
        the liveness checks come after, the same for every runtime.
        """

    @abstractmethod
    def teardown(self, say: Progress) -> list[str]:
        """*Hook.* Undo everything `up` did (the run directory's lock is held); returns warnings.

        Also called by a failed first `up`, and on a run state with nothing recorded (remove
        leftovers of a lost run, or do nothing). It must end with the state file removed;
        :func:`loadgen.mesh.runtime.recorded.stop_recorded` and
        :func:`loadgen.mesh.entries.release` do the common part.
        """

    @abstractmethod
    def components(self, state: MeshState, checks: dict[str, dict[str, object]],
                   consul_reachable: bool) -> list[ComponentStatus]:
        """*Hook.* A status row per part of the recorded mesh; ``checks`` are Consul's agent checks."""

    def part_log(self, rec: procs.ProcRecord, lines: int = 15) -> str:
        """*Hook (default: its log file).* The last ``lines`` of a recorded part's log."""
        return procs.tail(rec.log, lines)

    def check_alive(self, state: MeshState) -> None:
        """*Hook (default: every recorded process runs).* Raise UnreachableError when a part has
        exited, so that waiting for it stops at once."""
        from loadgen.mesh.runtime.recorded import check_alive

        check_alive(state)

    # -- the contract callers use, implemented once -----------------------------------------
    def up(self, stage: Stage, progress: Progress | None = None) -> Target:
        """Bring the mesh to ``stage`` (starting or reusing what runs) and wait until it is live.

        A failed or interrupted first `up` takes down what it started (unless keep_on_failure);
        a failed switch leaves the running mesh for inspection.
        """
        from loadgen.mesh import toolchain
        from loadgen.mesh.consul_agent import check_connect, dev_agent_ports, ensure_consul
        from loadgen.mesh.entries import apply_entries
        from loadgen.mesh.runtime.live import wait_live
        from loadgen.mesh.runtime.recorded import ensure_ports_free
        from loadgen.mesh.secure import SecureFiles, issue_tokens, secure_stage

        say = progress or _noop
        with self.run.locked():
            state = self.run.load()
            previous = self.book.stages.get(state.stage) if state.stage else None
            if self.explicit_consul is None and state.consul_address and not state.consul_managed and not state.empty:
                # The running mesh was brought up with --consul: keep using that agent.
                self.explicit_consul = state.consul_address
            self._choose_security(state)
            if state.secure:
                stage = secure_stage(stage)
                previous = secure_stage(previous) if previous else None
            self.check_prerequisites()
            consul_bin = toolchain.require("consul")
            ensure_ports_free(dev_agent_ports(state, self.explicit_consul) + self.host_ports(stage), state)

            fresh = state.empty
            state.runtime = self.name
            try:
                consul = ensure_consul(self.run, state, self.explicit_consul, consul_bin, say)
                try:
                    grpc = check_connect(consul)
                    if state.secure:
                        issue_tokens(SecureFiles(self.run.path), consul,
                                     sorted({i.service for i in stage.instances}))
                    self.start_workloads(stage, state, consul, grpc, consul_bin, say)
                    apply_entries(self.run, stage, state, consul, say)
                    state.stage = stage.name
                    state.runtime = self.name
                    self.run.save(state)
                    wait_live(stage, previous, consul, self.live_timeout, say,
                              check_alive=lambda: self.check_alive(state),
                              sidecar_log=lambda inst: self._sidecar_log(state, inst))
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
                        self.teardown(_noop if self.run.load().empty else say)
                raise
            return self._target(stage, state)

    def down(self, progress: Progress | None = None) -> list[str]:
        """Undo everything ``up`` did; returns warnings (e.g. Consul unreachable for cleanup)."""
        with self.run.locked():
            return self.teardown(progress or _noop)

    def status(self) -> MeshStatus:
        """Every part (running, health in Consul), the config entries in force, and why a
        recorded mesh is only half up. The Consul asked is the mesh's; with nothing recorded,
        the consul CLI's environment's (CONSUL_HTTP_ADDR, else the default address), named in
        :attr:`MeshStatus.consul_source`. A Consul that answers its leader but refuses the
        rest (an HTTP 500) is a problem named in the status, not an error that hides it."""
        from loadgen.mesh.consul_api import ConsulClient

        state = self.run.load()
        settings, source = self._status_consul(state)
        entries: list[dict[str, object]] = []
        refused: list[str] = []
        checks: dict[str, dict[str, Any]] = {}
        security = None
        with ConsulClient(None, timeout=2.0, settings=settings) as consul:
            reachable = consul.reachable()
            try:
                if reachable:
                    checks = consul.agent_checks()
                    security = consul.describe_security()
                    for kind, name in state.config_entries:
                        live = consul.get_config(kind, name)
                        entries.append({"kind": kind, "name": name, "present": live is not None,
                                        "modify_index": (live or {}).get("ModifyIndex")})
            except LoadgenError as exc:
                refused.append(exc.message)
            components = self.components(state, checks, reachable)
        return MeshStatus(
            stage=state.stage, runtime=self.name, consul_address=consul.address,
            consul_reachable=reachable, components=components, config_entries=entries,
            problems=self._problems(state, components, reachable) + refused, security=security,
            consul_source=source,
        )

    def _status_consul(self, state: MeshState) -> tuple[ConsulSettings, str]:
        """The Consul `status` asks, and whose it is (said in the output)."""
        import os

        from loadgen.mesh.consul_settings import DEFAULT_CONSUL, ConsulSettings

        if not state.empty or state.consul_address:
            address = state.consul_address or DEFAULT_CONSUL
            return self.consul_settings(state, "read").at(address), "the local mesh's"
        # Nothing is up: not a probe of 127.0.0.1:8500 unasked, but the agent the consul CLI would use.
        source = "CONSUL_HTTP_ADDR" if "CONSUL_HTTP_ADDR" in os.environ else "the default address"
        return ConsulSettings.from_env(), source

    def current_target(self, stage: Stage) -> Target:
        """Where the running mesh answers, without touching it (no config is rewritten)."""
        return self._target(stage, self.run.load())

    def logs(self, component: str, lines: int = 40) -> str:
        """The last ``lines`` of ``component``'s log (names as in :meth:`status`); a
        LoadgenError (exit 2) naming the components when there is no such one."""
        state = self.run.load()
        rec = state.processes.get(component)
        if rec is not None:
            return self.part_log(rec, lines) if component != "consul" else procs.tail(rec.log, lines)
        # Parts a scheduler runs (the nomad runtime's tasks) are found through status.
        found = {c.name: c for c in self.status().components} if not state.empty else {}
        if component in found and found[component].log:
            return procs.tail(str(found[component].log), lines)
        known = ", ".join(found or state.processes) or "none (nothing is up)"
        raise LoadgenError(f"no component {component!r} with a log; components: {known}")

    # -- shared by the methods above --------------------------------------------------------
    def _choose_security(self, state: MeshState) -> None:
        """`up --secure` on an empty machine makes a secure mesh, `up` a plain one; a running mesh
        keeps what it is (asking for the other is refused)."""
        if state.empty:
            state.secure = bool(self.secure)  # not what a mesh taken down before was
        elif self.secure is not None and state.secure != self.secure:
            now = "with --secure" if state.secure else "without --secure"
            raise LoadgenError(f"the local mesh is up {now}: `loadgen down` before bringing it up "
                               f"{'with' if self.secure else 'without'} --secure", ExitCode.ENVIRONMENT)
        if state.secure and self.explicit_consul is not None:
            raise LoadgenError("--secure sets up loadgen's own Consul agent; for an agent of yours with ACLs and "
                               "TLS, give its address, token and CA the consul CLI's way (CONSUL_HTTP_ADDR, "
                               "CONSUL_HTTP_TOKEN_FILE, CONSUL_CACERT)")

    def consul_settings(self, state: MeshState, role: str = "management") -> ConsulSettings:
        """How to reach the mesh's Consul as ``role`` (management or read; plain: the environment's)."""
        from loadgen.mesh.secure import mesh_settings

        return mesh_settings(self.run.path, state.secure, state.consul_address, role)

    def _target(self, stage: Stage, state: MeshState) -> Target:
        from loadgen.mesh.consul_settings import DEFAULT_CONSUL

        return Target(
            service_a_url=SERVICE_A_URL,
            consul_address=state.consul_address or DEFAULT_CONSUL,
            sidecar_admin={i.id: i.envoy_admin_port for i in stage.instances},
            stage=stage.name,
            runtime=self.name,
            consul_read=self.consul_settings(state, "read") if state.secure else None,
            consul_write=self.consul_settings(state) if state.secure else None,
        )

    def _sidecar_log(self, state: MeshState, instance: str) -> str | None:
        rec = state.processes.get(f"{instance}-sidecar")
        return self.part_log(rec) if rec is not None else None

    def _problems(self, state: MeshState, components: list[ComponentStatus], reachable: bool) -> list[str]:
        """Why a recorded mesh is only half up (none when nothing is recorded: then nothing is up)."""
        if state.empty:
            return []
        stage = self.book.stages.get(state.stage) if state.stage else None
        return half_up_problems(stage, state.stage, components, state.consul_address, reachable)
