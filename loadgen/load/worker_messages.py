"""What a load worker process tells its parent, over the multiprocessing queue.

Named, picklable types instead of positional tuples: a reader of the parent sees which field
is which, and adding one cannot shift the others. Each carries the worker's index ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FinalReport", "ProgressReport", "Ready", "WorkerMessage"]


@dataclass(frozen=True)
class Ready:
    """The worker has imported everything: the shared start instant can be set."""

    k: int


@dataclass(frozen=True)
class ProgressReport:
    """Cumulative counts so far, for the live display only (the final report is exact)."""

    k: int
    sent: int
    errors: int
    app_ids: dict[str, int]
    p50: float | None
    p99: float | None
    metrics: dict[str, Any] | None = None  # RunMetrics.encode() when the run serves --metrics-listen


@dataclass(frozen=True)
class FinalReport:
    """Everything the worker measured: its encoded Tally (merged exactly by the parent), its
    generator stats (``RunStats`` as a dict) and why its --record part stopped, if it did."""

    k: int
    tally: dict[str, Any]
    stats: dict[str, Any]
    recording_failed: str | None
    metrics: dict[str, Any] | None = None  # RunMetrics.encode(), the last counts, with --metrics-listen


WorkerMessage = Ready | ProgressReport | FinalReport
