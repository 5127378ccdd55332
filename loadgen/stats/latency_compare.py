"""Is the canary slower than the baseline? A quantile of each subset's latency, compared with a
margin, decided anytime-validly from the same randomized traffic.

Each subset's p-quantile has a confidence sequence (quantile_cs.py) at level alpha / k for k
subsets, so all of them hold at every look at once with probability >= 1 - alpha (union
bound). A canary is PASS once its upper end is within the margin of the baseline's lower end,
FAIL once its lower end is beyond the margin of the baseline's upper end: whatever the looks,
a wrong verdict (PASS when the canary's true quantile is beyond the margin, FAIL when it is
within) needs a sequence to miss, so it happens with probability <= alpha.

Requests whose subset is unknown (failed before any answer named a backend) are counted as the
worst case for each verdict: as the canary's failures when proving PASS, as the baseline's when
proving FAIL. Adding failures (latency +inf) can only raise a subset's upper end and lower
end (the rank band grows with n; tests/unit/test_quantile_cs.py checks it), so each verdict
holds whichever subset they really were.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadgen.stats.latency_bins import LatencyBins
from loadgen.stats.quantile_cs import order_ranks
from loadgen.stats.verdict import VerdictState

_QUANTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,4})?)$")
_MARGIN = re.compile(r"^(\d+(?:\.\d+)?)\s*(%|ms|s)$")


def parse_quantile(text: str) -> float:
    """'p99' -> 0.99, 'p99.9' -> 0.999, 'p50' -> 0.5 (p1 .. p99.9999)."""
    m = _QUANTILE.match(text.strip().lower())
    level = float(m.group(1)) / 100 if m else 0.0
    if not 0.0 < level < 1.0:
        raise ValueError(f"{text[:40]!r} is not a quantile: use p50, p90, p99, p99.9, ...")
    return level


@dataclass(frozen=True)
class LatencyMargin:
    """How much slower the canary may be: ``relative`` (0.10 = 10 % above the baseline) or
    ``absolute_s`` (seconds above it)."""

    relative: float | None = None
    absolute_s: float | None = None

    @classmethod
    def parse(cls, text: str) -> LatencyMargin:
        m = _MARGIN.match(text.strip().lower())
        if not m:
            raise ValueError(f"{text[:40]!r} is not a latency margin: use a percentage (10%) or a time (5ms, 0.5s)")
        value, unit = float(m.group(1)), m.group(2)
        if unit == "%":
            if not 0 < value <= 1000:
                raise ValueError(f"latency margin {text[:40]!r}: a percentage above 0 and at most 1000")
            return cls(relative=value / 100)
        seconds = value / 1000 if unit == "ms" else value
        if not 0 < seconds <= 600:
            raise ValueError(f"latency margin {text[:40]!r}: a time above 0 and at most 600 s")
        return cls(absolute_s=seconds)

    def allowed(self, baseline_s: float) -> float:
        """The slowest canary quantile within the margin of a baseline quantile."""
        if self.relative is not None:
            return baseline_s * (1 + self.relative)
        return baseline_s + (self.absolute_s or 0.0)

    def describe(self) -> str:
        if self.relative is not None:
            return f"{self.relative * 100:g} %"
        return f"{(self.absolute_s or 0.0) * 1000:g} ms"


@dataclass(frozen=True)
class QuantileInterval:
    subset: str
    n: int  # requests judged, failures included
    failed: int
    lower_s: float
    upper_s: float


@dataclass(frozen=True)
class LatencyComparison:
    quantile: str  # "p99"
    subset: str
    baseline: str
    state: VerdictState  # PASS / FAIL / INCONCLUSIVE (RUNNING while the run may go on)
    reason: str
    canary: QuantileInterval
    base: QuantileInterval
    # The canary's quantile over the baseline's, bounded by the two intervals.
    ratio_lower: float
    ratio_upper: float


def _interval(subset: str, bins: LatencyBins, level: float, alpha: float) -> QuantileInterval:
    n = bins.n
    lo_rank, hi_rank = order_ranks(n, level, alpha)
    lower, upper = bins.order_bounds(lo_rank, hi_rank)
    return QuantileInterval(subset, n, bins.failed, lower, upper)


def _ms(seconds: float) -> str:
    return "∞" if math.isinf(seconds) else f"{seconds * 1000:.1f} ms"


def _ratio(num: float, den: float) -> float:
    if den <= 0:
        return math.inf if num > 0 else 1.0
    return num / den


class LatencyJudge:
    """The latency verdict of each non-baseline subset against ``baseline`` at one look."""

    def __init__(self, level: float, margin: LatencyMargin, baseline: str, subsets: Sequence[str],
                 alpha: float) -> None:
        if baseline not in subsets:
            raise ValueError(f"baseline {baseline!r} is not one of the subsets {', '.join(subsets)}")
        self.level, self.margin, self.baseline = level, margin, baseline
        self.subsets = tuple(subsets)
        self.alpha_each = alpha / len(self.subsets)  # one sequence per subset, union bound

    @property
    def name(self) -> str:
        return f"p{self.level * 100:g}"

    def look(self, bins: Mapping[str, LatencyBins], unattributed: int = 0, final: bool = False
             ) -> list[LatencyComparison]:
        """Compare every canary with the baseline; ``unattributed``: failed requests of unknown
        subset. ``final``: no more data will come, so undecided means INCONCLUSIVE."""
        empty = LatencyBins()
        base_bins = bins.get(self.baseline, empty)
        base = _interval(self.baseline, base_bins, self.level, self.alpha_each)
        base_worst = _interval(self.baseline, base_bins.plus_failed(unattributed), self.level, self.alpha_each)
        out = []
        for subset in self.subsets:
            if subset == self.baseline:
                continue
            own = bins.get(subset, empty)
            canary = _interval(subset, own, self.level, self.alpha_each)
            canary_worst = _interval(subset, own.plus_failed(unattributed), self.level, self.alpha_each)
            out.append(self._decide(subset, canary, canary_worst, base, base_worst, final))
        return out

    def _decide(self, subset: str, canary: QuantileInterval, canary_worst: QuantileInterval,
                base: QuantileInterval, base_worst: QuantileInterval, final: bool) -> LatencyComparison:
        q = self.name
        if canary_worst.upper_s <= self.margin.allowed(base.lower_s):
            state = VerdictState.PASS
            reason = (f"{subset}'s {q} is at most {_ms(canary_worst.upper_s)}, within {self.margin.describe()} of "
                      f"{self.baseline}'s (at least {_ms(base.lower_s)})")
        elif canary.lower_s > self.margin.allowed(base_worst.upper_s):
            state = VerdictState.FAIL
            reason = (f"{subset}'s {q} is at least {_ms(canary.lower_s)}, more than {self.margin.describe()} above "
                      f"{self.baseline}'s (at most {_ms(base_worst.upper_s)})")
        else:
            state = VerdictState.INCONCLUSIVE if final else VerdictState.RUNNING
            reason = (f"{subset}'s {q} is between {_ms(canary.lower_s)} and {_ms(canary_worst.upper_s)}, "
                      f"{self.baseline}'s between {_ms(base.lower_s)} and {_ms(base_worst.upper_s)}: "
                      f"not yet decided against a margin of {self.margin.describe()}")
        # Reported: each interval whatever the unknown requests were (low end without them, high with).
        shown = QuantileInterval(subset, canary.n, canary.failed, canary.lower_s, canary_worst.upper_s)
        shown_base = QuantileInterval(self.baseline, base.n, base.failed, base.lower_s, base_worst.upper_s)
        return LatencyComparison(q, subset, self.baseline, state, reason, shown, shown_base,
                                 _ratio(canary.lower_s, base_worst.upper_s), _ratio(canary_worst.upper_s, base.lower_s))
