"""Several generator processes for one run, merged exactly.

Each of N worker processes sends every N-th request of the shared schedule (worker k the
requests k, k+N, k+2N, ...), all against the same start instant (CLOCK_MONOTONIC is
system-wide), so together they follow the schedule as one generator would, with N cores.
Workers keep their own HDR histograms and send them back encoded; the parent adds them,
which is exact (no averaging of percentiles). Ctrl-C goes to the parent only: it sets a
shared stop flag, and every worker finishes its in-flight requests and reports.
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import queue
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadgen.load.engine import LoadPlan, RunStats, run_blocking, run_load
from loadgen.load.histograms import LatencyBook
from loadgen.load.sample import SampleWriter

PROGRESS_EVERY_S = 0.25
START_LEAD_S = 0.05  # from "every worker is ready" to the shared start instant


@dataclasses.dataclass
class WorkerProgress:
    sent: int
    errors: int
    app_ids: dict[str, int]
    p50: float | None
    p99: float | None  # the worst worker's p99 so far (display only; the report merges exactly)


@dataclasses.dataclass
class MergedRun:
    book: LatencyBook
    app_ids: Counter[str]
    errors: Counter[str]
    stats: RunStats
    per_worker: list[dict[str, Any]]


def _worker(k: int, n: int, plan: LoadPlan, start: Any, go: Any, stop: Any, out: Any, record: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    out.put(("ready", k))
    go.wait()  # every worker has imported everything: the schedule can start for all at once
    start_at = start.value
    book = LatencyBook()
    app_ids: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    writer = SampleWriter(Path(record)) if record else None
    last = [time.monotonic()]

    def on_sample(sample: Any) -> None:
        book.record(sample)
        if sample.ok:
            app_ids[sample.app_id] += 1
        else:
            errors[sample.error or f"http_{sample.status}"] += 1
        if writer:
            writer.write(sample)
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            q = book.quick()
            out.put(("progress", k, sum(app_ids.values()) + sum(errors.values()), sum(errors.values()),
                     dict(app_ids), q.get("p50"), q.get("p99")))

    shard = dataclasses.replace(plan, shard=(k, n), start_at=start_at)
    if plan.concurrency is not None:  # closed loop: the connections are shared out instead
        shard = dataclasses.replace(shard, concurrency=max(1, plan.concurrency // n + (k < plan.concurrency % n)))
    try:
        stats = run_blocking(lambda: run_load(shard, on_sample, stop.is_set))
    finally:
        if writer:
            writer.close()
    out.put(("done", k, book.encode(), dataclasses.asdict(stats), dict(app_ids), dict(errors)))


def run_workers(
    plan: LoadPlan, workers: int, on_progress: Callable[[WorkerProgress], None] | None = None,
    record: Path | None = None, interrupted: Callable[[], bool] = lambda: False,
) -> MergedRun:
    ctx = mp.get_context("spawn")
    stop, go = ctx.Event(), ctx.Event()
    start = ctx.Value("d", 0.0)
    out = ctx.Queue()
    parts = [record.with_name(f"{record.name}.part{k}") for k in range(workers)] if record else [None] * workers
    procs = [
        ctx.Process(target=_worker, args=(k, workers, plan, start, go, stop, out, str(parts[k]) if parts[k] else None),
                    daemon=True)
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    progress: dict[int, tuple[int, int, dict[str, int], float | None, float | None]] = {}
    finals: dict[int, tuple[Any, ...]] = {}
    ready: set[int] = set()
    while len(finals) < workers:
        if interrupted():
            stop.set()
        try:
            msg = out.get(timeout=0.1)
        except queue.Empty:
            dead = [k for k, p in enumerate(procs) if not p.is_alive() and k not in finals]
            if dead and all(not p.is_alive() for p in procs) and out.empty():
                raise RuntimeError(f"load worker(s) {dead} exited without a report") from None
            continue
        if msg[0] == "ready":
            ready.add(msg[1])
            if len(ready) == workers:
                start.value = time.perf_counter() + START_LEAD_S
                go.set()
        elif msg[0] == "progress":
            progress[msg[1]] = msg[2:]
            if on_progress:
                on_progress(_aggregate(progress))
        else:
            finals[msg[1]] = msg[2:]
    for p in procs:
        p.join(timeout=10)
    book = LatencyBook.merged(f[0] for f in finals.values())
    app_ids: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for f in finals.values():
        app_ids.update(f[2])
        errors.update(f[3])
    per_worker = [f[1] for f in finals.values()]
    stats = RunStats(
        sent=sum(w["sent"] for w in per_worker), completed=sum(w["completed"] for w in per_worker),
        late=sum(w["late"] for w in per_worker), max_late_ms=max(w["max_late_ms"] for w in per_worker),
        elapsed=max(w["elapsed"] for w in per_worker),
        cpu_share=max(w["cpu_share"] for w in per_worker),  # the busiest worker decides validity
        stopped_by="stop" if stop.is_set() else per_worker[0]["stopped_by"],
        dropped=sum(w["dropped"] for w in per_worker),  # each counted its own shard's
    )
    if record:
        _merge_records(parts, record)
    return MergedRun(book, app_ids, errors, stats, per_worker)


def _aggregate(progress: dict[int, tuple[int, int, dict[str, int], float | None, float | None]]) -> WorkerProgress:
    app_ids: Counter[str] = Counter()
    for p in progress.values():
        app_ids.update(p[2])
    p50s = [p[3] for p in progress.values() if p[3] is not None]
    p99s = [p[4] for p in progress.values() if p[4] is not None]
    return WorkerProgress(sum(p[0] for p in progress.values()), sum(p[1] for p in progress.values()), dict(app_ids),
                          max(p50s) if p50s else None, max(p99s) if p99s else None)


def _merge_records(parts: list[Path | None], record: Path) -> None:
    """One recording, ordered by intended start, from the workers' parts."""
    import json

    lines: list[tuple[float, str]] = []
    for part in parts:
        if part is None or not part.exists():
            continue
        for line in part.read_text().splitlines():
            if line.strip():
                lines.append((json.loads(line)["t"], line))
        part.unlink()
    lines.sort(key=lambda x: x[0])
    record.write_text("".join(line + "\n" for _, line in lines))
