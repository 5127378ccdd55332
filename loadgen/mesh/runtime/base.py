"""The contract every runtime (process, docker, nomad) fulfils."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from loadgen.mesh.stages import Stage

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    """Where load goes and where its effects can be observed."""

    service_a_url: str
    consul_address: str
    sidecar_admin: dict[str, int] = field(default_factory=dict)  # instance id -> Envoy admin port
    stage: str | None = None
    runtime: str = "process"


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


class Runtime(Protocol):
    name: str

    def up(self, stage: Stage, progress: Progress | None = None) -> Target: ...

    def down(self, progress: Progress | None = None) -> list[str]: ...

    def status(self) -> MeshStatus: ...
