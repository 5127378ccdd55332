"""Load one stage and write its reports: what `loadgen run` does per stage.

Wires the engine (samples) -> a Tally (histograms and counts) -> the report files. Loading
stops at its duration or request budget, or on Ctrl-C or SIGTERM (loadgen.interrupts: the
first one stops sending, a second one stops hard); what was collected is always written, and
an interrupted stage says so and which signal stopped it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadgen import interrupts
from loadgen.load.engine import LoadPlan, RunStats, run_blocking, run_load
from loadgen.load.health import GeneratorHealth, WorkerLoad
from loadgen.load.sample import SampleWriter
from loadgen.load.tally import Tally
from loadgen.load.workers import MergedRun, WorkerProgress, recording_sink, run_workers
from loadgen.report.run_files import build_summary, write_stage_files
from loadgen.report.run_metrics import RunMetrics, observed
from loadgen.report.summary import StageInfo, StageSummary

__all__ = ["LoadProgress", "StageResult", "load_stage", "new_run_id"]

PROGRESS_EVERY_S = 0.25


@dataclass
class LoadProgress:
    """A stage's load so far, for the live status line."""

    sent: int
    elapsed: float
    errors: int
    corrected: dict[str, Any]  # LatencyBook.quick(): count, p50, p99
    split: dict[str, int]  # answers per APP_ID


@dataclass
class StageResult:
    stage: str
    summary: StageSummary
    tally: Tally
    files: list[Path] = field(default_factory=list)
    signum: int | None = None  # the signal that stopped loading early (SIGINT, SIGTERM), if one did
    files_failed: list[str] = field(default_factory=list)  # report files that could not be written: "PATH: why"

    @property
    def interrupted(self) -> bool:
        return self.signum is not None


def load_stage(
    stage: str, plan: LoadPlan, runtime: str | None, out_dir: Path | None,
    on_progress: Callable[[LoadProgress], None] | None = None, record: Path | None = None, plots: bool = True,
    workers: int = 1, metrics: RunMetrics | None = None, remote: Callable[..., MergedRun] | None = None,
) -> StageResult:
    """Send ``plan``'s load (from ``workers`` processes), summarize it and write the stage's
    files into ``out_dir`` (none when it is None). ``runtime`` names where the target runs.
    ``metrics``: the run's Prometheus page (--metrics-listen), fed every sample (each worker's
    counts when there are several). ``remote``: run the workers elsewhere instead
    (``--nomad-workers``: distributed.stage_run, which feeds the page itself)."""
    if workers > 1 or remote is not None:
        return _load_stage_workers(stage, plan, runtime, out_dir, on_progress, record, plots, workers, metrics,
                                   remote)
    tally = Tally()
    writer = SampleWriter(record) if record else None
    stopped: list[int] = []  # the signal that asked to stop, once one has

    on_sample = recording_sink(tally, writer) if writer else tally.add
    if metrics is not None:
        on_sample = observed(on_sample, metrics)

    async def main() -> RunStats:
        started = time.monotonic()

        async def progress() -> None:
            while True:
                await asyncio.sleep(PROGRESS_EVERY_S)
                if writer:
                    writer.flush()
                if on_progress:
                    on_progress(LoadProgress(tally.sent, time.monotonic() - started, tally.error_count,
                                             tally.book.quick(), dict(tally.app_ids)))

        with interrupts.stop_on_signals(asyncio.get_running_loop(), stopped.append):
            ticker = asyncio.create_task(progress())
            try:
                return await run_load(plan, on_sample, lambda: bool(stopped))
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        stats: RunStats = run_blocking(main)  # type: ignore[assignment]
    finally:
        if writer:
            writer.close()
    health = replace(stats.generator_health(plan.closed_loop), workers=1)
    failed = writer.failed if writer else None
    return _finish(stage, plan, runtime, [failed] if failed else [], out_dir, plots, stats, started_at,
                   stopped[0] if stopped else None, health, tally)


def _finish(stage: str, plan: LoadPlan, runtime: str | None, recording_failed: list[str], out_dir: Path | None,
            plots: bool, stats: RunStats, started_at: str, signum: int | None, health: GeneratorHealth,
            tally: Tally) -> StageResult:
    interrupted = signum is not None
    info = StageInfo(
        runtime=runtime, recording_failed=recording_failed, stage=stage, target=plan.url,
        mode="closed" if plan.closed_loop else "open", concurrency=plan.concurrency,
        schedule=None if plan.closed_loop else plan.rate_schedule().text, rate_asked=plan.rate,
        duration_s=round(stats.elapsed, 3), rate_achieved=round(stats.achieved_rate, 1), started_at=started_at,
        interrupted=interrupted, stopped_by="interrupted" if interrupted else stats.stopped_by,
        timeout_s=plan.timeout, interrupted_by=signal.Signals(signum).name if signum is not None else None,
        new_connection=plan.new_connection,
    )
    summary = build_summary(tally, info, health)
    failed: list[str] = []
    files = write_stage_files(out_dir, summary, tally.book, plots, failed) if out_dir else []
    return StageResult(stage, summary, tally, files, signum, failed)


def _load_stage_workers(stage: str, plan: LoadPlan, runtime: str | None, out_dir: Path | None,
                        on_progress: Callable[[LoadProgress], None] | None, record: Path | None, plots: bool,
                        workers: int, metrics: RunMetrics | None = None,
                        remote: Callable[..., MergedRun] | None = None) -> StageResult:
    stopped: list[int] = []

    started, started_at = time.monotonic(), datetime.now(UTC).isoformat(timespec="seconds")

    def progress(p: WorkerProgress) -> None:
        if on_progress:
            quick = {"count": p.sent - p.errors, "p50": p.p50, "p99": p.p99} if p.p99 is not None else {"count": 0}
            on_progress(LoadProgress(p.sent, time.monotonic() - started, p.errors, quick, p.app_ids))

    # The parent only notes the signal; run_workers tells the workers, collects their reports
    # and reaps them (also when a second signal raises out of it).
    with interrupts.flag_on_signals(stopped.append):
        if remote is not None:
            merged = remote(plan, progress, lambda: bool(stopped))
        else:
            merged = run_workers(plan, workers, progress, record, lambda: bool(stopped),
                                 on_metrics=metrics.absorb if metrics is not None else None)
    health = replace(merged.stats.generator_health(plan.closed_loop), workers=workers, per_worker=[
        WorkerLoad(w.sent, w.late, w.dropped, w.cpu_share, w.elapsed) for w in merged.per_worker])
    if merged.missing:
        health = replace(health, valid=False, problems=[
            *health.problems, f"worker(s) {merged.missing} sent no report (killed after the run's bound): their "
            "requests are not in these numbers"])
    return _finish(stage, plan, runtime, merged.recording_failed, out_dir, plots, merged.stats, started_at,
                   stopped[0] if stopped else None, health, merged.tally)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
