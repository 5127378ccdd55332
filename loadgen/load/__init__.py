"""Load generation: rate plans -> the engine -> a stream of Samples -> a Tally.

The public surface is listed in ``__all__``. Its names are imported on first use (PEP 562),
not here: every worker process imports ``loadgen.load.engine``, which runs this file first, and
must not pay for the modules a worker never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from loadgen.load.engine import LoadPlan, RunStats, run_blocking, run_load
    from loadgen.load.health import GeneratorHealth, WorkerLoad
    from loadgen.load.histograms import LatencyBook
    from loadgen.load.sample import Sample, SampleWriter, read_samples
    from loadgen.load.schedule import RateSchedule, parse_duration
    from loadgen.load.tally import Tally
    from loadgen.load.workers import MergedRun, run_workers

_WHERE = {
    "LoadPlan": "engine", "RunStats": "engine", "run_blocking": "engine", "run_load": "engine",
    "GeneratorHealth": "health", "WorkerLoad": "health",
    "LatencyBook": "histograms",
    "Sample": "sample", "SampleWriter": "sample", "read_samples": "sample",
    "RateSchedule": "schedule", "parse_duration": "schedule",
    "Tally": "tally",
    "MergedRun": "workers", "run_workers": "workers",
}

__all__ = [
    "GeneratorHealth",
    "LatencyBook",
    "LoadPlan",
    "MergedRun",
    "RateSchedule",
    "RunStats",
    "Sample",
    "SampleWriter",
    "Tally",
    "WorkerLoad",
    "parse_duration",
    "read_samples",
    "run_blocking",
    "run_load",
    "run_workers",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
