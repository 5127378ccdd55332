"""What a shift did, step by step: the timeline every output (terminal, --json, --junit, HTML)
is made from. Pure data; instants are seconds since the shift started."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen import interrupts
from loadgen.errors import ExitCode
from loadgen.report.junit import TestCase, TestSuite, render

__all__ = ["Look", "PhaseRecord", "ShiftReport", "traffic_followed"]


@dataclass(frozen=True)
class Look:
    """One look of a verification: the shifted subset's observed share and its interval."""

    t: float
    share: float
    lower: float
    upper: float


@dataclass
class PhaseRecord:
    """One step (or the start check, or the rollback): weights asked, when each layer showed them,
    the verification and the gate."""

    name: str  # "start", "step 1", ..., "rollback"
    weights: dict[str, float]  # percent
    started: float
    written: float | None = None  # the write returned (or --apply-cmd exited)
    modify_index: int | None = None
    consul_ms: float | None = None  # Consul's compiled chain showed the weights, ms after the write
    envoy_ms: float | None = None  # every watched client sidecar's route showed them (the slowest)
    envoy_each_ms: dict[str, float] = field(default_factory=dict)  # per client sidecar admin
    traffic_ms: float | None = None  # the watched subset's interval first held the new share and not the old
    verdict: str | None = None  # PASS / FAIL / INCONCLUSIVE of the split judge
    reason: str = ""
    interval: dict[str, list[float]] = field(default_factory=dict)  # subset -> [lower, upper] share
    observed: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    subsets: dict[str, dict[str, Any]] = field(default_factory=dict)  # SubsetHealth.to_json per subset
    gate: dict[str, Any] | None = None
    hold: dict[str, Any] | None = None  # the soak: verdict, gate, requests
    comparisons: dict[str, Any] | None = None  # latency/errors against the baseline (canary --json's)
    looks: list[Look] = field(default_factory=list)
    ended: float | None = None
    passed: bool = False
    failure: str | None = None  # why this phase failed (None: it passed, or it was not finished)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "weights": self.weights, "started_s": _r(self.started), "written_s": _r(self.written),
            "modify_index": self.modify_index, "consul_ms": self.consul_ms, "envoy_ms": self.envoy_ms,
            "envoy_each_ms": self.envoy_each_ms, "traffic_ms": self.traffic_ms,
            "verdict": self.verdict, "reason": self.reason, "observed": self.observed, "interval": self.interval,
            "requests": self.requests, "subsets": self.subsets, "gate": self.gate, "hold": self.hold,
            "comparisons": self.comparisons, "ended_s": _r(self.ended), "passed": self.passed, "failure": self.failure,
            "looks": [[_r(lk.t), round(lk.share, 6), round(lk.lower, 6), round(lk.upper, 6)] for lk in self.looks],
        }


@dataclass
class ShiftReport:
    service: str
    subset: str | None  # the subset the steps give shares to (None: whole splits)
    start: dict[str, float]
    start_entry: dict[str, Any] | None  # the rollback point as found (None: there was no splitter)
    planned: list[dict[str, float]]
    phases: list[PhaseRecord] = field(default_factory=list)
    failure: str | None = None
    signum: int | None = None  # the signal that stopped the shift
    rolled_back: bool | None = None  # None: nothing to roll back (or --no-rollback)
    rollback_note: str | None = None
    concurrent_change: bool = False
    inconclusive_exit: int | None = None  # --inconclusive-exit: the code of a shift stopped only undecided

    @property
    def steps(self) -> list[PhaseRecord]:
        return [p for p in self.phases if p.name.startswith("step ")]

    @property
    def undecided(self) -> bool:
        """The shift stopped only because a step's split was INCONCLUSIVE: its gate held, nothing
        was proved wrong, no one else changed the splitter, and the rollback did not fail (a failed
        rollback leaves the mesh in a state a controller must see as a failure)."""
        if self.signum is not None or self.failure is None or self.concurrent_change or self.rolled_back is False:
            return False
        last = self.steps[-1] if self.steps else None
        return (last is not None and not last.passed and last.verdict == "INCONCLUSIVE"
                and (last.failure or "").startswith("split INCONCLUSIVE"))

    @property
    def exit_code(self) -> int:
        if self.signum is not None:
            return interrupts.exit_code(self.signum)
        if self.failure is not None:
            return self.inconclusive_exit if self.inconclusive_exit is not None and self.undecided else ExitCode.FAIL
        return ExitCode.OK

    @property
    def outcome(self) -> str:
        if self.signum is not None:
            return "interrupted"
        if self.failure is None:
            return "shifted"
        return "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome, "exit_code": int(self.exit_code), "service": self.service,
            "subset": self.subset, "start": self.start, "start_entry": self.start_entry, "planned": self.planned,
            "failure": self.failure, "rolled_back": self.rolled_back, "rollback_note": self.rollback_note,
            "concurrent_change": self.concurrent_change,
            "phases": [p.to_json() for p in self.phases],
        }

    def junit(self) -> str:
        """One testcase per phase (start check, each step, the rollback), so CI shows which step broke."""
        cases = []
        for p in self.phases:
            name = f"{p.name} {'/'.join(f'{w:g}' for w in p.weights.values())}"
            took = (p.ended or p.started) - p.started
            if p.passed:
                cases.append(TestCase(name, "loadgen shift", time_s=took, system_out=p.reason))
            else:
                message = p.failure or ("not finished: " + (self.failure or "the shift was stopped"))
                cases.append(TestCase(name, "loadgen shift", time_s=took, failure=message, failure_type="ShiftStep",
                                      failure_text=p.reason))
        return render(TestSuite("loadgen shift", cases))


def traffic_followed(looks: list[Look], old: float, new: float, written: float | None) -> float | None:
    """Ms after the write when traffic followed: the first look whose interval holds the new share
    (a fraction) and no longer the old one. None when the shares are too close to tell apart in
    the looks taken, or nothing was written."""
    if written is None or old == new:
        return None
    for look in looks:
        if look.lower <= new <= look.upper and not look.lower <= old <= look.upper:
            return round((look.t - written) * 1000, 1)
    return None


def _r(t: float | None) -> float | None:
    return None if t is None else round(t, 3)
