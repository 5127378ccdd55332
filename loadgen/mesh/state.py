"""The run directory: what ``loadgen up`` started and wrote, so ``down`` works from any shell,
and which commands are borrowing the mesh right now (see :class:`Loan`)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.procs import ProcRecord, is_running, same_start, start_ticks
from loadgen.mesh.runtime.select import RUNTIMES
from loadgen.safe_text import one_line


@dataclass
class Borrower:
    """A command using the local mesh (canary, run, a probe), known by pid *and* start time so
    that a recycled pid is never taken for it and one killed with -9 is seen to be gone."""

    pid: int
    create_time: float
    stage: str
    command: str = "loadgen"
    since: float = 0.0  # wall clock, for people reading `status`
    start_ticks: int | None = None  # its start in clock ticks since boot (see procs.START_SLACK_S)

    @classmethod
    def me(cls, stage: str) -> Borrower:
        # The subcommand's name (`loadgen canary ...` -> "canary"), to tell people who holds the mesh.
        command = next((a for a in sys.argv[1:] if not a.startswith("-")), "loadgen")
        return cls(os.getpid(), psutil.Process().create_time(), stage, command, time.time(), start_ticks(os.getpid()))

    def alive(self) -> bool:
        return is_running(self.pid, self.create_time, self.start_ticks)

    def same(self, other: Borrower) -> bool:
        return self.pid == other.pid and same_start((self.create_time, self.start_ticks),
                                                    (other.create_time, other.start_ticks))

    def describe(self) -> str:
        return f"loadgen pid {self.pid} ({self.command}, stage {self.stage})"

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Borrower:
        ticks = data.get("start_ticks")
        return cls(int(data["pid"]), float(data["create_time"]), str(data["stage"]),  # type: ignore[arg-type]
                   str(data.get("command") or "loadgen"), float(data.get("since") or 0.0),  # type: ignore[arg-type]
                   None if ticks is None else int(ticks))  # type: ignore[call-overload]


@dataclass
class Loan:
    """The mesh lent to commands: who borrows it, and what to put back after the last of them.

    ``found`` is what the FIRST borrower found: a stage, or None when nothing was running. It
    outlives borrowers that die (kill -9): whoever is last restores it, so a killed canary's
    mesh is still taken down by the next one to end.
    """

    found: str | None
    borrowers: list[Borrower] = field(default_factory=list)

    def live(self, besides: Borrower | None = None) -> list[Borrower]:
        return [b for b in self.borrowers if b.alive() and not (besides is not None and b.same(besides))]

    def to_json(self) -> dict[str, object]:
        return {"found": self.found, "borrowers": [asdict(b) for b in self.borrowers]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Loan:
        found = data.get("found")
        return cls(str(found) if found is not None else None,
                   [Borrower.from_json(b) for b in data.get("borrowers") or []])  # type: ignore[attr-defined]


def describe_borrowers(borrowers: list[Borrower]) -> str:
    return ", ".join(b.describe() for b in borrowers)


def in_use_error(live: list[Borrower]) -> LoadgenError:
    first = live[0]
    return LoadgenError(
        f"the local mesh is in use by loadgen pid {first.pid} ({first.command}) at stage {first.stage}"
        + (f" (and {len(live) - 1} more)" if len(live) > 1 else "") + "; wait for it or use --target",
        ExitCode.ENVIRONMENT,
    )


def join(state: MeshState, me: Borrower) -> bool:
    """Register ``me`` as a borrower of the mesh in ``state`` at ``me.stage``.

    Returns True when the mesh is at that stage already (used as it is), False when the caller
    must bring the stage up. Raises (exit 5) rather than switch the stage under a live borrower
    that uses another one. Dead borrowers are dropped; what the first one found is kept.
    """
    live = state.loan.live(besides=me) if state.loan else []
    if live and (any(b.stage != me.stage for b in live) or state.stage != me.stage):
        raise in_use_error(live)
    if state.loan is None:
        state.loan = Loan(found=None if state.empty else state.stage)
    # A stale entry of this very process (a give-back that failed) is replaced, not a rival.
    state.loan.borrowers = [*live, me]
    return not state.empty and state.stage == me.stage


@dataclass(frozen=True)
class GiveBack:
    """What a borrower leaving the mesh must do (see :func:`leave`)."""

    others: list[Borrower]  # live borrowers still using it: leave it as it is
    restore: bool  # last one out: put back ``found``
    found: str | None  # the stage to put back; None = take the mesh down
    taken_away: bool = False  # `down --force` or a user's `up` took the mesh over meanwhile


def leave(state: MeshState, me: Borrower) -> GiveBack:
    """Take ``me`` off the borrowers in ``state``; says what to do with the mesh.

    When others remain, ``me`` is removed here. The last one keeps its entry until it has
    restored the mesh (then :func:`returned` clears the loan): if it dies half way, the next
    borrower sees it dead and inherits the duty.
    """
    loan = state.loan
    if loan is None or not any(b.same(me) for b in loan.borrowers):
        return GiveBack(others=[], restore=False, found=None, taken_away=True)
    others = loan.live(besides=me)
    if others:
        loan.borrowers = others
        return GiveBack(others=others, restore=False, found=loan.found)
    return GiveBack(others=[], restore=True, found=loan.found)


def returned(state: MeshState) -> None:
    """The last borrower has put the mesh back: it belongs to whoever brought it up again."""
    state.loan = None


def user_took_over(state: MeshState, stage: str) -> None:
    """A person ran `up --stage STAGE`: that is what the mesh should be once borrowers are done."""
    if state.loan is None:
        return
    if state.loan.live():
        state.loan.found = stage
    else:
        state.loan = None


@dataclass
class MeshState:
    consul_address: str | None = None
    consul_managed: bool = False  # True when we started the agent (and so stop it on down)
    secure: bool = False  # `up --secure`: ACLs default-deny + TLS, credentials in the run directory's secure/
    stage: str | None = None
    runtime: str = "process"
    processes: dict[str, ProcRecord] = field(default_factory=dict)
    services: list[str] = field(default_factory=list)  # service ids we registered
    config_entries: list[tuple[str, str]] = field(default_factory=list)  # (kind, name) we wrote
    # What the runtime started that the fields above do not describe, owned and typed by that
    # runtime (the nomad runtime's NomadRecord: jobs, bridge). A truthy value means something
    # is up, so the state is not empty.
    runtime_state: dict[str, Any] = field(default_factory=dict)
    # How the runtime was brought up (the nomad runtime's task driver): settings, not parts.
    runtime_options: dict[str, str] = field(default_factory=dict)
    loan: Loan | None = None  # commands borrowing the mesh (canary, run, probes) and what to put back

    def to_json(self) -> dict[str, object]:
        return {
            "consul_address": self.consul_address,
            "consul_managed": self.consul_managed,
            "secure": self.secure,
            "stage": self.stage,
            "runtime": self.runtime,
            "processes": {k: v.to_json() for k, v in self.processes.items()},
            "services": self.services,
            "config_entries": [list(e) for e in self.config_entries],
            "runtime_state": self.runtime_state,
            "runtime_options": self.runtime_options,
            "loan": self.loan.to_json() if self.loan else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> MeshState:
        procs = data.get("processes") or {}
        return cls(
            consul_address=data.get("consul_address"),  # type: ignore[arg-type]
            consul_managed=bool(data.get("consul_managed")),
            secure=bool(data.get("secure")),
            stage=data.get("stage"),  # type: ignore[arg-type]
            runtime=str(data.get("runtime") or "process"),
            processes={k: ProcRecord.from_json(v) for k, v in procs.items()},  # type: ignore[union-attr]
            services=list(data.get("services") or []),  # type: ignore[call-overload]
            config_entries=[(str(k), str(n)) for k, n in data.get("config_entries") or []],  # type: ignore[attr-defined]
            runtime_state=_runtime_state(data),
            runtime_options=_runtime_options(data),
            loan=Loan.from_json(data["loan"]) if data.get("loan") else None,  # type: ignore[arg-type]
        )

    @property
    def empty(self) -> bool:
        return not (self.processes or self.services or self.config_entries or self.consul_managed
                    or any(self.runtime_state.values()))


# Before runtime_state and runtime_options, the nomad runtime's record was top-level fields
# of state.json: a mesh brought up by an older loadgen is still read (and taken down).
_OLD_RUNTIME_STATE = ("jobs", "bridge")
_OLD_RUNTIME_OPTIONS = ("driver",)


def _runtime_state(data: dict[str, object]) -> dict[str, Any]:
    found = dict(data.get("runtime_state") or {})  # type: ignore[call-overload]
    for key in _OLD_RUNTIME_STATE:
        if data.get(key) and key not in found:
            found[key] = data[key]
    return found


def _runtime_options(data: dict[str, object]) -> dict[str, str]:
    found = {str(k): str(v) for k, v in dict(data.get("runtime_options") or {}).items()}  # type: ignore[call-overload]
    for key in _OLD_RUNTIME_OPTIONS:
        if data.get(key) and key not in found:
            found[key] = str(data[key])
    return found


class RunDir:
    """A directory with state.json, logs/ and a lock so two commands never race."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.logs = path / "logs"
        self._depth = 0  # how deeply this object holds the lock (a borrow holds it around `up`)

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def load(self) -> MeshState:
        """The recorded state (empty when there is none). A file that is not loadgen's record
        (not JSON, not an object, a field of the wrong type, an unknown runtime) is one line,
        exit 2, whatever command reads it."""
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return MeshState()
        except OSError as exc:
            raise LoadgenError(f"the run state {self.state_file} cannot be read ({exc.strerror or exc})") from None
        except ValueError as exc:  # not JSON, or not UTF-8
            raise self._corrupt(f"not JSON: {one_line(str(exc), 120)}") from None
        if not isinstance(data, dict):
            kind = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}.get(
                type(data), "null")
            raise self._corrupt(f"a JSON {kind}, not an object")
        try:
            state = MeshState.from_json(data)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(f"a field has the wrong form: {type(exc).__name__}") from None
        if state.runtime not in RUNTIMES:
            raise self._corrupt(f"runtime {one_line(state.runtime, 40)!r} is not one of {', '.join(RUNTIMES)}")
        return state

    def _corrupt(self, why: str) -> LoadgenError:
        return LoadgenError(f"the run state {self.state_file} is not a state loadgen wrote ({why}); if no mesh "
                            "is up, remove it; else stop what runs by hand first")

    def save(self, state: MeshState) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2))
        os.replace(tmp, self.state_file)

    @contextlib.contextmanager
    def locked(self, wait: float = 0.0, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the run directory's lock; re-entrant for this object (a borrow holds it around
        the `up` it calls). ``wait`` seconds for another command to release it (borrowers queue
        behind a bring-up), else fail at once: a person's `up` or `down` should not hang.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.path.mkdir(parents=True, exist_ok=True)
        lock = self.path / ".lock"
        # "a": opening must not wipe the holder's pid, which is written once the lock is ours.
        with lock.open("a") as fh:
            deadline = time.monotonic() + wait
            told = False
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = self._holder(lock)
                    if time.monotonic() >= deadline:
                        # Not a usage mistake: the command is fine, the machine is busy (exit 5, not 2).
                        raise LoadgenError(f"another loadgen command{holder} is changing the mesh in {self.path}",
                                           ExitCode.ENVIRONMENT) from None
                    if on_wait is not None and not told:
                        on_wait(f"waiting for another loadgen command{holder}, which is changing the local mesh")
                        told = True
                    time.sleep(0.1)
            fh.truncate(0)
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0
                fh.truncate(0)
                fh.flush()
                fcntl.flock(fh, fcntl.LOCK_UN)

    @staticmethod
    def _holder(lock: Path) -> str:
        try:
            pid = lock.read_text().strip()
        except OSError:
            return ""
        return f" (pid {pid})" if pid.isdigit() else ""
