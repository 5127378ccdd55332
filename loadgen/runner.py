"""`loadgen run`: load one stage (or each in turn), keep honest latency, write the reports.

Wires mesh (borrow the stage) -> engine (samples) -> histograms -> report files. A run
stops at its duration or request budget, or on Ctrl-C or SIGTERM (loadgen.interrupts: the
first one stops sending, a second one stops hard); what was collected is always written,
and an interrupted run says so and which signal stopped it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadgen import interrupts
from loadgen.load.engine import LoadPlan, RunStats, run_blocking, run_load
from loadgen.load.histograms import LatencyBook
from loadgen.load.sample import Sample, SampleWriter
from loadgen.load.workers import WorkerProgress, run_workers
from loadgen.report.run_files import build_summary, write_stage_files

PROGRESS_EVERY_S = 0.25


@dataclass
class Progress:
    sent: int
    elapsed: float
    errors: int
    corrected: dict[str, Any]
    split: dict[str, int]


@dataclass
class StageRun:
    stage: str
    summary: dict[str, Any]
    book: LatencyBook
    files: list[Path] = field(default_factory=list)
    signum: int | None = None  # the signal that stopped the run early (SIGINT, SIGTERM), if one did

    @property
    def interrupted(self) -> bool:
        return self.signum is not None


class Collector:
    """Everything a run keeps per sample, in bounded memory (counters and histograms)."""

    def __init__(self, record: Path | None = None) -> None:
        self.book = LatencyBook()
        self.app_ids: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.writer = SampleWriter(record) if record else None

    def add(self, sample: Sample) -> None:
        self.book.record(sample)
        if sample.ok and sample.app_id is not None:
            self.app_ids[sample.app_id] += 1
        else:
            self.errors[sample.error or f"http_{sample.status}"] += 1
        if self.writer:
            self.writer.write(sample)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def run_stage(
    stage: str, plan: LoadPlan, meta: dict[str, Any], out_dir: Path | None,
    on_progress: Callable[[Progress], None] | None = None, record: Path | None = None, plots: bool = True,
    workers: int = 1,
) -> StageRun:
    if workers > 1:
        return _run_stage_workers(stage, plan, meta, out_dir, on_progress, record, plots, workers)
    collector = Collector(record)
    state: dict[str, Any] = {"stop": False, "signum": None}

    def on_stop(signum: int) -> None:
        state["stop"], state["signum"] = True, signum

    async def main() -> RunStats:
        started = time.monotonic()

        async def progress() -> None:
            while True:
                await asyncio.sleep(PROGRESS_EVERY_S)
                if collector.writer:
                    collector.writer.flush()
                if on_progress:
                    on_progress(Progress(sum(collector.app_ids.values()) + sum(collector.errors.values()),
                                         time.monotonic() - started, sum(collector.errors.values()),
                                         collector.book.quick(), dict(collector.app_ids)))

        with interrupts.stop_on_signals(asyncio.get_running_loop(), on_stop):
            ticker = asyncio.create_task(progress())
            try:
                return await run_load(plan, collector.add, lambda: state["stop"])
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        stats: RunStats = run_blocking(main)  # type: ignore[assignment]
    finally:
        collector.close()
    health = stats.health(plan.closed_loop) | {"workers": 1}
    failed = collector.writer.failed if collector.writer else None
    return _finish(stage, plan, {**meta, "recording_failed": [failed] if failed else []}, out_dir, plots, stats,
                   started_at, state["signum"], health, collector.book, dict(collector.app_ids),
                   dict(collector.errors))


def _finish(stage: str, plan: LoadPlan, meta: dict[str, Any], out_dir: Path | None, plots: bool, stats: RunStats,
            started_at: str, signum: int | None, health: dict[str, Any], book: LatencyBook,
            app_ids: dict[str, int], errors: dict[str, int]) -> StageRun:
    interrupted = signum is not None
    full_meta = {
        **meta, "stage": stage, "target": plan.url, "mode": "closed" if plan.closed_loop else "open",
        "concurrency": plan.concurrency, "schedule": None if plan.closed_loop else plan.rate_schedule().text,
        "rate_asked": plan.rate, "duration_s": round(stats.elapsed, 3), "rate_achieved": round(stats.achieved_rate, 1),
        "started_at": started_at, "interrupted": interrupted, "stopped_by": "interrupted"
        if interrupted else stats.stopped_by, "timeout_s": plan.timeout,
        "interrupted_by": signal.Signals(signum).name if signum is not None else None,
        "new_connection": plan.new_connection,
    }
    summary = build_summary(book, full_meta, app_ids, errors, health)
    files = write_stage_files(out_dir, summary, book, plots) if out_dir else []
    return StageRun(stage, summary, book, files, signum)


def _run_stage_workers(stage: str, plan: LoadPlan, meta: dict[str, Any], out_dir: Path | None,
                       on_progress: Callable[[Progress], None] | None, record: Path | None, plots: bool,
                       workers: int) -> StageRun:
    flag: dict[str, int | None] = {"signum": None}

    def on_stop(signum: int) -> None:
        flag["signum"] = signum

    started, started_at = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")

    def progress(p: WorkerProgress) -> None:
        if on_progress:
            quick = {"count": p.sent - p.errors, "p50": p.p50, "p99": p.p99} if p.p99 is not None else {"count": 0}
            on_progress(Progress(p.sent, time.monotonic() - started, p.errors, quick, p.app_ids))

    # The parent only sets a flag; run_workers tells the workers, collects their reports and
    # reaps them (also when a second signal raises out of it).
    with interrupts.flag_on_signals(on_stop):
        merged = run_workers(plan, workers, progress, record, lambda: flag["signum"] is not None)
    health = merged.stats.health(plan.closed_loop) | {"workers": workers, "per_worker": [
        {k: w[k] for k in ("sent", "late", "dropped", "cpu_share", "elapsed")} for w in merged.per_worker]}
    if merged.missing:
        health["valid"] = False
        health["problems"] = [*health["problems"], f"worker(s) {merged.missing} sent no report (killed after "
                              "the run's bound): their requests are not in these numbers"]
    return _finish(stage, plan, {**meta, "recording_failed": merged.recording_failed}, out_dir, plots, merged.stats,
                   started_at, flag["signum"], health, merged.book, dict(merged.app_ids), dict(merged.errors))


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
