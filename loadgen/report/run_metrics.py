"""RunMetrics: what one run shows on its Prometheus /metrics page, kept as the run goes.

The load loop (the asyncio thread) writes: :meth:`RunMetrics.observe` for every sample as it
is released in send order, :meth:`RunMetrics.look` after each look of the judge and
:meth:`RunMetrics.finish` with the final verdict. A scrape (the HTTP server's thread) reads a
consistent copy with :meth:`RunMetrics.read`. One lock guards both sides: a sample costs a lock
and a few dict updates, and a scrape copies small dicts, so neither waits long for the other.

Remote workers (``--nomad-workers``) count on the same fixed buckets with a
:class:`PageIncrements` each: keyed by the APP_ID as answered (a worker knows no APP_ID map), taken
as increments into every sequence-numbered report, and added once by the coordinator with
:meth:`RunMetrics.add_increment`, which gives each APP_ID its subset and label as
:meth:`RunMetrics.observe` does for one process. Counts, bucket counts and latency sums (whole
nanoseconds) are integers, so the merged page is the page one process sending every request would
show, whatever order the reports arrive in.

No Prometheus import here (report/prometheus.py turns a :class:`MetricsView` into metric
families), and no judge import: a verdict is read through its attributes, so ``loadgen run``
keeps its light imports.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.load.sample import Sample
from loadgen.load.tally import error_kind

__all__ = ["DURATION_BUCKETS_S", "MAX_APP_IDS", "OTHER_APP_ID", "MetricsView", "PageIncrement", "PageIncrements",
           "RunMetrics", "decode_increment", "observed"]

# The histogram's upper bounds in seconds: the same edges in every loadgen process, so buckets
# from several runs or workers add up exactly (sum by (le)). From 1 ms (a loopback answer) to
# 60 s (the longest request timeout a run allows); above that is +Inf.
DURATION_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Distinct APP_ID label values kept before the rest are counted as OTHER_APP_ID: a target that
# answers a new APP_ID per request must not grow the page (and Prometheus' series) without bound.
MAX_APP_IDS = 32
OTHER_APP_ID = "other"

STATES = ("PASS", "FAIL", "INCONCLUSIVE", "RUNNING")


@dataclass
class Durations:
    """One histogram series: counts per bucket (not cumulative; the last is +Inf), sum, count. The
    sum is kept in whole nanoseconds: integers add in any order to the same total, so workers'
    sums merged equal one process's (a float sum depends on the order of its terms)."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS_S) + 1))
    total_ns: int = 0
    count: int = 0

    @property
    def total_s(self) -> float:
        return self.total_ns / 1e9

    def add(self, latency_ms: float) -> None:
        seconds = latency_ms / 1000
        self.buckets[bisect.bisect_left(DURATION_BUCKETS_S, seconds)] += 1  # le: a value on an edge is in it
        self.total_ns += round(latency_ms * 1e6)
        self.count += 1

    def copy(self) -> Durations:
        return Durations(list(self.buckets), self.total_ns, self.count)

    def merge(self, other: Durations) -> None:
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.total_ns += other.total_ns
        self.count += other.count


@dataclass
class MetricsView:
    """A scrape's copy of a run's metrics (plain data, read by report/prometheus.py)."""

    command: str
    judged: bool  # a run with a verdict (canary, shift): its verdict gauges are shown, RUNNING before a look
    requests: dict[tuple[str, str], int]  # (subset, app_id) -> requests that ended, failed ones too
    answers: dict[tuple[str, str], int]  # (subset, app_id) -> usable answers (200 with an APP_ID)
    errors: dict[str, int]  # kind -> failed requests
    durations: dict[tuple[str, str], Durations]  # (subset, app_id) -> latency of requests that got an answer
    verdict: Any | None  # the latest look's stats.Verdict (None before the first look, and for `run`)
    comparisons: Any | None  # the latest look's canary.worse.WorseResult, when comparisons were asked
    final: bool  # the verdict is the run's final one
    outcome: str | None = None  # a shift's: running, then shifted, failed, interrupted or error


