"""The judge's output: a verdict a person can act on, with the numbers behind it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from loadgen.stats.bands import Tolerance


class VerdictState(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    RUNNING = "RUNNING"  # monitoring: not clear yet, budget left

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class SubsetResult:
    """One subset: what was expected, what was seen, and the interval for its true share."""

    name: str
    expected: float  # fraction
    count: int
    share: float  # observed fraction of classified responses
    lower: float  # interval for the true share (anytime-valid or fixed, see Verdict.method)
    upper: float
    band: tuple[float, float]  # expected +- this subset's half-width (loadgen.stats.bands), clipped to [0, 1]
    status: str  # "inside" (proved within band), "outside" (proved outside), "undecided"


@dataclass(frozen=True)
class GuardResult:
    """A share that must stay small (unknown APP_IDs, errors), judged like a subset."""

    name: str
    count: int
    share: float
    lower: float
    upper: float
    limit: float
    exceeded: bool


@dataclass(frozen=True)
class Segment:
    """Part of a run on one side of a detected change."""

    counts: dict[str, int]
    shares: dict[str, float]
    n: int
    t_start: float | None  # seconds into the run (None when the caller gave no times)
    t_end: float | None


@dataclass(frozen=True)
class ChangeResult:
    """The judge's test of one constant split throughout the run (loadgen.stats.change)."""

    detected: bool
    log_evidence: float  # log E; the change is proved when it reaches log_threshold
    log_threshold: float
    at_t: float | None = None  # where the most likely change point is
    at_n: int | None = None
    before: Segment | None = None
    after: Segment | None = None


@dataclass(frozen=True)
class FlapResult:
    """The judge's test of one constant split against a split that moves back and forth
    (loadgen.stats.flapping): the evidence, and where it was proved the shares seen over windows."""

    detected: bool
    log_evidence: float  # log E; the movement is proved when it reaches log_threshold
    log_threshold: float
    holding: bool = False  # evidence at least 1:1 short of proof: a PASS waits (decide.FLAP_HOLD_LOG_EVIDENCE)
    window: int | None = None  # responses per window of the grid that carries the most evidence
    windows: int | None = None  # windows of that grid the shares below are taken over
    window_s: float | None = None  # their mean duration in seconds (None when the caller gave no times)
    crossings: int | None = None  # times the most-moving share crossed the middle of its range, window to window
    low: dict[str, float] | None = None  # per subset: the lowest share seen in one window
    high: dict[str, float] | None = None  # ... and the highest


@dataclass(frozen=True)
class Verdict:
    state: VerdictState
    n: int  # classified responses (the samples the split is judged on)
    subsets: tuple[SubsetResult, ...]
    reason: str
    method: str  # "sequential" or "fixed"
    tolerance: Tolerance
    alpha: float
    srm_p: float | None  # classic chi-square p-value at this n (not valid under peeking)
    srm_p_anytime: float | None = None  # anytime-valid p-value (sequential method only)
    guards: tuple[GuardResult, ...] = field(default_factory=tuple)
    change: ChangeResult | None = None  # sequential method only
    flapping: FlapResult | None = None  # sequential method only

    def moved(self) -> list[SubsetResult]:
        """Subsets whose overall share lies outside the interval the judge decided with (the
        intersection of every look's). Under one constant split that happens only when the
        judge errs; otherwise the split moved during the run, proved by the change test or not."""
        return [s for s in self.subsets if s.count and not s.lower - 5e-4 <= s.share <= s.upper + 5e-4]

    @property
    def decided(self) -> bool:
        return self.state in (VerdictState.PASS, VerdictState.FAIL)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data
