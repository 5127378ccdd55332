"""The run directory: what ``loadgen up`` started and wrote, so ``down`` works from any shell."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.procs import ProcRecord


@dataclass
class MeshState:
    consul_address: str | None = None
    consul_managed: bool = False  # True when we started the agent (and so stop it on down)
    stage: str | None = None
    runtime: str = "process"
    processes: dict[str, ProcRecord] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)  # service ids we registered
    config_entries: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) we wrote
    jobs: list[str] = field(default_factory=list)  # Nomad jobs we submitted (nomad runtime)
    bridge: str | None = None  # the Linux bridge we created (nomad runtime)
    driver: str | None = None  # the Nomad task driver the jobs run with (nomad runtime)

    def to_json(self) -> dict[str, object]:
        return {
            "consul_address": self.consul_address,
            "consul_managed": self.consul_managed,
            "stage": self.stage,
            "runtime": self.runtime,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
            "services": self.services,
            "config_entries": [list(e) for e in self.config_entries],
            "jobs": self.jobs,
            "bridge": self.bridge,
            "driver": self.driver,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> MeshState:
        procs = data.get("processes") or {}
        return cls(
            consul_address=data.get("consul_address"),  # type: ignore[arg-type]
            consul_managed=bool(data.get("consul_managed")),
            stage=data.get("stage"),  # type: ignore[arg-type]
            runtime=str(data.get("runtime") or "process"),
            processes={k: ProcRecord.from_json(v) for k, v in procs.items()},  # type: ignore[union-attr]
            services=list(data.get("services") or []),  # type: ignore[call-overload]
            config_entries=[(str(k), str(n)) for k, n in data.get("config_entries") or []],  # type: ignore[attr-defined]
            jobs=[str(j) for j in data.get("jobs") or []],  # type: ignore[attr-defined]
            bridge=str(data["bridge"]) if data.get("bridge") else None,
            driver=str(data["driver"]) if data.get("driver") else None,
        )

    @property
    def empty(self) -> bool:
        return not (self.processes or self.services or self.config_entries or self.consul_managed or self.jobs
                    or self.bridge)


class RunDir:
    """A directory with state.json, logs/ and a lock so two commands never race."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logs = path / "logs"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def load(self) -> MeshState:
        try:
            return MeshState.from_json(json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return MeshState()
        except (OSError, ValueError, TypeError) as exc:
            raise LoadgenError(f"the run state {self.state_file} is unreadable ({exc}); remove it") from exc

    def save(self, state: MeshState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2))
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / ".lock").open("w") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Not a usage mistake: the command is fine, the machine is busy (exit 5, not 2).
                raise LoadgenError(f"another loadgen command is changing the mesh in {self.path}",
                                   ExitCode.ENVIRONMENT) from None
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
