"""The load engine: open-loop schedules with honest latency, or closed loop for max throughput.

Open loop (like wrk2 / Vegeta): request i has an intended start from the rate schedule.
Latency is measured from that *intended* start ("corrected": a stalled target cannot hide
its stall by slowing the generator down -- coordinated omission) and from the actual send
("service"). When the generator falls behind (all connections busy, or its CPU is full)
requests start late; it counts them and marks the run's numbers invalid past
:data:`MAX_LATE_SHARE` late starts or :data:`MAX_CPU_SHARE` generator CPU.

Closed loop: ``concurrency`` workers each send the next request as soon as the previous one
answered -- the maximum throughput, with no intended times (corrected == service).

Every run is bounded: at most ``max_requests`` requests and ``max_time`` seconds, and it
stops early when ``should_stop()`` says so (a verdict, or Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psutil

from loadgen.load.client import Client, RequestError
from loadgen.load.sample import Sample
from loadgen.load.schedule import RateSchedule

LATE_MS = 10.0  # a request starting this much after its intended time is late
MAX_LATE_SHARE = 0.05
MAX_CPU_SHARE = 0.90


@dataclass(frozen=True)
class LoadPlan:
    """What to send: where, how fast and for how long (each bound is a hard stop)."""

    url: str
    rate: float | None = None  # constant requests/s (open loop); or give schedule
    max_requests: int = 1_000_000
    max_time: float = 30.0  # seconds
    timeout: float = 5.0  # per request, seconds
    headers: Mapping[str, str] = field(default_factory=dict)
    max_in_flight: int = 256  # open loop: connections at most
    new_connection: bool = False  # a fresh TCP connection per request
    schedule: RateSchedule | None = None
    concurrency: int | None = None  # closed loop when set
    shard: tuple[int, int] | None = None  # (k, n): send only requests k, k+n, ... (worker k of n)
    start_at: float | None = None  # perf_counter instant to start at (shared by workers)

    def __post_init__(self) -> None:
        if self.max_requests <= 0 or self.max_time <= 0 or self.timeout <= 0:
            raise ValueError("max_requests, max_time and timeout must be positive")
        if self.concurrency is None and self.rate is None and self.schedule is None:
            raise ValueError("give a rate, a schedule or a concurrency")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")

    @property
    def closed_loop(self) -> bool:
        return self.concurrency is not None

    def rate_schedule(self) -> RateSchedule:
        if self.schedule is not None:
            return self.schedule
        assert self.rate is not None
        return RateSchedule.parse(repr(float(self.rate)))


@dataclass
class RunStats:
    """How the generator itself did."""

    sent: int = 0
    completed: int = 0
    late: int = 0  # started more than LATE_MS after their intended time
    max_late_ms: float = 0.0
    elapsed: float = 0.0
    cpu_share: float = 0.0  # generator process CPU seconds / wall seconds (1.0 = one core)
    stopped_by: str = ""  # "max_requests", "max_time", "stop"

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def late_share(self) -> float:
        return self.late / self.sent if self.sent else 0.0

    def health(self, closed_loop: bool = False) -> dict[str, object]:
        problems = []
        if not closed_loop and self.late_share > MAX_LATE_SHARE:
            problems.append(f"{self.late_share:.1%} of requests started late (limit {MAX_LATE_SHARE:.0%})")
        if self.cpu_share > MAX_CPU_SHARE:
            problems.append(f"generator CPU at {self.cpu_share:.0%} of a core (limit {MAX_CPU_SHARE:.0%})")
        return {"valid": not problems, "problems": problems, "late": self.late,
                "late_share": round(self.late_share, 4), "max_late_ms": round(self.max_late_ms, 3),
                "cpu_share": round(self.cpu_share, 3)}


def _json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (cheaply, without parsing what cannot be one)."""
    if not body or body[:1] != b"{":
        return None
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def app_id_of(headers: Mapping[str, str], body: bytes) -> str | None:
    """service-b's APP_ID: the X-App-Id header, else the JSON body's ``app_id``."""
    value = headers.get("X-App-Id")
    if value:
        return value
    obj = _json_object(body)
    return str(obj["app_id"]) if obj is not None and obj.get("app_id") is not None else None


def _reason(body: bytes) -> str | None:
    """service-a's JSON reason for a failure (connection_reset, ...), kept short."""
    obj = _json_object(body)
    reason = obj.get("error") if obj is not None else None
    return str(reason)[:40] if reason else None


