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

    @property
    def up(self) -> bool:
        return bool(self.components) and all(c.running for c in self.components)


class Runtime(Protocol):
    name: str

    def up(self, stage: Stage, progress: Progress | None = None) -> Target: ...

    def down(self, progress: Progress | None = None) -> list[str]: ...

    def status(self) -> MeshStatus: ...
