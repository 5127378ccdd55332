"""From per-subset intervals to a verdict: the rule both judges share.

Each subset has a band, expected +- its half-width (loadgen.stats.bands). With intervals
that cover every true share at once with probability >= 1 - alpha:

* PASS when every subset's interval lies inside its band: a true share outside its band
  would have to lie outside its interval;
* FAIL when some subset's interval lies wholly outside its band (or a subset expected at 0
  received anything at all, or a guard share is exceeded, or the split is proved to have
  changed during the run);
* otherwise not yet clear (RUNNING) or, with no budget left, INCONCLUSIVE.

So each wrong verdict needs a miscovering interval or a false alarm: alpha is shared out
between them (SPLIT_, GUARD_ and CHANGE_ALPHA_SHARE), so the chance of any false FAIL stays
<= alpha in total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadgen.stats.bands import Tolerance, band_of, format_band, half_widths
from loadgen.stats.spec import SpecError, SplitSpec
from loadgen.stats.verdict import ChangeResult, FlapResult, GuardResult, SubsetResult, Verdict, VerdictState

# How alpha is shared out: most to the split, the rest to the two guards (unknown APP_IDs,
# errors) and to the two tests of an unsteady split, which share 5 %: one change point
# (loadgen.stats.change) and a split that moves back and forth (loadgen.stats.flapping).
SPLIT_ALPHA_SHARE = 0.85
GUARD_ALPHA_SHARE = 0.05  # each of the two guards
CHANGE_ALPHA_SHARE = 0.025
FLAP_ALPHA_SHARE = 0.025
# A FAIL mentions change evidence from 20:1 on, short of proof: a hint where to look, not a claim.
HINT_LOG_EVIDENCE = math.log(20)
# No PASS while the flapping test's evidence is at least this. The split's intervals are
# intersected across looks: when the split moves back and forth, an interval from a high
# stretch and one from a low stretch intersect in a sliver that can lie inside the band, and
# the judge would PASS a split that never held -- long before the flapping test has its proof.
# Holding costs nothing in validity (every interval and test stays anytime-valid, a PASS only
# comes later) and almost nothing at a constant split, where the evidence sinks well below 1:1.
FLAP_HOLD_LOG_EVIDENCE = 0.0


ZERO_LIMIT_CENTER = 0.001  # where a guard with limit 0 centres its interval's mixture (display only)


def guard_exceeded(count: int, lower: float, limit: float) -> bool:
    """A guard is broken when its share is proved above the limit; a limit of 0 means none at
    all, and one occurrence proves that broken without any statistics."""
    return count > 0 if limit == 0 else lower > limit


def _guard_sentence(g: GuardResult) -> str:
    of = "requests" if g.name == "errors" else "responses"
    if g.limit == 0:
        one = g.count == 1
        return f"{g.count:,} {of[:-1] if one else of} {'was' if one else 'were'} {g.name} (none allowed)"
    return f"{_pct(g.share)} of {of} were {g.name} (at least {_pct(g.lower)}; limit {_pct(g.limit)})"


@dataclass(frozen=True)
class JudgeConfig:
    """What the user asks of the judge (fractions, not percent). ``tolerance`` may be a plain
    fraction (absolute points, 0.02 = 2 points) or a :class:`Tolerance`."""

    tolerance: Tolerance | float = 0.02
    alpha: float = 0.01
    max_unknown: float = 0.01  # share of responses from APP_IDs no subset claims
    max_errors: float = 0.05  # share of requests without a usable answer

    def __post_init__(self) -> None:
        if not isinstance(self.tolerance, Tolerance):
            object.__setattr__(self, "tolerance", Tolerance(float(self.tolerance)))
        if not 0 < self.alpha < 0.5:
            raise SpecError(f"confidence must be between 50 and 100 %, got {(1 - self.alpha) * 100:g}")
        for name, value in (("max unknown share", self.max_unknown), ("max error share", self.max_errors)):
            # 0 is allowed and means none at all: one occurrence then proves the limit broken.
            if not 0 <= value < 1:
                raise SpecError(f"{name} must be at least 0 and below 100 %, got {value * 100:g}")

    @property
    def band_tolerance(self) -> Tolerance:
        assert isinstance(self.tolerance, Tolerance)
        return self.tolerance

    def half_widths(self, spec: SplitSpec) -> tuple[float, ...]:
        return half_widths(spec.weights, self.band_tolerance)

    def split_alpha_each(self, k: int) -> float:
        """alpha for each subset's interval: Bonferroni over k subsets (k = 2 is one share)."""
        return self.alpha * SPLIT_ALPHA_SHARE / (1 if k == 2 else k)

    @property
    def guard_alpha(self) -> float:
        return self.alpha * GUARD_ALPHA_SHARE

    @property
    def change_alpha(self) -> float:
        return self.alpha * CHANGE_ALPHA_SHARE

    @property
    def flap_alpha(self) -> float:
        return self.alpha * FLAP_ALPHA_SHARE