async def _one(client: Client, start: float, intended: float | None, clock: Callable[[], float]) -> Sample:
    """One request. ``intended`` None (closed loop): it was meant to start when it was sent."""
    sent = clock()
    if intended is None:
        intended = sent
    try:
        resp = await client.get()
    except RequestError as exc:
        return Sample(t=intended - start, status=None, app_id=None, latency_ms=None, error=exc.kind,
                      sent_late_ms=max(0.0, (sent - intended) * 1000), new_connection=client.new_connection)
    done = clock()
    # A timer may fire a little early; a request sent before its intended time started when sent.
    begun = min(intended, sent)
    app_id = app_id_of(resp.headers, resp.body)
    error = None
    if resp.status != 200:
        reason = _reason(resp.body)
        error = f"http_{resp.status}" + (f"_{reason}" if reason else "")
    elif app_id is None:
        error = "no_app_id"
    return Sample(
        t=intended - start, status=resp.status, app_id=app_id, latency_ms=(done - begun) * 1000, error=error,
        service_ms=(done - sent) * 1000, sent_late_ms=max(0.0, (sent - intended) * 1000), bytes=len(resp.body),
        new_connection=resp.new_connection,
    )


async def run_load(
    plan: LoadPlan, on_sample: Callable[[Sample], None], should_stop: Callable[[], bool] = lambda: False
) -> RunStats:
    """Run ``plan``; call ``on_sample`` for every request as it completes. In-flight requests
    always finish (each bounded by the timeout): no collected sample is ever dropped."""
    # perf_counter, not loop.time(): uvloop's loop clock ticks in whole milliseconds.
    clock = time.perf_counter
    stats = RunStats()
    client = Client(plan.url, headers=dict(plan.headers), timeout=plan.timeout, new_connection=plan.new_connection)
    proc = psutil.Process()
    if plan.start_at is not None and plan.start_at > clock():
        await asyncio.sleep(plan.start_at - clock())
    cpu0 = sum(proc.cpu_times()[:2])
    start = plan.start_at if plan.start_at is not None else clock()
    try:
        if plan.closed_loop:
            await _closed_loop(plan, client, start, clock, stats, on_sample, should_stop)
        else:
            await _open_loop(plan, client, start, clock, stats, on_sample, should_stop)
    finally:
        client.close()
        stats.elapsed = clock() - start
        stats.cpu_share = (sum(proc.cpu_times()[:2]) - cpu0) / stats.elapsed if stats.elapsed > 0 else 0.0
    return stats


async def _open_loop(plan: LoadPlan, client: Client, start: float, clock: Callable[[], float], stats: RunStats,
                     on_sample: Callable[[Sample], None], should_stop: Callable[[], bool]) -> None:
    slots = asyncio.Semaphore(plan.max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(intended: float) -> None:
        try:
            sample = await _one(client, start, intended, clock)
            stats.completed += 1
            on_sample(sample)
        finally:
            slots.release()

    stats.stopped_by = "max_time"
    k, n = plan.shard or (0, 1)
    cap = -(-plan.max_requests // n)  # this worker's share of the budget
    for i, offset in enumerate(plan.rate_schedule().offsets(plan.max_time)):
        if i % n != k:
            continue
        if stats.sent >= cap:
            stats.stopped_by = "max_requests"
            break
        if should_stop():
            stats.stopped_by = "stop"
            break
        intended = start + offset
        delay = intended - clock()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        await slots.acquire()
        late_ms = (clock() - intended) * 1000
        if late_ms > LATE_MS:
            stats.late += 1
            if late_ms > stats.max_late_ms:
                stats.max_late_ms = late_ms
        stats.sent += 1
        task = loop_create_task(one(intended))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*list(tasks), return_exceptions=True)


async def _closed_loop(plan: LoadPlan, client: Client, start: float, clock: Callable[[], float],
                       stats: RunStats, on_sample: Callable[[Sample], None], should_stop: Callable[[], bool]) -> None:
    assert plan.concurrency is not None
    deadline = start + plan.max_time
    n = plan.shard[1] if plan.shard else 1
    cap = -(-plan.max_requests // n)
    # Each worker has its own connection (one request at a time per connection).
    clients = [client] + [Client(plan.url, headers=dict(plan.headers), timeout=plan.timeout,
                                 new_connection=plan.new_connection) for _ in range(plan.concurrency - 1)]
    stats.stopped_by = "max_time"

    async def worker(c: Client) -> None:
        while True:
            if stats.sent >= cap:
                stats.stopped_by = "max_requests"
                return
            if should_stop():
                stats.stopped_by = "stop"
                return
            now = clock()
            if now >= deadline:
                return
            stats.sent += 1
            sample = await _one(c, start, None, clock)
            stats.completed += 1
            on_sample(sample)

    try:
        await asyncio.gather(*(worker(c) for c in clients))
    finally:
        for c in clients[1:]:
            c.close()


def loop_create_task(coro: object) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]


def run_blocking(coro_factory: Callable[[], object]) -> object:
    """Run a coroutine on uvloop when it is installed (cheaper per request), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    return uvloop.run(coro_factory())  # type: ignore[arg-type]
