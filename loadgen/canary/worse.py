"""Is the canary worse than the baseline? The latency and error comparisons of one canary run,
beside its split verdict, from the same send-ordered samples.

The splitter sends each request to a subset at random, so every subset's answers are a
randomized sample of the same traffic at the same moments: the baseline is a fair control
without deploying one. :class:`WorseTally` keeps, per subset, latencies in bins and error
counts (a failed request is a latency of +inf: never a fast answer); requests whose subset
nothing names (a timeout, a refused connection) are kept apart and counted as the worst case
by each verdict (stats/latency_compare.py). :class:`WorseCheck` judges them at each look.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from loadgen.errors import UsageError
from loadgen.load.engine import LATE_MS, MAX_LATE_SHARE
from loadgen.load.prefix_buckets import BucketCounts
from loadgen.load.sample import Sample
from loadgen.stats.error_compare import ErrorComparison, ErrorCounts, ErrorJudge, share_alpha
from loadgen.stats.latency_bins import LatencyBins
from loadgen.stats.latency_compare import LatencyComparison, LatencyJudge, LatencyMargin, parse_quantile
from loadgen.stats.latency_plan import LatencyPlan, plan_latency
from loadgen.stats.spec import SplitSpec
from loadgen.stats.verdict import Verdict, VerdictState

DEFAULT_LATENCY_MARGIN = "10%"


@dataclass(frozen=True)
class WorseOptions:
    """What --latency, --latency-margin, --error-margin and --baseline asked for."""

    baseline: str
    latency_level: float | None = None
    latency_margin: LatencyMargin | None = None
    error_margin: float | None = None  # a share: 0.005 for --error-margin 0.5 (points)

    @property
    def latency(self) -> bool:
        return self.latency_level is not None

    @property
    def errors(self) -> bool:
        return self.error_margin is not None

    @staticmethod
    def _parts(latency: str | None, latency_margin: str | None, error_margin: str | None,
               baseline: str | None) -> tuple[float | None, LatencyMargin | None, float | None] | None:
        """The options' own checks, which need no subset names; None when no comparison is asked."""
        if latency is None and error_margin is None:
            for given, name in ((latency_margin, "--latency-margin"), (baseline, "--baseline")):
                if given is not None:
                    raise UsageError(f"{name} compares the canary with the baseline: give --latency (e.g. p99) "
                                     "or --error-margin with it")
            return None
        try:
            if latency_margin is not None and latency is None:
                raise ValueError("--latency-margin needs --latency (e.g. --latency p99)")
            level = parse_quantile(latency) if latency is not None else None
            margin = LatencyMargin.parse(latency_margin or DEFAULT_LATENCY_MARGIN) if level is not None else None
            errors = _points(error_margin) if error_margin is not None else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return level, margin, errors

    @classmethod
    def check(cls, latency: str | None, latency_margin: str | None, error_margin: str | None,
              baseline: str | None) -> None:
        """What can be checked before the subsets are known (--expect consul reads them later)."""
        cls._parts(latency, latency_margin, error_margin, baseline)

    @classmethod
    def parse(cls, spec: SplitSpec, latency: str | None, latency_margin: str | None, error_margin: str | None,
              baseline: str | None) -> WorseOptions | None:
        """None when none of them was given (the canary judges its split only, as before)."""
        parts = cls._parts(latency, latency_margin, error_margin, baseline)
        if parts is None:
            return None
        level, margin, errors = parts
        names = list(spec.names)
        chosen = baseline if baseline is not None else max(names, key=spec.weight)
        if chosen not in names:
            raise UsageError(f"--baseline {chosen[:40]!r} is not a subset of --expect ({', '.join(names)})")
        if all(spec.weight(n) <= 0 for n in names if n != chosen):
            raise UsageError("every other subset is expected at 0 %: there is no canary to compare with the baseline")
        return cls(chosen, level, margin, errors)


def _points(text: str) -> float:
    try:
        value = float(text.strip().rstrip("%").strip())
    except ValueError:
        value = float("nan")
    if not 0 < value < 100:  # NaN fails too
        raise ValueError(f"--error-margin {text[:40]!r}: points of error rate above 0 and below 100 (e.g. 0.5)")
    return value / 100