def subset_status(expected: float, count: int, lower: float, upper: float, band: tuple[float, float]) -> str:
    if expected == 0 and count > 0:
        return "outside"  # no tolerance for traffic to a subset that should get none
    lo, hi = band
    if upper < lo or lower > hi:
        return "outside"
    if lower >= lo and upper <= hi:
        return "inside"
    return "undecided"


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


def _num_fine(x: float) -> str:
    """Small shares need more digits: 0.31, not 0.3 (percent, without the sign)."""
    return f"{x * 100:.2f}" if x < 0.1 else f"{x * 100:.1f}"


def _pct_fine(x: float) -> str:
    return f"{_num_fine(x)} %"


def _starved(s: SubsetResult) -> bool:
    return s.expected > 0 and s.upper < s.band[0] and s.share < s.expected / 2


def _subset_sentence(s: SubsetResult, n: int) -> str:
    if s.expected == 0 and s.count > 0:
        return f"{s.name} should get no traffic but answered {s.count} of the requests ({_pct(s.share)})"
    seen = "no response at all" if s.count == 0 else f"{_pct_fine(s.share)}"
    if _starved(s):
        # Starved (a dead canary is the case this exists for): say it in counts.
        return (f"{s.name} gets {seen}: it has answered {s.count:,} of {n:,} requests, "
                f"expected {s.expected * 100:.4g} % (band {format_band(s.band)}; "
                f"true share at most {_pct_fine(s.upper)})")
    # The band itself, not weight +- a half-width: a band clipped at 0 or 1 has no single half-width.
    return (
        f"{s.name} gets {seen} (true share {_num_fine(s.lower)}-{_pct_fine(s.upper)}), "
        f"expected {s.expected * 100:.4g} % (band {format_band(s.band)})"
    )


def _shares_text(shares: dict[str, float]) -> str:
    return "/".join(f"{share * 100:.1f}" for share in shares.values())


def change_sentence(change: ChangeResult, names: tuple[str, ...]) -> str:
    assert change.before is not None and change.after is not None
    where = f"t ≈ {change.at_t:.1f} s" if change.at_t is not None else f"response {change.at_n:,}"
    label = "/".join(names)
    return (f"the split changed during the run at {where}: before {_shares_text(change.before.shares)}, "
            f"after {_shares_text(change.after.shares)} ({label}; {change.before.n:,} and {change.after.n:,} "
            "responses)")


