"""Several generator processes for one run, merged exactly.

Each of N worker processes sends every N-th request of the shared schedule (worker k the
requests k, k+N, k+2N, ...), all against the same start instant (CLOCK_MONOTONIC is
system-wide), so together they follow the schedule as one generator would, with N cores.
Workers keep their own HDR histograms and send them back encoded; the parent adds them,
which is exact (no averaging of percentiles).

Stopping: the parent decides. Ctrl-C reaches the whole foreground process group, so workers
ignore SIGINT; the parent sets a shared stop flag, every worker finishes its in-flight
requests and reports, and the parent reaps them. SIGTERM to a worker (terminate(), or a
supervisor signalling the whole group) stops that worker the same way. A worker whose parent
is gone (killed with SIGKILL) stops sending and exits without reporting: nobody would read
it, and load nobody measures is only harm. Workers that do not report or exit within
:data:`REAP_GRACE_S` (after their requests' timeout) are killed, so none outlives the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing as mp
import os
import queue
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadgen.errors import EnvironmentProblem
from loadgen.load.engine import LoadPlan, RunStats, run_blocking, run_load
from loadgen.load.sample import Sample, SampleWriter
from loadgen.load.tally import Tally
from loadgen.load.worker_messages import FinalReport, ProgressReport, Ready

PROGRESS_EVERY_S = 0.25
START_LEAD_S = 0.05  # from "every worker is ready" to the shared start instant
REAP_GRACE_S = 5.0  # past the run's end and its requests' timeout, before a silent worker is killed
PARENT_CHECK_S = 0.1  # how often a worker looks whether its parent is still there


@dataclasses.dataclass
class WorkerProgress:
    sent: int
    errors: int
    app_ids: dict[str, int]
    p50: float | None
    p99: float | None  # the worst worker's p99 so far (display only; the report merges exactly)


@dataclasses.dataclass
class MergedRun:
    tally: Tally  # every worker's, merged exactly
    stats: RunStats  # the generators together (sums; the worst worker's lateness and CPU)
    per_worker: list[RunStats]  # by worker index, of the workers that reported
    missing: list[int] = dataclasses.field(default_factory=list)  # workers killed without a final report
    recording_failed: list[str] = dataclasses.field(default_factory=list)  # why a worker's --record part stopped


class _StopWatch:
    """A worker's should_stop: the parent's stop flag, a SIGTERM to this worker, or the parent
    gone (its pid is no longer our parent's: we were re-parented after it died)."""

    def __init__(self, stop: Any, parent_pid: int) -> None:
        self.stop, self.parent_pid = stop, parent_pid
        self.terminated = False
        self.orphaned = False
        self._next_check = 0.0

    def on_sigterm(self, _signum: int, _frame: object) -> None:
        self.terminated = True

    def parent_gone(self) -> bool:
        if not self.orphaned and os.getppid() != self.parent_pid:
            self.orphaned = True
        return self.orphaned

    def __call__(self) -> bool:
        if self.terminated or self.orphaned:
            return True
        now = time.monotonic()
        if now >= self._next_check:  # os.getppid() is a syscall: not once per request
            self._next_check = now + PARENT_CHECK_S
            if self.parent_gone():
                return True
        return bool(self.stop.is_set())


def _worker(k: int, n: int, plan: LoadPlan, start: Any, go: Any, stop: Any, out: Any, record: str | None,
            parent_pid: int, metrics_page: bool = False) -> None:
    watch = _StopWatch(stop, parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    signal.signal(signal.SIGTERM, watch.on_sigterm)  # stop like the parent's flag: finish, report, exit
    out.put(Ready(k))
    # Every worker has imported everything: the schedule can start for all at once.
    while not go.wait(PARENT_CHECK_S):
        if watch.parent_gone() or watch.terminated:
            out.cancel_join_thread()  # nobody may read the queue: exit without waiting on it
            return
    start_at = start.value
    tally = Tally()
    writer = SampleWriter(Path(record)) if record else None

    on_sample = recording_sink(tally, writer) if writer else tally.add
    metrics = None
    if metrics_page:  # the parent serves --metrics-listen: counts on the page's fixed buckets, sent with each report
        from loadgen.report.run_metrics import RunMetrics, observed  # only then: a worker stays light

        metrics = RunMetrics("run", judged=False)
        on_sample = observed(on_sample, metrics)

    async def load(shard: LoadPlan) -> RunStats:
        # Progress goes out on a timer, not from the per-sample path (no clock read per request).
        async def progress() -> None:
            while True:
                await asyncio.sleep(PROGRESS_EVERY_S)
                q = tally.book.quick()
                out.put(ProgressReport(k, tally.sent, tally.error_count, dict(tally.app_ids), q.get("p50"),
                                       q.get("p99"), metrics.encode() if metrics else None))

        ticker = asyncio.create_task(progress())
        try:
            return await run_load(shard, on_sample, watch)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    shard = dataclasses.replace(plan, shard=(k, n), start_at=start_at)
    if plan.concurrency is not None:  # closed loop: the connections are shared out instead
        shard = dataclasses.replace(shard, concurrency=max(1, plan.concurrency // n + (k < plan.concurrency % n)))
    try:
        stats: RunStats = run_blocking(lambda: load(shard))  # type: ignore[assignment]
    finally:
        if writer:
            writer.close()
    if watch.parent_gone():
        out.cancel_join_thread()
        return
    out.put(FinalReport(k, tally.encode(), stats, writer.failed if writer else None,
                        metrics.encode() if metrics else None))


def recording_sink(tally: Tally, writer: SampleWriter) -> Callable[[Sample], None]:
    """The per-sample callback that tallies and records (without --record, pass ``tally.add``
    itself: the hot path then makes no call of its own)."""

    def on_sample(sample: Sample) -> None:
        tally.add(sample)
        writer.write(sample)

    return on_sample


def run_workers(
    plan: LoadPlan, workers: int, on_progress: Callable[[WorkerProgress], None] | None = None,
    record: Path | None = None, interrupted: Callable[[], bool] = lambda: False,
    on_metrics: Callable[[int, dict[str, Any]], None] | None = None,
) -> MergedRun:
    """Run ``plan`` on ``workers`` processes and merge their results. Whatever happens (a stop,
    a second Ctrl-C raising, an error), every worker is stopped and reaped before this returns.
    ``on_metrics``: each worker's cumulative Prometheus counts (RunMetrics.encode) as it reports them."""
    ctx = mp.get_context("spawn")
    stop, go = ctx.Event(), ctx.Event()
    start = ctx.Value("d", 0.0)
    out = ctx.Queue()
    # Each worker records its own part in a private directory (never beside a device or
    # someone's file); the parts are merged into --record at the end.
    part_dir = Path(tempfile.mkdtemp(prefix="loadgen-record-")) if record else None
    parts = [part_dir / f"part{k}.jsonl" for k in range(workers)] if part_dir else [None] * workers
    procs = [
        ctx.Process(target=_worker, args=(k, workers, plan, start, go, stop, out,
                                          str(parts[k]) if parts[k] else None, os.getpid(), on_metrics is not None),
                    daemon=True)
        for k in range(workers)
    ]
    try:
        for p in procs:
            p.start()
        finals = _collect(plan, procs, stop, go, start, out, on_progress, interrupted, on_metrics)
    finally:
        stop.set()
        _reap(procs)
    if not finals:
        if part_dir:
            shutil.rmtree(part_dir, ignore_errors=True)
        # Something outside loadgen ended every worker (the OOM killer, a kill -9, a resource
        # limit): nothing was measured. It is the machine's doing, not the target's (an
        # unreachable target still yields reports full of errors), hence EnvironmentProblem (5).
        raise EnvironmentProblem(f"none of the {workers} load worker processes sent a report (killed or crashed "
                                 "before the run ended); nothing was measured")
    missing = sorted(set(range(workers)) - set(finals))
    tally = Tally.merged(f.tally for f in finals.values())
    per_worker = [finals[k].stats for k in sorted(finals)]
    stats = RunStats(
        sent=sum(w.sent for w in per_worker), completed=sum(w.completed for w in per_worker),
        late=sum(w.late for w in per_worker), max_late_ms=max(w.max_late_ms for w in per_worker),
        elapsed=max(w.elapsed for w in per_worker),
        cpu_share=max(w.cpu_share for w in per_worker),  # the busiest worker decides validity
        stopped_by="stop" if interrupted() else per_worker[0].stopped_by,
        dropped=sum(w.dropped for w in per_worker),  # each counted its own shard's
        waited_for_target=sum(w.waited_for_target for w in per_worker),
    )
    failed = [f.recording_failed for f in finals.values() if f.recording_failed]
    if record and part_dir:
        merge_failed = _merge_records(parts, record)
        shutil.rmtree(part_dir, ignore_errors=True)
        if merge_failed:
            failed.append(merge_failed)
    return MergedRun(tally, stats, per_worker, missing, failed)


def _collect(plan: LoadPlan, procs: list[Any], stop: Any, go: Any, start: Any, out: Any,
             on_progress: Callable[[WorkerProgress], None] | None,
             interrupted: Callable[[], bool],
             on_metrics: Callable[[int, dict[str, Any]], None] | None = None) -> dict[int, FinalReport]:
    """The workers' final reports, keyed by worker; stops waiting for a worker that has died,
    or that is still silent well after the run's deadline (or after a stop) plus its timeout."""
    workers = len(procs)
    progress: dict[int, ProgressReport] = {}
    finals: dict[int, FinalReport] = {}
    ready: set[int] = set()
    give_up_at: float | None = None  # a perf_counter instant, once the run has started or stopped
    while len(finals) < workers:
        if interrupted() and not stop.is_set():
            stop.set()
            give_up_at = min(give_up_at or float("inf"), time.perf_counter() + plan.timeout + REAP_GRACE_S)
        if give_up_at is not None and time.perf_counter() > give_up_at:
            break
        try:
            msg = out.get(timeout=0.1)
        except queue.Empty:
            if all(not p.is_alive() for k, p in enumerate(procs) if k not in finals):
                # A worker flushes its queue before it exits: read what arrived since, then stop.
                with contextlib.suppress(queue.Empty):
                    while True:
                        msg = out.get(timeout=0.5)
                        if isinstance(msg, FinalReport):
                            finals[msg.k] = msg
                            if on_metrics and msg.metrics is not None:
                                on_metrics(msg.k, msg.metrics)
                break
            continue
        if isinstance(msg, Ready):
            ready.add(msg.k)
            if len(ready) == workers:
                start.value = time.perf_counter() + START_LEAD_S
                go.set()
                give_up_at = start.value + plan.max_time + plan.timeout + REAP_GRACE_S
        elif isinstance(msg, ProgressReport):
            progress[msg.k] = msg
            if on_progress:
                on_progress(_aggregate(progress))
            if on_metrics and msg.metrics is not None and msg.k not in finals:
                on_metrics(msg.k, msg.metrics)
        elif isinstance(msg, FinalReport):
            finals[msg.k] = msg
            if on_metrics and msg.metrics is not None:
                on_metrics(msg.k, msg.metrics)
    return finals


def _reap(procs: list[Any]) -> None:
    """Join every worker: they have been told to stop; SIGTERM (which also stops a worker
    gracefully) for any still running after a grace, then SIGKILL."""
    deadline = time.monotonic() + REAP_GRACE_S
    for p in procs:
        if p.pid is not None:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
    for signal_them in ("terminate", "kill"):
        alive = [p for p in procs if p.pid is not None and p.is_alive()]
        if not alive:
            return
        for p in alive:
            with contextlib.suppress(OSError):
                getattr(p, signal_them)()
        for p in alive:
            p.join(timeout=2.0)


def _aggregate(progress: dict[int, ProgressReport]) -> WorkerProgress:
    app_ids: Counter[str] = Counter()
    for p in progress.values():
        app_ids.update(p.app_ids)
    p50s = [p.p50 for p in progress.values() if p.p50 is not None]
    p99s = [p.p99 for p in progress.values() if p.p99 is not None]
    return WorkerProgress(sum(p.sent for p in progress.values()), sum(p.errors for p in progress.values()),
                          dict(app_ids), max(p50s) if p50s else None, max(p99s) if p99s else None)


def _merge_records(parts: list[Path | None], record: Path) -> str | None:
    """One recording, ordered by intended start, from the workers' parts. Written through to
    what --record is (a device or FIFO in place); a write that fails (a full disk) stops the
    recording and says why, it never fails the run."""
    import json

    lines: list[tuple[float, str]] = []
    for part in parts:
        if part is None or not part.exists():
            continue
        with part.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    lines.append((json.loads(line)["t"], line.rstrip("\n")))
    lines.sort(key=lambda x: x[0])
    written = 0
    try:
        record.parent.mkdir(parents=True, exist_ok=True)  # as SampleWriter does for one process
        with record.open("w", encoding="utf-8") as out:
            for _, line in lines:
                out.write(line + "\n")
                written += 1
    except OSError as exc:
        return f"recording to {record} stopped after {written:,} samples: {exc.strerror or exc}"
    return None