@dataclass
class WorseTally:
    """Per subset of the spec: latency bins and error counts, plus the failures nothing attributes."""

    names: Sequence[str]
    bins: dict[str, LatencyBins] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    unattributed: int = 0
    judged: int = 0  # every sample added, whatever its subset
    late: int = 0  # of those, sent more than LATE_MS after their intended start

    def __post_init__(self) -> None:
        for name in self.names:
            self.bins.setdefault(name, LatencyBins())
            self.requests.setdefault(name, 0)
            self.errors.setdefault(name, 0)

    def add(self, sample: Sample, subset: str | None) -> None:
        """``subset``: what the APP_ID map makes of the sample's APP_ID (a failed answer that still
        names its instance, e.g. service-b's 500, is that subset's failure)."""
        self.judged += 1
        if sample.sent_late_ms > LATE_MS:
            self.late += 1
        if subset not in self.bins and sample.ok:
            return  # an answer from outside the spec: the split verdict deals with it
        if sample.ok and sample.latency_ms is not None:
            self.requests[subset] += 1
            self.bins[subset].add_one(sample.latency_ms / 1000)
        else:
            self._count_failed(subset, 1)

    def _count_failed(self, subset: str | None, n: int) -> None:
        """The one attribution rule for failures, per sample or merged: a failure that names a
        subset of the spec is that subset's; any other cannot be attributed (each comparison
        takes it as its worst case)."""
        if subset in self.bins:
            self.requests[subset] += n
            self.errors[subset] += n
            self.bins[subset].add_failed(n)
        else:
            self.unattributed += n

    @classmethod
    def from_buckets(cls, names: Sequence[str], counts: BucketCounts,
                     subset_of: Callable[[str], str | None]) -> WorseTally:
        """The same tally from send-ordered buckets merged across processes (Locust's workers):
        ``subset_of`` maps an APP_ID to its subset of the spec, None outside it. The bins add up
        exactly; the senders' lateness is not known there (a closed loop has none)."""
        tally = cls(names)
        for app_id, bins in counts.latency.items():
            subset = subset_of(app_id)
            if subset in tally.bins:
                target = tally.bins[subset].counts
                for index, n in bins.items():
                    target[index] += n
                tally.requests[subset] += sum(bins.values())
        named_failures = 0
        for app_id, n in counts.failed.items():
            named_failures += n
            tally._count_failed(subset_of(app_id), n)
        # Failures no answer named (a timeout, a refused connection) and the answers without a latency.
        tally.unattributed += max(0, counts.errors - named_failures)
        tally.judged = sum(counts.app_ids.values()) + counts.errors
        return tally

    def error_counts(self) -> dict[str, ErrorCounts]:
        return {n: ErrorCounts(self.requests[n], self.errors[n]) for n in self.names}

    def lateness(self) -> str | None:
        """Why these samples' latencies cannot be trusted, if they cannot: more than MAX_LATE_SHARE
        of them were sent late, so a common generator delay is in every subset's latencies and
        pulls their ratio towards 1 (a slower canary would look like the baseline)."""
        if self.judged and self.late / self.judged > MAX_LATE_SHARE:
            return (f"the generator could not keep the asked rate ({self.late / self.judged:.1%} of the judged "
                    f"requests were sent more than {LATE_MS:g} ms late, limit {MAX_LATE_SHARE:.0%})")
        return None


@dataclass(frozen=True)
class WorseResult:
    state: VerdictState  # FAIL if any comparison FAILs, PASS if all PASS
    reason: str
    latency: list[LatencyComparison]
    errors: list[ErrorComparison]

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value, "reason": self.reason,
            "latency": [_latency_json(c) for c in self.latency],
            "errors": [_error_json(c) for c in self.errors],
        }


def _ms(seconds: float) -> float | None:
    return None if seconds == float("inf") else round(seconds * 1000, 3)


def _latency_json(c: LatencyComparison) -> dict[str, Any]:
    return {
        "quantile": c.quantile, "subset": c.subset, "baseline": c.baseline, "verdict": c.state.value,
        "reason": c.reason,
        "canary_ms": [_ms(c.canary.lower_s), _ms(c.canary.upper_s)],
        "baseline_ms": [_ms(c.base.lower_s), _ms(c.base.upper_s)],
        "ratio": [round(c.ratio_lower, 4), None if c.ratio_upper == float("inf") else round(c.ratio_upper, 4)],
        "requests": c.canary.n, "baseline_requests": c.base.n,
    }


def _error_json(c: ErrorComparison) -> dict[str, Any]:
    return {
        "subset": c.subset, "baseline": c.baseline, "verdict": c.state.value, "reason": c.reason,
        "rate": round(c.rate, 6), "rate_interval": [round(c.rate_lower, 6), round(c.rate_upper, 6)],
        "baseline_rate": round(c.base_rate, 6), "baseline_interval": [round(c.base_lower, 6), round(c.base_upper, 6)],
    }