def flap_sentence(flap: FlapResult, names: tuple[str, ...]) -> str:
    assert flap.low is not None and flap.high is not None
    ranges = ", ".join(f"{name} {_num_fine(flap.low[name])}-{_pct_fine(flap.high[name])}" for name in names)
    span = f" (~{flap.window_s:.1f} s each)" if flap.window_s is not None else ""
    # Two or more crossings of the middle of the range, window to window, are back and forth;
    # one is a move (the proof is the same: the windows do not share one split).
    back_and_forth = (flap.crossings or 0) >= 2
    look_for = ("two writers fighting over the splitter, or client sidecars on different config versions"
                if back_and_forth else "a write to the splitter during the run, two writers fighting over it, or "
                "client sidecars on different config versions")
    return (f"the split {'moved back and forth' if back_and_forth else 'moved'} during the run: over "
            f"{flap.windows} windows of ~{flap.window:,} responses{span} the shares ranged {ranges} (evidence "
            f"{math.exp(flap.log_evidence):,.0f}:1 against one constant split); look for {look_for}")


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
    change: ChangeResult | None = None,
    flapping: FlapResult | None = None,
) -> Verdict:
    n = sum(counts)
    subsets = []
    widths = config.half_widths(spec)
    for name, w, h, c, (lo, hi) in zip(spec.names, spec.weights, widths, counts, intervals, strict=True):
        band = band_of(w, h)
        subsets.append(
            SubsetResult(
                name=name, expected=w, count=c, share=c / n if n else 0.0, lower=lo, upper=hi,
                band=band, status=subset_status(w, c, lo, hi, band),
            )
        )
    conf = f"{(1 - config.alpha) * 100:.4g} % confidence"
    outside = [s for s in subsets if s.status == "outside"]
    if spec.k == 2 and any(_starved(s) for s in outside):
        outside = [s for s in outside if _starved(s)]  # its twin's sentence only mirrors it
    exceeded = [g for g in guards if g.exceeded]
    changed = change is not None and change.detected
    flapped = flapping is not None and flapping.detected
    if changed or flapped or outside or exceeded:
        state = VerdictState.FAIL
        # A proved change or movement comes first: the per-subset intervals then describe no
        # split that ever existed, so their sentences would mislead.
        parts = [change_sentence(change, spec.names)] if changed else []
        parts += [flap_sentence(flapping, spec.names)] if flapped else []
        if not parts:
            parts = [_subset_sentence(s, n) for s in outside]
        parts += [_guard_sentence(g) for g in exceeded]
        # Name subsets that never answered even when the proof came from elsewhere (often
        # the errors): a missing subset is what the person needs to hear first.
        parts += [
            f"{s.name} has not answered once (expected {s.expected * 100:.4g} %)"
            for s in subsets if s.count == 0 and s.expected > 0 and s not in outside
        ]
        if not changed and change is not None and change.log_evidence >= HINT_LOG_EVIDENCE:
            parts.append(f"the split also looks unsteady over time (evidence {math.exp(change.log_evidence):,.0f}:1 "
                         f"against one constant split; {math.exp(change.log_threshold):,.0f}:1 would prove a change)")
        if not flapped and flapping is not None and flapping.log_evidence >= HINT_LOG_EVIDENCE:
            parts.append(f"the split also looks to move back and forth (evidence "
                         f"{math.exp(flapping.log_evidence):,.0f}:1 against one constant split; "
                         f"{math.exp(flapping.log_threshold):,.0f}:1 would prove it)")
        reason = "; ".join(parts) + f" ({conf}, n={n})"
    elif all(s.status == "inside" for s in subsets) and not (flapping is not None and flapping.holding):
        state = VerdictState.PASS
        bands = ", ".join(f"{s.name} {format_band(s.band)}" for s in subsets)
        reason = f"every subset is within its band ({bands}) ({conf}, n={n})"
    else:
        state = VerdictState.INCONCLUSIVE if final else VerdictState.RUNNING
        open_ = [s for s in subsets if s.status == "undecided"]
        lead = "budget ran out before the verdict was clear" if final else "not clear yet"
        if open_:
            worst = max(open_, key=lambda s: s.upper - s.lower)
            reason = (
                f"{lead}: {worst.name}'s true share is {_num_fine(worst.lower)}-{_pct_fine(worst.upper)}, "
                f"which overlaps the edge of its band {format_band(worst.band)} (n={n})"
            )
        else:
            assert flapping is not None
            reason = (f"{lead}: every subset is within its band, but the split may be moving back and forth "
                      f"(evidence {math.exp(flapping.log_evidence):,.1f}:1 against one constant split; "
                      f"{math.exp(flapping.log_threshold):,.0f}:1 would prove it) (n={n})")
        if final:
            reason += "; send more requests (a longer run) or widen the tolerance"
    return Verdict(
        state=state, n=n, subsets=tuple(subsets), reason=reason, method=method,
        tolerance=config.band_tolerance, alpha=config.alpha, srm_p=srm_p, srm_p_anytime=srm_p_anytime,
        guards=tuple(guards), change=change, flapping=flapping,
    )