class RunMetrics:
    """A run's metrics, fed by the load loop, read by scrapes (thread-safe)."""

    def __init__(self, command: str, judged: bool = True) -> None:
        self.command = command  # run, canary or shift: a label of loadgen_run_info
        self.judged = judged  # False for `loadgen run`: no verdict to show
        self._lock = threading.Lock()
        self._requests: Counter[tuple[str, str]] = Counter()
        self._answers: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[str] = Counter()
        self._durations: dict[tuple[str, str], Durations] = {}
        self._app_ids: set[str] = set()
        self._verdict: Any | None = None
        self._comparisons: Any | None = None
        self._final = False
        self._outcome: str | None = "running" if command == "shift" else None
        self._workers: dict[int, dict[str, Any]] = {}  # worker -> its latest encode(), `run --workers N`

    def observe(self, sample: Sample, subset: str | None = None) -> None:
        """One request that ended; ``subset``: what the run's APP_ID map makes of its APP_ID (None:
        unmapped, no APP_ID, or no map at all as in ``loadgen run``)."""
        with self._lock:
            key = (subset or "", self._app_id_label(sample.app_id))
            self._requests[key] += 1
            if sample.ok:
                self._answers[key] += 1
            else:
                self._errors[error_kind(sample)] += 1
            # Coordinated-omission corrected (from the intended start), as every loadgen report shows.
            if sample.latency_ms is not None:
                durations = self._durations.get(key)
                if durations is None:
                    durations = self._durations[key] = Durations()
                durations.add(sample.latency_ms)

    def look(self, verdict: Any, comparisons: Any | None = None) -> None:
        """The judge's latest look (a stats.Verdict, RUNNING until decided) and its comparisons."""
        with self._lock:
            self._verdict, self._comparisons, self._final = verdict, comparisons, False

    def finish(self, verdict: Any | None = None, comparisons: Any | None = None, outcome: str | None = None) -> None:
        """The run's final verdict (None: keep the latest look's) and, for a shift, its outcome: what a
        scrape after the run reads until the process exits."""
        with self._lock:
            if verdict is not None:
                self._verdict, self._comparisons = verdict, comparisons
            self._final = True
            self._outcome = outcome or self._outcome

    def read(self) -> MetricsView:
        with self._lock:
            view = MetricsView(
                command=self.command, judged=self.judged, requests=dict(self._requests), answers=dict(self._answers),
                errors=dict(self._errors), durations={k: d.copy() for k, d in self._durations.items()},
                verdict=self._verdict, comparisons=self._comparisons, final=self._final, outcome=self._outcome)
            workers = list(self._workers.values())
        for part in workers:  # counts and buckets add exactly: the same edges in every process
            for mine, theirs in ((view.requests, part["requests"]), (view.answers, part["answers"]),
                                 (view.errors, part["errors"])):
                for key, n in theirs.items():
                    mine[key] = mine.get(key, 0) + n
            for key, (buckets, total_ns, count) in part["durations"].items():
                view.durations.setdefault(key, Durations()).merge(Durations(list(buckets), total_ns, count))
        return view

    # -- several processes (`loadgen run --workers N`) ----------------------------------------
    def encode(self) -> dict[str, Any]:
        """This process's counts as plain picklable data, for :meth:`absorb` in the parent."""
        with self._lock:
            return {"requests": dict(self._requests), "answers": dict(self._answers), "errors": dict(self._errors),
                    "durations": {k: (list(d.buckets), d.total_ns, d.count) for k, d in self._durations.items()}}

    def absorb(self, worker: int, encoded: dict[str, Any]) -> None:
        """A worker's cumulative counts so far (its latest report replaces its earlier ones)."""
        with self._lock:
            self._workers[worker] = encoded

    # -- remote workers (`--nomad-workers N`) ---------------------------------------------------
    def add_increment(self, increment: PageIncrement, subset_of: Callable[[str], str | None] | None = None) -> None:
        """A remote worker's counts since its previous report (the coordinator takes each report once).
        ``subset_of``: the subset an APP_ID counts for, as the run's :meth:`observe` is given it (None:
        no map, as in ``loadgen run``); the APP_ID's label is given here, under the same cap."""
        with self._lock:
            for app_id, row in increment.rows.items():
                key = ((subset_of(app_id) if subset_of is not None and app_id is not None else None) or "",
                       self._app_id_label(app_id))
                if row.requests:  # a key is added only with a count, as observe() adds it
                    self._requests[key] += row.requests
                if row.answers:
                    self._answers[key] += row.answers
                if row.durations.count:
                    self._durations.setdefault(key, Durations()).merge(row.durations)
            for kind, n in increment.errors.items():
                if n:
                    self._errors[kind] += n

    def _app_id_label(self, app_id: str | None) -> str:
        if app_id is None:
            return ""
        if app_id in self._app_ids:
            return app_id
        if len(self._app_ids) < MAX_APP_IDS:
            self._app_ids.add(app_id)
            return app_id
        return OTHER_APP_ID


