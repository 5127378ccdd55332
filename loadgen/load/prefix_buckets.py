"""Send-ordered counts that merge across processes: what a distributed generator (Locust's
workers) judges as one stream, in send order.

Each process releases its answers in send order (:class:`~loadgen.load.send_order.SendOrder`)
and counts them per *send-time bucket* of ``bucket_s`` seconds (wall clock, shared by the
processes as well as their clocks agree). A bucket is complete once the process's earliest
request still in flight was sent after it: nothing more can land in it. Every report carries
the buckets completed since the last one and the bucket the process is complete below.

The coordinator keeps every source's buckets and judges the sum of the buckets below the
*smallest* of the sources' complete marks: a set of requests chosen by send time alone, never
by which subset answered or how fast, so the judge's guarantee holds for the merged stream.
A source that lags holds the judged prefix back (by at most the request timeout while it
reports); clock skew between machines only shifts where a bucket's requests sit in the
order, which does not depend on the answers either.

With ``latencies`` (the canary compares latency or errors with the baseline), a bucket also
keeps each APP_ID's latencies as sparse bin counts (stats.latency_bins: exact to merge) and the
failed answers that still named their instance (service-b's 500): what the comparisons judge.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from loadgen.load.sample import Sample
from loadgen.stats.latency_bins import bin_of_one

__all__ = ["BUCKET_S", "BucketCounts", "MergedPrefix", "PrefixBuckets"]

BUCKET_S = 0.25


@dataclass
class BucketCounts:
    """Answers per APP_ID and failures of the requests sent in one bucket; with latencies, per
    APP_ID the answers' latency bins (bin index -> count) and the failures that named it."""

    app_ids: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    latency: dict[str, Counter[int]] = field(default_factory=dict)
    failed: Counter[str] = field(default_factory=Counter)

    def add(self, other: BucketCounts) -> None:
        self.app_ids.update(other.app_ids)
        self.errors += other.errors
        for app_id, bins in other.latency.items():
            self.latency.setdefault(app_id, Counter()).update(bins)
        self.failed.update(other.failed)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"app_ids": dict(self.app_ids), "errors": self.errors}
        if self.latency:
            out["latency"] = {a: {str(k): n for k, n in bins.items()} for a, bins in self.latency.items()}
        if self.failed:
            out["failed"] = dict(self.failed)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BucketCounts:
        latency = {str(a): Counter({int(k): int(n) for k, n in bins.items()})
                   for a, bins in data.get("latency", {}).items()}
        return cls(Counter({str(k): int(v) for k, v in data.get("app_ids", {}).items()}), int(data.get("errors", 0)),
                   latency, Counter({str(k): int(v) for k, v in data.get("failed", {}).items()}))


class PrefixBuckets:
    """One process's released answers, per send-time bucket (``t`` of :meth:`add` and
    :meth:`advance` on one clock, e.g. wall seconds)."""

    def __init__(self, bucket_s: float = BUCKET_S, latencies: bool = False) -> None:
        self.bucket_s = bucket_s
        self.latencies = latencies
        self.buckets: dict[int, BucketCounts] = {}
        self.complete_below = -(2 ** 62)  # nothing is known complete yet
        self._reported_below: int | None = None

    def bucket_of(self, t: float) -> int:
        return math.floor(t / self.bucket_s)

    def add(self, t: float, sample: Sample) -> None:
        """A released answer of a request sent at ``t``."""
        counts = self.buckets.setdefault(self.bucket_of(t), BucketCounts())
        if sample.ok:
            assert sample.app_id is not None
            counts.app_ids[sample.app_id] += 1
            if self.latencies:  # an answer without a latency is no fast answer: +inf's bin
                seconds = math.inf if sample.latency_ms is None else sample.latency_ms / 1000
                counts.latency.setdefault(sample.app_id, Counter())[bin_of_one(seconds)] += 1
        else:
            counts.errors += 1
            if self.latencies and sample.app_id:
                counts.failed[sample.app_id] += 1

    def advance(self, frontier_t: float) -> None:
        """Every request sent before ``frontier_t`` has been released (the earliest still in flight
        was sent then, or now when none is)."""
        self.complete_below = max(self.complete_below, self.bucket_of(frontier_t))

    def report(self) -> dict[str, Any]:
        """The buckets completed since the last report, and the complete mark (JSON-ready)."""
        start = self._reported_below
        out = {str(b): c.to_json() for b, c in self.buckets.items()
               if b < self.complete_below and (start is None or b >= start)}
        self._reported_below = self.complete_below
        return {"complete_below": self.complete_below, "buckets": out}


class MergedPrefix:
    """The coordinator's side: every source's complete buckets, and the judged prefix."""

    def __init__(self) -> None:
        self.sources: dict[str, int] = {}  # source -> the bucket it is complete below
        self.buckets: dict[int, BucketCounts] = {}

    def merge(self, source: str, report: Mapping[str, Any]) -> None:
        for key, data in report.get("buckets", {}).items():
            self.buckets.setdefault(int(key), BucketCounts()).add(BucketCounts.from_json(data))
        self.sources[source] = max(self.sources.get(source, -(2 ** 62)), int(report["complete_below"]))

    def complete_below(self, sources: Iterable[str] | None = None) -> int | None:
        marks = [self.sources[s] for s in (self.sources if sources is None else sources) if s in self.sources]
        return min(marks) if marks else None

    def judged(self, final: bool = False) -> tuple[BucketCounts, int | None]:
        """The counts of the requests sent below every source's complete mark (all of them on the
        final look, once every source has stopped), and that bucket mark."""
        below = None if final else self.complete_below()
        total = BucketCounts()
        for b, counts in self.buckets.items():
            if final or (below is not None and b < below):
                total.add(counts)
        return total, below
