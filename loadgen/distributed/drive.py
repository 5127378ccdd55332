"""Drive a distributed run from the CLI's thread: start the coordinator, launch the workers, wait
for every one to start (bounded), let the caller look (a judge, a status line) until every worker
has sent its final report or is lost, and stop everything whatever happens."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loadgen.distributed.coordinator import DEFAULT_LEASE_S, START_LEAD_S, Coordinator
from loadgen.distributed.launchers import Launcher
from loadgen.errors import UnreachableError
from loadgen.load.engine import LoadPlan

if TYPE_CHECKING:
    from loadgen.report.run_metrics import PageIncrement

__all__ = ["START_TIMEOUT_S", "DistributedRun", "coordinate"]

START_TIMEOUT_S = 60.0  # from dispatch to every worker's hello: placement, image pull, python start-up
FINAL_GRACE_S = 5.0  # past the run's bound and the requests' timeout, before a silent worker is given up
TICK_S = 0.1


@dataclass
class DistributedRun:
    coordinator: Coordinator
    lost: dict[int, str] = field(default_factory=dict)  # workers given up, with why
    warnings: list[str] = field(default_factory=list)  # what stopping the workers could not do
    start_wait_s: float = 0.0  # from launch to the common start being fixed
    sending_after_s: float | None = None  # from launch to every worker's report of answers (None: not all did)


def coordinate(plan: LoadPlan, workers: int, launcher: Launcher, *, latencies: bool = False,
               bind: str = "127.0.0.1", port: int = 0, lease_s: float = DEFAULT_LEASE_S,
               start_timeout: float = START_TIMEOUT_S, start_lead_s: float = START_LEAD_S,
               interrupted: Callable[[], bool] = lambda: False,
               on_tick: Callable[[Coordinator], bool] | None = None,
               say: Callable[[str], None] = lambda _m: None,
               on_page: Callable[[int, PageIncrement], None] | None = None) -> DistributedRun:
    """Run ``plan`` on ``workers`` launched workers. ``on_tick`` is called every TICK_S once the
    run has started; True stops the workers (a verdict). ``on_page``: the Prometheus page's
    increments of every accepted report (None: the workers count none). Returns once every worker
    has reported its end or been given up; every worker is stopped (and its job removed) before it
    returns."""
    coord = Coordinator(plan, workers, latencies=latencies, bind=bind, port=port, lease_s=lease_s,
                        start_lead_s=start_lead_s, on_page=on_page)
    coord.start()
    run = DistributedRun(coord)
    try:
        launched = time.monotonic()
        launcher.launch(coord.url, coord.token, workers, lease_s)
        say(f"coordinator at {coord.url}: {workers} workers launched, waiting for every one to start")
        while not coord.started:
            if interrupted():
                coord.stop("interrupted")
                return run
            ended = {k: why for k, why in launcher.ended().items() if k in coord.not_started()}
            if ended:
                k, why = next(iter(ended.items()))
                raise UnreachableError(f"load worker {k} of {workers} ended before the run could start: {why}")
            if time.monotonic() - launched > start_timeout:
                missing = coord.not_started()
                problem = launcher.placement_problem()
                raise UnreachableError(
                    f"{len(missing)} of {workers} load workers ({', '.join(map(str, missing))}) did not start within "
                    f"{start_timeout:g}s" + (f": {problem}" if problem else "") + "; nothing was sent")
            time.sleep(TICK_S)
        run.start_wait_s = time.monotonic() - launched
        say(f"{workers} of {workers} workers said hello {run.start_wait_s:.1f}s after launch; the common start is in "
            f"{coord.start_lead_s:g}s")
        announced = False  # the "every worker is sending" line, said once
        give_up_at = time.monotonic() + coord.start_lead_s + plan.max_time + plan.timeout + FINAL_GRACE_S + lease_s
        stopped_at: float | None = None
        while not coord.all_final():
            if interrupted():
                coord.stop("interrupted")
            if not announced and len(coord.sending()) == workers:
                # The signal a user (or a test) can wait on: every worker is sending and answered.
                announced = True
                run.sending_after_s = time.monotonic() - launched
                say(f"{workers} of {workers} workers sending ({run.sending_after_s:.1f}s after launch): clock offset "
                    f"to the coordinator at most {coord.max_skew_ms() or 0:.1f} ms, first sends "
                    f"{coord.start_spread_ms() or 0:.1f} ms apart")
            if on_tick is not None and coord.stop_reason is None and on_tick(coord):
                coord.stop("verdict")
            if coord.stop_reason is not None and stopped_at is None:
                # Told to stop: each worker ends its requests in flight (bounded by their timeout) and reports.
                stopped_at = time.monotonic()
                give_up_at = min(give_up_at, stopped_at + plan.timeout + FINAL_GRACE_S + lease_s)
            for k, why in launcher.ended().items():
                coord.mark_lost(k, why)
            for k in coord.silent():
                coord.mark_lost(k, f"no report for more than the {lease_s:g}s lease")
            if time.monotonic() > give_up_at:
                for k in range(workers):
                    coord.mark_lost(k, "no final report by the run's bound")
                break
            time.sleep(TICK_S)
    finally:
        coord.stop("done")
        run.warnings = launcher.stop()
        coord.close()
        run.lost = {w["index"]: w["lost"] for w in coord.snapshot() if w["lost"]}
    return run