def observed(sink: Callable[[Sample], None], metrics: RunMetrics) -> Callable[[Sample], None]:
    """``sink`` that also counts each sample on the page (``loadgen run``: no APP_ID map, no subset)."""

    def on_sample(sample: Sample) -> None:
        sink(sample)
        metrics.observe(sample)

    return on_sample


# -- a remote worker's side --------------------------------------------------------------------
@dataclass
class PageRow:
    """What one APP_ID (None: none answered) got since the last report."""

    requests: int = 0
    answers: int = 0
    durations: Durations = field(default_factory=Durations)


@dataclass
class PageIncrement:
    """A report's page counts, decoded: per APP_ID as answered, and errors by kind."""

    rows: dict[str | None, PageRow]
    errors: dict[str, int]


class PageIncrements:
    """A remote worker's counts for the coordinator's page, kept since its last report (no lock: the
    worker's event loop both observes and takes). :meth:`take` returns them as JSON and starts
    again from zero: each sample is in exactly one report, which the coordinator merges once."""

    def __init__(self) -> None:
        self._rows: dict[str | None, PageRow] = {}
        self._errors: Counter[str] = Counter()

    def observe(self, sample: Sample) -> None:
        row = self._rows.get(sample.app_id)
        if row is None:
            row = self._rows[sample.app_id] = PageRow()
        row.requests += 1
        if sample.ok:
            row.answers += 1
        else:
            self._errors[error_kind(sample)] += 1
        if sample.latency_ms is not None:
            row.durations.add(sample.latency_ms)

    def take(self) -> dict[str, Any]:
        """``{"rows": [[app_id, requests, answers, buckets, sum_ns, count], ...], "errors": {kind: n}}``."""
        rows = [[app_id, r.requests, r.answers, r.durations.buckets, r.durations.total_ns, r.durations.count]
                for app_id, r in self._rows.items()]
        errors = dict(self._errors)
        self._rows, self._errors = {}, Counter()
        return {"rows": rows, "errors": errors}


def decode_increment(data: Any) -> PageIncrement:
    """A report's ``page`` (:meth:`PageIncrements.take`), checked whole before anything is merged:
    ValueError when it is not one (the coordinator refuses the report, and nothing of it counts)."""
    try:
        rows: dict[str | None, PageRow] = {}
        for app_id, requests, answers, buckets, total_ns, count in data["rows"]:
            numbers = [requests, answers, total_ns, count, *buckets]
            if (app_id is not None and not isinstance(app_id, str)) or app_id in rows \
                    or len(buckets) != len(DURATION_BUCKETS_S) + 1 \
                    or not all(type(n) is int and n >= 0 for n in numbers) or sum(buckets) != count \
                    or answers > requests:
                raise ValueError(f"row {app_id!r}")
            rows[app_id] = PageRow(requests, answers, Durations(list(buckets), total_ns, count))
        errors = dict(data["errors"])
        if not all(isinstance(k, str) and type(n) is int and n >= 0 for k, n in errors.items()):
            raise ValueError("errors")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a page increment: {exc}") from None
    return PageIncrement(rows, errors)