class WorseCheck:
    """The latency and error comparisons asked for, judged at each look."""

    def __init__(self, options: WorseOptions, names: Sequence[str], latency_alpha: float, error_alpha: float) -> None:
        self.options = options
        self._latency = (LatencyJudge(options.latency_level, options.latency_margin or LatencyMargin.parse("10%"),
                                      options.baseline, names, latency_alpha)
                         if options.latency_level is not None else None)
        self._errors = (ErrorJudge(options.error_margin, options.baseline, names, error_alpha)
                        if options.error_margin is not None else None)
        # A comparison keeps the first PASS or FAIL it reaches: its sequences hold at every look
        # at once, so stopping at the first decision is what the guarantee covers (later looks,
        # e.g. the final one with the requests that were in flight, cannot undo it).
        self._decided: dict[tuple[str, str], Any] = {}

    def _sticky(self, kind: str, comparisons: list[Any]) -> list[Any]:
        out = []
        for c in comparisons:
            key = (kind, c.subset)
            if key not in self._decided and c.state in (VerdictState.PASS, VerdictState.FAIL):
                self._decided[key] = c
            out.append(self._decided.get(key, c))
        return out

    def look(self, tally: WorseTally, final: bool = False, untrusted_latency: str | None = None) -> WorseResult:
        """``untrusted_latency``: why the run's latencies cannot be trusted, seen from outside the
        judged samples (the generator's health over the whole run: requests dropped at the stop,
        its CPU). While the judged samples were sent late (:meth:`WorseTally.lateness`) or
        ``untrusted_latency`` is given, no latency comparison is decided: what is undecided stays
        RUNNING, INCONCLUSIVE at the final look, with that reason. A comparison decided at an
        earlier look, on samples sent on time, stands: the samples it was decided on are what the
        guarantee covers, and requests dropped after it were never part of them."""
        doubt = tally.lateness() or untrusted_latency
        latency = self._latency.look(tally.bins, tally.unattributed, final) if self._latency else []
        if doubt:
            undecided = VerdictState.INCONCLUSIVE if final else VerdictState.RUNNING
            latency = [self._decided.get(("latency", c.subset))
                       or replace(c, state=undecided, reason=f"latency not judged: {doubt}") for c in latency]
        else:
            latency = self._sticky("latency", latency)
        errors = self._sticky("errors", self._errors.look(tally.error_counts(), tally.unattributed, final)
                              if self._errors else [])
        states = [c.state for c in [*latency, *errors]]
        reasons = [c.reason for c in [*latency, *errors] if c.state is not VerdictState.PASS]
        return WorseResult(_combine(states, final), _first_failing(latency, errors, reasons), latency, errors)


def _combine(states: list[VerdictState], final: bool) -> VerdictState:
    if VerdictState.FAIL in states:
        return VerdictState.FAIL
    if all(s is VerdictState.PASS for s in states):
        return VerdictState.PASS
    return VerdictState.INCONCLUSIVE if final else VerdictState.RUNNING


def _first_failing(latency: list[LatencyComparison], errors: list[ErrorComparison], others: list[str]) -> str:
    for c in [*latency, *errors]:
        if c.state is VerdictState.FAIL:
            return c.reason
    if others:
        return others[0]
    return "; ".join(c.reason for c in [*latency, *errors])


def with_comparisons(split: Verdict, worse: WorseResult | None, final: bool) -> Verdict:
    """The canary's one verdict: FAIL if the split or any comparison FAILs, PASS only when the
    split and every comparison PASS; otherwise still running (INCONCLUSIVE at the end), with the
    reason of what is still undecided. The split's own details (bands, intervals) stay as judged."""
    if worse is None or split.state is VerdictState.FAIL:
        return split
    if worse.state is VerdictState.FAIL:
        return replace(split, state=VerdictState.FAIL, reason=worse.reason)
    if worse.state is VerdictState.PASS:
        if split.state is VerdictState.PASS:
            return replace(split, reason=f"{split.reason}; {worse.reason}")
        return split
    if split.state is VerdictState.PASS:
        undecided = VerdictState.INCONCLUSIVE if final else VerdictState.RUNNING
        return replace(split, state=undecided, reason=f"the split passed, but {worse.reason}")
    return split


def latency_plan_for(options: WorseOptions, spec: SplitSpec, alpha: float) -> LatencyPlan | None:
    """The latency verdict's request needs for the smallest canary (stats.latency_plan), when a
    relative margin makes it independent of the latencies' scale; None otherwise."""
    if options.latency_level is None or options.latency_margin is None or options.latency_margin.relative is None:
        return None
    shares = share_alpha(alpha, latency=True, errors=options.errors)
    weights = [spec.weight(n) for n in spec.names if n != options.baseline and spec.weight(n) > 0]
    return plan_latency(options.latency_level, options.latency_margin.relative, min(weights),
                        shares.latency / len(spec.names))


def latency_plan_line(plan: LatencyPlan, can_send: int) -> str:
    """One line for the start of a run or --plan: what the latency verdict needs and whether this run has it."""
    def n(value: int | None) -> str:
        return f"about {value:,}" if value is not None else "more than 50 million"

    q = f"p{plan.level * 100:g}"
    text = (f"latency {q} within {plan.relative_margin:.0%}: {n(plan.pass_n)} requests to PASS an equally fast "
            f"canary at {plan.canary_weight:.4g} of the traffic, {n(plan.fail_n)} to FAIL one "
            f"{2 * plan.relative_margin:.0%} slower (log-normal latencies, sigma {plan.sigma:g}; heavier tails "
            "need more)")
    if plan.pass_n is None or can_send < plan.pass_n:
        return f"warning: {text}; this run can send {can_send:,}: expect the latency part INCONCLUSIVE"
    return text
