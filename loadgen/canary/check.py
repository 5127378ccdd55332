"""SplitCheck: the canary's core, driven the same way by ``loadgen canary`` (live and replay)
and by the Locust plugin.

It holds the expectation, the judge and the tallies; the driver feeds it samples (or, for
Locust's master, a tally merged from its workers), asks it to :meth:`look` as often as it
likes with the look's time, and builds the :class:`CanaryResult` with :meth:`result`. It
never reads a clock and never sends a request: the driver owns both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from loadgen.canary.expectation import Expectation
from loadgen.canary.result import CanaryResult, latency_by_app_id, warmup_report
from loadgen.canary.split_tally import SplitTally
from loadgen.canary.worse import WorseCheck, WorseOptions, WorseResult, WorseTally, with_comparisons
from loadgen.load.sample import Sample
from loadgen.load.tally import Tally
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import JudgeConfig, SplitSpec, Verdict, make_judge, plan_sample_size
from loadgen.stats.error_compare import share_alpha

__all__ = ["SplitCheck"]

WARMUP_EDGE_S = 1e-9


class SplitCheck:
    def __init__(self, expectation: Expectation, config: JudgeConfig, method: str = "sequential",
                 warmup: float = 0.0, worse: WorseOptions | None = None) -> None:
        """``worse``: compare each canary's latency and/or errors with the baseline's too; the
        run's alpha is then shared between the split and the comparisons (stats.error_compare)."""
        self.expectation = expectation
        shares = share_alpha(config.alpha, latency=bool(worse and worse.latency), errors=bool(worse and worse.errors))
        self.config = replace(config, alpha=shares.split)
        self.judge = make_judge(expectation.spec, self.config, method)
        self.sample_plan = plan_sample_size(expectation.spec, self.config)
        self.worse = WorseCheck(worse, expectation.spec.names, shares.latency, shares.errors) if worse else None
        self.worse_tally = WorseTally(expectation.spec.names) if worse else None
        self.worse_result: WorseResult | None = None  # the latest look's comparisons
        self._untrusted_latency: str | None = None
        self.warmup = warmup  # samples intended before this (seconds into the run) are reported, not judged
        self.tally = SplitTally(expectation)  # what is judged
        self.warm = SplitTally(expectation)  # the warm-up's samples
        self.verdict: Verdict | None = None  # the latest look's

    @property
    def spec(self) -> SplitSpec:
        return self.expectation.spec

    @property
    def mapping(self) -> SubsetMap:
        return self.expectation.mapping

    def add(self, sample: Sample) -> str | None:
        """Count one sample (judged, or the warm-up's); returns its subset as for a recording."""
        # A sample's t is intended start minus the run's start, two floats: the request due at exactly
        # the warm-up's end can come out a hair before it. The schedule's own count of warm-up requests
        # (canary.options.warmup_requests) is the one this tolerance keeps (spacing >= 10 us at 100,000/s).
        if sample.t < self.warmup - WARMUP_EDGE_S:
            return self.warm.add(sample)
        if self.worse_tally is not None:
            # A failed answer that still names its instance (service-b's 500) is that subset's failure.
            named = self.expectation.subset_of(sample.app_id) if sample.app_id else None
            self.worse_tally.add(sample, named)
        return self.tally.add(sample)

    def look(self, t: float | None, final: bool = False, tally: Tally | None = None,
             untrusted_latency: str | None = None) -> Verdict:
        """Judge ``tally`` (default: the samples added here) at time ``t`` into the run; the final
        look turns what is still undecided into INCONCLUSIVE. ``untrusted_latency``: why the
        latencies cannot be judged (the generator fell behind its schedule)."""
        source = self.tally if tally is None else tally
        counts, unknown = self.expectation.classify(source.app_ids)
        judge = self.judge.finish if final else self.judge.update
        split = judge(counts, unknown, source.error_count, t)
        if self.worse is not None and self.worse_tally is not None:
            self._untrusted_latency = untrusted_latency or self._untrusted_latency
            self.worse_result = self.worse.look(self.worse_tally, final, self._untrusted_latency)
        self.verdict = with_comparisons(split, self.worse_result, final)
        return self.verdict

    def look_counts(self, t: float | None, counts: Mapping[str, int], unknown: int, errors: int,
                    final: bool = False, worse_tally: WorseTally | None = None,
                    untrusted_latency: str | None = None) -> Verdict:
        """Judge answers counted elsewhere (``--subset-from envoy``: the client sidecar's
        per-cluster counters; Locust's or ``--nomad-workers``' merged send-ordered buckets) by the
        same judge and rules; ``worse_tally``: the same answers' latencies and failures per subset,
        for the comparisons with the baseline (it replaces this check's own);
        ``untrusted_latency``: why the latencies cannot be judged (the generators fell behind)."""
        self._untrusted_latency = untrusted_latency or self._untrusted_latency
        judge = self.judge.finish if final else self.judge.update
        split = judge(Counter(counts), unknown, errors, t)
        if self.worse is not None and worse_tally is not None:
            self.worse_tally = worse_tally
            self.worse_result = self.worse.look(worse_tally, final, self._untrusted_latency)
            split = with_comparisons(split, self.worse_result, final)
        self.verdict = split
        return self.verdict

    def result(self, verdict: Verdict, *, target: str, requests: int, duration_s: float, stopped_by: str,
               tally: Tally | None = None, **facts: Any) -> CanaryResult:
        """The result of this check: counts of the judged samples and the warm-up's together,
        latency of the judged ones; ``facts`` are the driver's (rate, notes, signal, ...)."""
        judged = self.tally if tally is None else tally
        if self.worse is not None and self.worse_tally is not None:
            # The run is over: what no look decided is INCONCLUSIVE (decisions stand: WorseCheck keeps them).
            self.worse_result = self.worse.look(self.worse_tally, True, self._untrusted_latency)
        return CanaryResult(
            verdict=verdict, spec=self.spec, mapping=self.mapping, plan=self.sample_plan, target=target,
            requests=requests, duration_s=duration_s, stopped_by=stopped_by,
            app_id_counts=dict(judged.app_ids + self.warm.app_ids), errors=dict(judged.errors + self.warm.errors),
            latency_ms=judged.latency_summary(), by_app_id=latency_by_app_id(judged),
            warmup=warmup_report(self.warmup, self.warm), comparisons=self.worse_result,
            **{"rate_asked": None, "rate_achieved": None, **facts},
        )
