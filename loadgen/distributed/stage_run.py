"""``loadgen run --nomad-workers N``: one stage's load from remote workers, merged into the same
:class:`~loadgen.load.workers.MergedRun` as ``--workers`` (so the summary, histogram.hgrm and
plots are written by the same code). With ``metrics`` (``--metrics-listen``) the workers'
page counts are added to it as their reports arrive (``run`` has no APP_ID map: no subset)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from loadgen.distributed.coordinator import Coordinator, merged_stats
from loadgen.distributed.drive import coordinate
from loadgen.distributed.launchers import Launcher
from loadgen.distributed.worker_figures import figure_lines, worker_figures, write_worker_figures
from loadgen.errors import EnvironmentProblem
from loadgen.load.engine import LoadPlan
from loadgen.load.workers import MergedRun, WorkerProgress

if TYPE_CHECKING:
    from loadgen.report.run_metrics import RunMetrics

__all__ = ["run_remote_workers"]


def run_remote_workers(plan: LoadPlan, workers: int, launcher: Launcher,
                       on_progress: Callable[[WorkerProgress], None] | None = None,
                       interrupted: Callable[[], bool] = lambda: False,
                       say: Callable[[str], None] = lambda _m: None, bind: str = "127.0.0.1",
                       port: int = 0, out_dir: Path | None = None, metrics: RunMetrics | None = None) -> MergedRun:
    """The stage's load from ``workers`` launched workers, merged; each worker's own figures are
    said and written to ``out_dir``/workers.json (beside the merged summary.json)."""
    def tick(coord: Coordinator) -> bool:
        if on_progress is not None:
            sent, errors, app_ids = coord.progress()
            on_progress(WorkerProgress(sent, errors, app_ids, None, None))
        return False

    on_page = None if metrics is None else (lambda _worker, increment: metrics.add_increment(increment))
    run = coordinate(plan, workers, launcher, interrupted=interrupted, on_tick=tick, say=say, bind=bind, port=port,
                     on_page=on_page)
    coord = run.coordinator
    per_worker = coord.per_worker_stats()
    if not per_worker:
        raise EnvironmentProblem(f"none of the {workers} remote load workers sent a final report; nothing was "
                                 "measured" + (f" ({'; '.join(f'worker {k}: {w}' for k, w in run.lost.items())})"
                                               if run.lost else ""))
    for k, why in sorted(run.lost.items()):
        say(f"warning: worker {k} was lost ({why}); what it reported before is in the numbers")
    for warning in run.warnings:
        say(f"warning: {warning}")
    figures = worker_figures(coord)
    for line in figure_lines(figures):
        say(line)
    if out_dir is not None:
        failure = write_worker_figures(out_dir, figures)
        if failure:
            say(f"warning: cannot write {failure}")
    say(f"{workers} remote workers: clock skew to the coordinator at most {coord.max_skew_ms() or 0:.1f} ms, "
        f"first sends {coord.start_spread_ms() or 0:.1f} ms apart")
    stats = merged_stats([per_worker[k] for k in sorted(per_worker)], interrupted())
    return MergedRun(coord.merged_tally(), stats, [per_worker[k] for k in sorted(per_worker)], sorted(run.lost), [])
