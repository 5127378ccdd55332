"""One remote load worker (``loadgen worker``): its share of the coordinator's schedule, reported back.

1. Hello until the coordinator gives the common start (it does once every worker has said
   hello); each round trip also measures this machine's clock offset from the coordinator's.
2. Send requests k, k+N, k+2N, ... of the schedule from that start, released in send order into
   a :class:`Tally` and send-time :class:`PrefixBuckets` (keyed by the schedule's own offsets,
   which every worker shares: clock skew cannot move a request to another bucket).
3. Every :data:`REPORT_EVERY_S`, report the buckets completed since the last report, with a
   sequence number; on a failed post the same report is sent again (the coordinator drops a
   copy it already merged), never a newer one before it. When the coordinator serves a
   Prometheus page (its hello says ``page``), each report also carries the page's counts since
   the previous report (:class:`~loadgen.report.run_metrics.PageIncrements`): a retried report
   carries the same ones, so they are added once.
4. Stop when a reply says stop, on SIGINT/SIGTERM (Nomad stopping the allocation), at the
   plan's bounds, or when no reply has come for the lease: the coordinator is gone, and load
   that nobody measures is only harm. A final report carries the rest and the generator stats.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import signal
import time
from collections import deque
from typing import Any

import httpx

from loadgen.distributed.protocol import HELLO_PATH, REPORT_PATH, TOKEN_HEADER, clock_offset, plan_from_json
from loadgen.load.engine import RunStats, run_blocking, run_load
from loadgen.load.prefix_buckets import PrefixBuckets
from loadgen.load.sample import Sample
from loadgen.load.send_order import SendOrder
from loadgen.load.tally import Tally

__all__ = ["WorkerOutcome", "run_worker"]

REPORT_EVERY_S = 0.25
TALLY_EVERY = 8  # the cumulative histograms go out with every 8th report (and the final one)
HELLO_EVERY_S = 0.1
REFINE_ROUND_TRIPS = 3  # hellos after the start is known, to measure the clock offset on a quieter link
POST_TIMEOUT_S = 2.0
BEYOND_ANY_RUN = float(2 ** 40)  # a send time after every request: the final report completes every bucket


@dataclasses.dataclass
class WorkerOutcome:
    """How the worker ended, for its exit code and log."""

    reason: str  # "stop", "finished", "lease", "signal", "refused"
    sent: int = 0
    reports: int = 0
    final_acked: bool = False


class _Lease:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.renewed = time.monotonic()

    def renew(self, seconds: float | None = None) -> None:
        self.renewed = time.monotonic()
        if seconds:
            self.seconds = float(seconds)

    @property
    def expired(self) -> bool:
        return time.monotonic() - self.renewed > self.seconds


def run_worker(coordinator: str, token: str, index: int, of: int, lease_s: float = 10.0) -> WorkerOutcome:
    """Run worker ``index`` of ``of`` against the coordinator at ``coordinator`` (its base URL)."""
    return run_blocking(lambda: _worker(coordinator, token, index, of, lease_s))  # type: ignore[return-value]


async def _worker(coordinator: str, token: str, index: int, of: int, lease_s: float) -> WorkerOutcome:
    stop: dict[str, str | None] = {"why": None}

    def on_signal(signum: int) -> None:
        stop["why"] = stop["why"] or "signal"

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, on_signal, signum)
    lease = _Lease(lease_s)
    async with httpx.AsyncClient(base_url=coordinator, headers={TOKEN_HEADER: token}, timeout=POST_TIMEOUT_S,
                                 trust_env=False) as http:
        instance = secrets.token_hex(8)  # this process: a rescheduled copy of the worker is another
        hello = await _hello(http, index, of, lease, stop, instance)
        if hello is None:
            return WorkerOutcome(stop["why"] or "stop")
        return await _run(http, hello, index, of, lease, stop, instance)


async def _hello(http: httpx.AsyncClient, index: int, of: int, lease: _Lease,
                 stop: dict[str, str | None], instance: str) -> dict[str, Any] | None:
    """The coordinator's hello reply with the start time set (None: told to stop, or the lease ran out).
    Its clock offset is the one of the fastest round trip among the hellos (NTP's choice: the
    error is at most half the round trip); once the start is known, a few more round trips refine it."""
    best: tuple[float, float] | None = None  # (round trip, offset)
    ready: dict[str, Any] | None = None
    extra = 0
    while stop["why"] is None:
        sent = time.time()
        try:
            resp = await http.post(HELLO_PATH, json={"index": index, "of": of, "clock": sent, "instance": instance})
        except httpx.HTTPError:
            resp = None
        received = time.time()
        if resp is not None and resp.status_code in (400, 401):
            stop["why"] = "refused"  # a wrong token or index: retrying cannot help
            return None
        body = None
        if resp is not None and resp.status_code == 200:
            with contextlib.suppress(ValueError):
                body = resp.json()
        if body is not None:
            lease.renew(body.get("lease_s"))
            if body.get("stop"):
                stop["why"] = "stop"
                return None
            offset, rtt = clock_offset(sent, float(body["now"]), received)
            if best is None or rtt < best[0]:
                best = (rtt, offset)
            if body.get("start_at") is not None:
                ready = body
                extra += 1
                # Enough round trips, or the start is near: go with the best estimate so far.
                if extra > REFINE_ROUND_TRIPS or float(body["start_at"]) - body["now"] < 0.5:
                    ready["rtt_s"], ready["offset_s"] = best
                    return ready
                continue
        if lease.expired:
            stop["why"] = "lease"
            return None
        await asyncio.sleep(HELLO_EVERY_S)
    return None


async def _run(http: httpx.AsyncClient, hello: dict[str, Any], index: int, of: int, lease: _Lease,
               stop: dict[str, str | None], instance: str) -> WorkerOutcome:
    offset, rtt = float(hello["offset_s"]), float(hello["rtt_s"])
    # The common start, coordinator clock -> this machine's wall clock -> its perf_counter.
    start_perf = time.perf_counter() + (float(hello["start_at"]) - offset - time.time())
    plan = plan_from_json(hello["plan"], (index, of), start_perf)
    tally = Tally()
    prefix = PrefixBuckets(latencies=bool(hello.get("latencies")))
    page = None
    if hello.get("page"):  # the coordinator serves --metrics-listen: count on the page's fixed buckets
        from loadgen.report.run_metrics import PageIncrements  # only then: a worker stays light

        page = PageIncrements()

    def on_sample(sample: Sample) -> None:
        tally.add(sample)
        prefix.add(sample.t, sample)  # t: the schedule's offset, the same for every worker
        if page is not None:
            page.observe(sample)

    order = SendOrder(on_sample)
    outcome = WorkerOutcome("finished")
    pending: deque[dict[str, Any]] = deque()  # reports not acknowledged yet, oldest first
    seq = 0
    started_late: list[float] = []

    def new_report(final: bool = False, stats: RunStats | None = None) -> None:
        nonlocal seq
        seq += 1
        report: dict[str, Any] = {
            "index": index, "of": of, "instance": instance, "seq": seq, "clock": time.time(), "offset_s": offset,
            "rtt_s": rtt,
            "prefix": prefix.report(), "final": final,
            "progress": {"sent": tally.sent, "errors": tally.error_count, "app_ids": dict(tally.app_ids)},
        }
        if page is not None:
            report["page"] = page.take()  # the samples since the last report: in this report only
        if started_late:
            report["started_late_s"] = started_late[0]
        if final or seq % TALLY_EVERY == 1:
            report["tally"] = tally.encode()
        if stats is not None:
            report["stats"] = dataclasses.asdict(stats)
            report["ended_by"] = stop["why"] or "finished"
        pending.append(report)

    async def flush() -> None:
        """Post the pending reports in order; stop at the first that does not get through."""
        while pending:
            try:
                resp = await http.post(REPORT_PATH, json=pending[0])
            except httpx.HTTPError:
                break
            if resp.status_code == 401 or resp.status_code == 400:
                stop["why"] = "refused"
                pending.clear()
                return
            try:
                body = resp.json()
            except ValueError:  # not the coordinator's answer (a proxy's error page): try again later
                break
            if body.get("stop"):
                stop["why"] = stop["why"] or "stop"
            if resp.status_code == 409:  # the coordinator gave up on this worker (lost): nothing more to say
                pending.clear()
                return
            lease.renew(body.get("lease_s"))
            pending.popleft()  # accepted, or a duplicate of one already merged
            outcome.reports += 1

    def should_stop() -> bool:
        if stop["why"] is None and lease.expired:
            stop["why"] = "lease"
        return stop["why"] is not None

    async def reporter() -> None:
        while True:
            await asyncio.sleep(REPORT_EVERY_S)
            if order.sent_count:
                prefix.advance(order.complete_until(time.perf_counter() - start_perf))
            new_report()
            await flush()

    delay = start_perf - time.perf_counter()
    while delay > 0 and not should_stop():
        await asyncio.sleep(min(delay, 0.1))
        delay = start_perf - time.perf_counter()
    if should_stop():
        outcome.reason = stop["why"] or "stop"
        return outcome
    lease.renew()  # the wait for the start was agreed with a coordinator alive then: the lease runs from here
    started_late.append(time.time() + offset - float(hello["start_at"]))
    ticker = asyncio.create_task(reporter())
    try:
        stats = await run_load(plan, order, should_stop)
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    outcome.sent = stats.sent
    if stop["why"] is not None:
        outcome.reason = stop["why"]
    if outcome.reason in ("lease", "refused"):
        return outcome  # nobody to tell
    prefix.advance(BEYOND_ANY_RUN)  # nothing is in flight: every bucket is complete
    new_report(final=True, stats=stats)
    while pending and not lease.expired and stop["why"] != "refused":
        await flush()
        if pending:
            await asyncio.sleep(HELLO_EVERY_S)
    outcome.final_acked = not pending
    return outcome
