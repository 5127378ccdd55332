"""From per-subset intervals to a verdict: the rule both judges share.

With intervals that cover every true share at once with probability >= 1 - alpha:

* PASS when every subset's interval lies inside expected +- tolerance: a true share
  more than the tolerance away would have to lie outside its interval;
* FAIL when some subset's interval lies wholly outside expected +- tolerance (or a
  subset expected at 0 received anything at all, or a guard share is exceeded);
* otherwise not yet clear (RUNNING) or, with no budget left, INCONCLUSIVE.

So each wrong verdict needs a miscovering interval: its probability is <= alpha.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.stats.spec import SplitSpec
from loadgen.stats.verdict import GuardResult, SubsetResult, Verdict, VerdictState

# How alpha is shared out: most to the split, the rest to the two guards (unknown
# APP_IDs, errors), so the chance of any false FAIL stays <= alpha in total.
SPLIT_ALPHA_SHARE = 0.9
GUARD_ALPHA_SHARE = 0.05


@dataclass(frozen=True)
class JudgeConfig:
    """What the user asks of the judge (fractions, not percent)."""

    tolerance: float = 0.02
    alpha: float = 0.01
    max_unknown: float = 0.01  # share of responses from APP_IDs no subset claims
    max_errors: float = 0.05  # share of requests without a usable answer

    def __post_init__(self) -> None:
        from loadgen.stats.spec import SpecError

        if not 0 < self.tolerance < 0.5:
            raise SpecError(f"tolerance must be between 0 and 50 percentage points, got {self.tolerance * 100:g}")
        if not 0 < self.alpha < 0.5:
            raise SpecError(f"confidence must be between 50 and 100 %, got {(1 - self.alpha) * 100:g}")
        for name, value in (("max unknown share", self.max_unknown), ("max error share", self.max_errors)):
            if not 0 < value < 1:
                raise SpecError(f"{name} must be between 0 and 100 %, got {value * 100:g}")

    def split_alpha_each(self, k: int) -> float:
        """alpha for each subset's interval: Bonferroni over k subsets (k = 2 is one share)."""
        return self.alpha * SPLIT_ALPHA_SHARE / (1 if k == 2 else k)

    @property
    def guard_alpha(self) -> float:
        return self.alpha * GUARD_ALPHA_SHARE


def band(expected: float, tolerance: float) -> tuple[float, float]:
    return max(0.0, expected - tolerance), min(1.0, expected + tolerance)


def subset_status(expected: float, count: int, lower: float, upper: float, tolerance: float) -> str:
    if expected == 0 and count > 0:
        return "outside"  # no tolerance for traffic to a subset that should get none
    lo, hi = band(expected, tolerance)
    if upper < lo or lower > hi:
        return "outside"
    if lower >= lo and upper <= hi:
        return "inside"
    return "undecided"


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def _subset_sentence(s: SubsetResult, tolerance: float) -> str:
    if s.expected == 0 and s.count > 0:
        return f"{s.name} should get no traffic but answered {s.count} of the requests ({_pct(s.share)})"
    seen = "no response at all" if s.count == 0 else f"{_pct(s.share)}"
    return (
        f"{s.name} gets {seen} (true share {_pct(s.lower)}-{_pct(s.upper)}), "
        f"expected {s.expected * 100:.4g} % +- {tolerance * 100:.4g}"
    )


def decide(
    spec: SplitSpec,
    counts: list[int],
    intervals: list[tuple[float, float]],
    guards: list[GuardResult],
    config: JudgeConfig,
    method: str,
    srm_p: float | None,
    srm_p_anytime: float | None,
    final: bool,
) -> Verdict:
    n = sum(counts)
    subsets = []
    for name, w, c, (lo, hi) in zip(spec.names, spec.weights, counts, intervals, strict=True):
        subsets.append(
            SubsetResult(
                name=name, expected=w, count=c, share=c / n if n else 0.0, lower=lo, upper=hi,
                band=band(w, config.tolerance), status=subset_status(w, c, lo, hi, config.tolerance),
            )
        )
    conf = f"{(1 - config.alpha) * 100:.4g} % confidence"
    outside = [s for s in subsets if s.status == "outside"]
    exceeded = [g for g in guards if g.exceeded]
    if outside or exceeded:
        state = VerdictState.FAIL
        parts = [_subset_sentence(s, config.tolerance) for s in outside]
        parts += [
            f"{_pct(g.share)} of {'requests' if g.name == 'errors' else 'responses'} were {g.name} "
            f"(at least {_pct(g.lower)}; limit {_pct(g.limit)})"
            for g in exceeded
        ]
        # Name subsets that never answered even when the proof came from elsewhere (often
        # the errors): a missing subset is what the person needs to hear first.
        parts += [
            f"{s.name} has not answered once (expected {s.expected * 100:.4g} %)"
            for s in subsets if s.count == 0 and s.expected > 0 and s not in outside
        ]
        reason = "; ".join(parts) + f" ({conf}, n={n})"
    elif all(s.status == "inside" for s in subsets):
        state = VerdictState.PASS
        reason = (
            f"every subset is within +-{config.tolerance * 100:.4g} points of {spec.as_percent()} "
            f"({conf}, n={n})"
        )
    else:
        state = VerdictState.INCONCLUSIVE if final else VerdictState.RUNNING
        open_ = [s for s in subsets if s.status == "undecided"]
        worst = max(open_, key=lambda s: s.upper - s.lower)
        lead = "budget ran out before the verdict was clear" if final else "not clear yet"
        reason = (
            f"{lead}: {worst.name}'s true share is {_pct(worst.lower)}-{_pct(worst.upper)}, "
            f"which overlaps the edge of {_pct(worst.band[0])}-{_pct(worst.band[1])} (n={n})"
        )
        if final:
            reason += "; send more requests (a longer run) or widen the tolerance"
    return Verdict(
        state=state, n=n, subsets=tuple(subsets), reason=reason, method=method,
        tolerance=config.tolerance, alpha=config.alpha, srm_p=srm_p, srm_p_anytime=srm_p_anytime,
        guards=tuple(guards),
    )
