"""The load engine: an open-loop rate schedule that records honest latency.

Each request i has an intended start ``i / rate`` seconds after the run started. Latency
is measured from the *intended* start (so a stalled target cannot hide its stalls by
slowing the generator down: coordinated omission) and, separately, from the actual send.
When the generator cannot keep up (all connections busy), requests start late; the run
counts them and says so.

Every run is bounded: at most ``max_requests`` requests and ``max_time`` seconds, and
it stops early when ``should_stop()`` says so (the judge has a verdict, or Ctrl-C).

The HTTP client here is aiohttp's; a leaner one replaces it on the hot path later
without changing this interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from loadgen.load.sample import Sample

# A request this late (ms) against its schedule counts as a late start.
LATE_MS = 10.0


@dataclass(frozen=True)
class LoadPlan:
    """What to send: where, how fast and for how long (each bound is a hard stop)."""

    url: str
    rate: float  # requests per second, open loop
    max_requests: int
    max_time: float  # seconds
    timeout: float = 5.0  # per request, seconds
    headers: Mapping[str, str] = field(default_factory=dict)
    max_in_flight: int = 256
    new_connection: bool = False  # a fresh TCP connection per request

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.max_requests <= 0 or self.max_time <= 0 or self.timeout <= 0:
            raise ValueError("rate, max_requests, max_time and timeout must be positive")


@dataclass
class RunStats:
    """How the generator itself did."""

    sent: int = 0
    completed: int = 0
    late: int = 0  # started more than LATE_MS after their intended time
    max_late_ms: float = 0.0
    elapsed: float = 0.0
    stopped_by: str = ""  # "max_requests", "max_time", "stop"

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


def app_id_of(headers: Mapping[str, str], body: bytes) -> str | None:
    """service-b's APP_ID: the X-App-Id header, else the JSON body's ``app_id``."""
    value = headers.get("X-App-Id")
    if value:
        return value
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    if isinstance(obj, dict) and obj.get("app_id") is not None:
        return str(obj["app_id"])
    return None


async def run_open_loop(
    plan: LoadPlan, on_sample: Callable[[Sample], None], should_stop: Callable[[], bool] = lambda: False
) -> RunStats:
    """Send ``plan``'s requests on schedule; call ``on_sample`` for each as it completes."""
    loop = asyncio.get_running_loop()
    stats = RunStats()
    connector = aiohttp.TCPConnector(limit=plan.max_in_flight, force_close=plan.new_connection)
    timeout = aiohttp.ClientTimeout(total=plan.timeout)
    slots = asyncio.Semaphore(plan.max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=dict(plan.headers)) as session:
        start = loop.time()

        async def one(intended: float) -> None:
            try:
                sample = await _request(session, plan, start, intended, loop)
                stats.completed += 1
                on_sample(sample)
            finally:
                slots.release()

        stats.stopped_by = "max_requests"
        for i in range(plan.max_requests):
            intended = start + i / plan.rate
            if intended - start >= plan.max_time:
                stats.stopped_by = "max_time"
                break
            if should_stop():
                stats.stopped_by = "stop"
                break
            delay = intended - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            late_ms = (loop.time() - intended) * 1000
            if late_ms > LATE_MS:
                stats.late += 1
                stats.max_late_ms = max(stats.max_late_ms, late_ms)
            stats.sent += 1
            task = asyncio.create_task(one(intended))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        # In-flight requests finish (each bounded by the timeout); none is abandoned.
        if tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*list(tasks), return_exceptions=True)
        stats.elapsed = loop.time() - start
    return stats


async def _request(
    session: aiohttp.ClientSession, plan: LoadPlan, start: float, intended: float, loop: asyncio.AbstractEventLoop
) -> Sample:
    sent = loop.time()
    status: int | None = None
    body = b""
    app_id: str | None = None
    error: str | None = None
    try:
        async with session.get(plan.url) as resp:
            status = resp.status
            body = await resp.read()
            app_id = app_id_of(resp.headers, body)
    except aiohttp.ClientConnectorError:
        error = "connect_refused"
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        error = "reset"
    except TimeoutError:
        error = "timeout"
    except aiohttp.ClientError:
        error = "bad_response"
    done = loop.time()
    if error is None and status is not None:
        if status != 200:
            error = f"http_{status}"
            reason = _reason(body)
            if reason:
                error += f"_{reason}"
        elif app_id is None:
            error = "no_app_id"
    answered = status is not None
    return Sample(
        t=intended - start, status=status, app_id=app_id,
        latency_ms=(done - intended) * 1000 if answered else None, error=error,
        service_ms=(done - sent) * 1000 if answered else None, sent_late_ms=max(0.0, (sent - intended) * 1000),
        bytes=len(body), new_connection=plan.new_connection,
    )


def _reason(body: bytes) -> str | None:
    """service-a's JSON reason for a failure (connection_reset, ...), kept short."""
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    reason = obj.get("error") if isinstance(obj, dict) else None
    return str(reason)[:40] if reason else None
