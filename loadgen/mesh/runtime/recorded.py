"""The parts a runtime recorded in the run state (``state.processes``: the Consul dev agent,
the Nomad agent, the process runtime's apps and sidecars, the docker runtime's containers by
their init pid): port ownership, liveness, status rows and stopping them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadgen.errors import EnvironmentProblem, UnreachableError
from loadgen.mesh import procs
from loadgen.mesh.runtime.base import ComponentStatus, Progress
from loadgen.mesh.state import MeshState, RunDir


def describe_pid(rec: procs.ProcRecord) -> str:
    return f"pid {rec.pid}"


def ensure_ports_free(wanted: list[tuple[int, str]], state: MeshState) -> None:
    """Every port we are about to bind must be free, or held by a process of this mesh."""
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


def check_alive(state: MeshState) -> None:
    """Raise (with the end of its log) when a recorded part has exited."""
    for name, rec in state.processes.items():
        if not procs.alive(rec):
            raise UnreachableError(f"{name} (pid {rec.pid}) has exited", procs.tail(rec.log))


def stop_recorded(run: RunDir, state: MeshState, say: Progress,
                  stop: Callable[[procs.ProcRecord], None] = procs.stop,
                  describe: Callable[[procs.ProcRecord], str] = describe_pid) -> None:
    """Stop every recorded part -- sidecars first (they depend on Consul), then apps, then the
    Consul agent we started -- and forget the run state."""
    order = sorted(state.processes.items(), key=lambda kv: (kv[0] == "consul", not kv[0].endswith("-sidecar")))
    for name, rec in order:
        if name == "consul":
            procs.stop(rec)  # the dev agent is a process in every runtime
        else:
            stop(rec)
        say(f"stopped {name} ({describe(rec)})")
    state.processes.clear()
    run.state_file.unlink(missing_ok=True)


def recorded_components(state: MeshState, checks: dict[str, dict[str, Any]], consul_reachable: bool,
                        describe: Callable[[procs.ProcRecord], str] = describe_pid) -> list[ComponentStatus]:
    """A status row per recorded part: running, and its health in Consul."""
    components = []
    for name, rec in state.processes.items():
        running = procs.alive(rec)
        kind = "consul" if name == "consul" else "sidecar" if name.endswith("-sidecar") else "app"
        components.append(
            ComponentStatus(
                name=name, kind=kind, pid=rec.pid, port=rec.port, running=running,
                health=_health(name, kind, running, consul_reachable, checks), log=rec.log,
                ref=describe(rec) if rec.container else None,
            )
        )
    return components


def _health(name: str, kind: str, running: bool, reachable: bool, checks: dict[str, dict[str, Any]]) -> str:
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
