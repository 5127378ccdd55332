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
stops early when ``should_stop()`` says so (a verdict, Ctrl-C or SIGTERM). ``max_time`` is a
wall-clock deadline, not the schedule's length: a generator that cannot keep the rate stops
sending at the deadline (it does not work through its backlog afterwards), and the requests
that were due by then but never sent are counted as ``dropped`` (k6's dropped_iterations).
Requests in flight at the deadline still finish, each bounded by the per-request timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import psutil

from loadgen.load.client import Client, RequestError, TlsOptions
from loadgen.load.health import TARGET_HELD_SLOTS, GeneratorHealth
from loadgen.load.identity import AUTO, IdentityRule, json_object
from loadgen.load.sample import Sample
from loadgen.load.schedule import RateSchedule, Segment
from loadgen.load.send_order import SendOrder

STOP_POLL_S = 0.1  # the longest the open loop sleeps before looking at should_stop() again
LATE_MS = 10.0  # a request starting this much after its intended time is late
LATE_S = LATE_MS / 1000
MAX_LATE_SHARE = 0.05
MAX_CPU_SHARE = 0.90
YIELD_EVERY = 64  # the open loop hands control to the event loop at least once per this many sends


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
    identity: IdentityRule = AUTO  # how a response names its backend (--subset-from)
    method: str = "GET"
    body: bytes | None = None
    tls: TlsOptions | None = None  # https:// targets: CA file, no verification, SNI name

    def client(self, **overrides: object) -> Client:
        """A lean client sending this plan's request."""
        args: dict[str, object] = {"headers": dict(self.headers), "timeout": self.timeout,
                                   "new_connection": self.new_connection, "method": self.method, "body": self.body,
                                   "tls": self.tls}
        return Client(self.url, **{**args, **overrides})  # type: ignore[arg-type]

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
        # Built directly, not parsed: MAX_RATE bounds what users ask for, not the engine.
        return RateSchedule((Segment(float(self.rate), float(self.rate), None),), repr(float(self.rate)))


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
    # Open loop: due (intended start before the deadline, or more than LATE_MS before a stop)
    # but never sent, because the generator was behind when it had to stop.
    dropped: int = 0
    # Open loop: requests that found every connection busy waiting on the target's answers. Late
    # starts and drops are then the target's doing (it does not answer, or too slowly), not a
    # generator too slow for the rate.
    waited_for_target: int = 0

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def late_share(self) -> float:
        return self.late / self.sent if self.sent else 0.0

    @property
    def due(self) -> int:
        """Requests the schedule asked for by the time the run stopped: sent or dropped."""
        return self.sent + self.dropped

    @property
    def dropped_share(self) -> float:
        return self.dropped / self.due if self.due else 0.0

    def health(self, closed_loop: bool = False) -> dict[str, object]:
        """:meth:`generator_health` as the plain dict the canary's JSON holds."""
        return self.generator_health(closed_loop).to_json()

    def generator_health(self, closed_loop: bool = False) -> GeneratorHealth:
        problems = []
        # Slots held by requests in flight are the target's doing unless the generator's own CPU
        # was full (then it read the answers late, and held the slots itself).
        blame_target = self.waited_for_target > 0 and self.cpu_share <= MAX_CPU_SHARE
        cause = TARGET_HELD_SLOTS if blame_target else "generator too slow for the rate"
        if not closed_loop and self.late_share > MAX_LATE_SHARE:
            problems.append(f"{self.late_share:.1%} of requests started late (limit {MAX_LATE_SHARE:.0%}"
                            + (f"; {cause})" if blame_target else ")"))
        # Any drop invalidates, unlike late starts: a late request is still measured from its
        # intended start, so its lateness is in the corrected latency; a dropped one is not
        # measured at all, and the dropped ones are the latest of the run -- exactly the tail
        # that correcting for coordinated omission exists to show. (A run stopped while on
        # time drops nothing: requests due in the last LATE_MS before a stop are not counted.)
        if not closed_loop and self.dropped:
            problems.append(f"{self.dropped:,} requests due by the deadline were never sent "
                            f"({self.dropped_share:.1%} of {self.due:,}; {cause})")
        if self.cpu_share > MAX_CPU_SHARE:
            problems.append(f"generator CPU at {self.cpu_share:.0%} of a core (limit {MAX_CPU_SHARE:.0%})")
        return GeneratorHealth(valid=not problems, problems=problems, late=self.late,
                               late_share=round(self.late_share, 4), max_late_ms=round(self.max_late_ms, 3),
                               dropped=self.dropped, dropped_share=round(self.dropped_share, 4),
                               cpu_share=round(self.cpu_share, 3))


def app_id_of(headers: Mapping[str, str], body: bytes) -> str | None:
    """service-b's APP_ID: the X-App-Id header, else the JSON body's ``app_id`` (``--subset-from auto``)."""
    return AUTO.of(headers, body)


def _reason(body: bytes) -> str | None:
    """service-a's JSON reason for a failure (connection_reset, ...), kept short."""
    obj = json_object(body)
    reason = obj.get("error") if obj is not None else None
    return str(reason)[:40] if reason else None


async def _one(client: Client, start: float, intended: float | None, clock: Callable[[], float],
               identity: IdentityRule = AUTO) -> Sample:
    """One request. ``intended`` None (closed loop): it was meant to start when it was sent."""
    sent = clock()
    if intended is None:
        intended = sent
    try:
        resp = await client.send()
    except RequestError as exc:
        return Sample(t=intended - start, status=None, app_id=None, latency_ms=None, error=exc.kind,
                      sent_late_ms=max(0.0, (sent - intended) * 1000), new_connection=client.new_connection)
    done = clock()
    # A timer may fire a little early; a request sent before its intended time started when sent.
    begun = min(intended, sent)
    app_id = identity.of(resp.headers, resp.body)
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
    plan: LoadPlan, on_sample: Callable[[Sample], None] | SendOrder,
    should_stop: Callable[[], bool] = lambda: False,
) -> RunStats:
    """Run ``plan``; hand every request's sample on **in the order the requests were sent**
    (:class:`SendOrder`: a sample waits until every earlier request has ended, at most the
    per-request timeout). Give a :class:`SendOrder` to watch how far the released prefix
    trails the sends; a plain callable is wrapped in one. In-flight requests always finish:
    no collected sample is ever dropped."""
    order = on_sample if isinstance(on_sample, SendOrder) else SendOrder(on_sample)
    # perf_counter, not loop.time(): uvloop's loop clock ticks in whole milliseconds.
    clock = time.perf_counter
    stats = RunStats()
    client = plan.client()
    proc = psutil.Process()
    if plan.start_at is not None and plan.start_at > clock():
        await asyncio.sleep(plan.start_at - clock())
    cpu0 = sum(proc.cpu_times()[:2])
    start = plan.start_at if plan.start_at is not None else clock()
    try:
        if plan.closed_loop:
            await _closed_loop(plan, client, start, clock, stats, order, should_stop)
        else:
            await _open_loop(plan, client, start, clock, stats, order, should_stop)
    finally:
        order.close()  # requests cancelled before they ended leave gaps: release the rest
        client.close()
        stats.elapsed = clock() - start
        stats.cpu_share = (sum(proc.cpu_times()[:2]) - cpu0) / stats.elapsed if stats.elapsed > 0 else 0.0
    return stats


async def _open_loop(plan: LoadPlan, client: Client, start: float, clock: Callable[[], float], stats: RunStats,
                     order: SendOrder, should_stop: Callable[[], bool]) -> None:
    slots = asyncio.Semaphore(plan.max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def one(intended: float, ticket: int) -> None:
        try:
            sample = await _one(client, start, intended, clock, plan.identity)
            stats.completed += 1
            order.done(ticket, sample)
        finally:
            slots.release()

    schedule = plan.rate_schedule()
    deadline = start + plan.max_time
    stats.stopped_by = "max_time"
    k, n = plan.shard or (0, 1)
    cap = -(-plan.max_requests // n)  # this worker's share of the budget
    # Where the schedule was cut short (seconds from start): requests due before it and not
    # sent are dropped. None: the schedule ran out, or the request budget did.
    cut: float | None = None
    for offset in shard_offsets(schedule, plan.max_time, k, n):
        if stats.sent >= cap:
            stats.stopped_by = "max_requests"
            break
        if should_stop():
            stats.stopped_by, cut = "stop", clock() - start - LATE_S
            break
        intended = start + offset
        delay = intended - clock()
        if delay > 0.0005:
            # In slices, so a stop (verdict, Ctrl-C) is seen within STOP_POLL_S even at --rate 0.1.
            while (delay := intended - clock()) > 0.0005 and not should_stop():
                await asyncio.sleep(min(delay, STOP_POLL_S))
            if should_stop():  # asked to stop while waiting: do not send one more
                stats.stopped_by, cut = "stop", clock() - start - LATE_S
                break
        # The last instant this request may start: before the deadline, or after it only while
        # on time (a timer firing a hair past the deadline for a request due just before it).
        if slots.locked():
            stats.waited_for_target += 1
        if not await _acquire_by(slots, max(deadline, intended + LATE_S), clock):
            cut = plan.max_time  # every request of the schedule was due by the deadline
            break
        late_ms = (clock() - intended) * 1000
        if late_ms > LATE_MS:
            stats.late += 1
            if late_ms > stats.max_late_ms:
                stats.max_late_ms = late_ms
        stats.sent += 1
        task = loop_create_task(one(intended, order.sent(offset)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if stats.sent % YIELD_EVERY == 0:
            # A generator behind its schedule never sleeps above and takes a free slot without
            # awaiting: let the loop run now and then, or Ctrl-C / SIGTERM (delivered through
            # the loop) and the answers would wait until the slots run out.
            await asyncio.sleep(0)
    if cut is not None:
        # Counted from the schedule's formula, never by walking it: at --rate 1e9 the offsets
        # left after the deadline number in billions.
        due = min(cap, shard_count(scheduled_before(schedule, plan.max_time, cut), k, n))
        stats.dropped = max(0, due - stats.sent)
    if tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*list(tasks), return_exceptions=True)


async def _acquire_by(slots: asyncio.Semaphore, cutoff: float, clock: Callable[[], float]) -> bool:
    """Take a connection slot by ``cutoff`` (a perf_counter instant); False once it is past."""
    remaining = cutoff - clock()
    if remaining < 0:
        return False
    if not slots.locked():
        return await slots.acquire()  # free: returns at once, without yielding to the loop
    try:
        return await asyncio.wait_for(slots.acquire(), remaining)
    except TimeoutError:
        return False


def shard_count(total: int, k: int, n: int) -> int:
    """How many of the requests 0 .. total-1 are worker k's (of n): k, k+n, k+2n, ..."""
    return max(0, (total - k + n - 1) // n)


def shard_offsets(schedule: RateSchedule, duration: float, k: int, n: int) -> Iterator[float]:
    """Worker k of n's intended start offsets: the k-th, (k+n)-th, (k+2n)-th ... of
    ``schedule.offsets(duration)``, the same floats, computed directly from each segment's time
    formula -- not by walking the other workers' n-1 of every n (at 100 workers, 99 % waste)."""
    if n == 1:
        yield from schedule.offsets(duration)
        return
    before, base = 0, 0.0  # requests of the segments before this one; where this one starts
    for seg in schedule.segments:
        length = duration - base if seg.seconds is None else seg.seconds
        if length <= 0:
            return
        ramp = Segment(seg.start_rate, seg.end_rate, length) if seg.seconds is None else seg
        j = (k - before) % n  # this segment's first request whose index in the whole schedule is k mod n
        while True:  # offsets()'s condition: a segment's times only grow, so the first out ends it
            t = ramp.time_of(j, length)
            if t >= length or base + t >= duration:
                break
            yield base + t
            j += n
        before += _segment_count(ramp, base, length, duration, duration)
        base += length
        if base >= duration:
            return


def scheduled_before(schedule: RateSchedule, duration: float, until: float) -> int:
    """How many of ``schedule.offsets(duration)`` are below ``until``, from each segment's
    count formula (checked against its time formula at the edge, so it agrees with offsets()
    exactly despite rounding) instead of walking them."""
    limit = min(until, duration)
    total, base = 0, 0.0
    for seg in schedule.segments:
        if base >= limit:
            break
        length = duration - base if seg.seconds is None else seg.seconds
        if length <= 0:
            break
        ramp = Segment(seg.start_rate, seg.end_rate, length) if seg.seconds is None else seg
        total += _segment_count(ramp, base, length, duration, limit)
        base += length
    return total


_EDGE_STEPS = 16  # the most _segment_count walks from its formula's count


def _segment_count(ramp: Segment, base: float, length: float, duration: float, limit: float) -> int:
    def inside(j: int) -> bool:  # offsets() yields the j-th request of this segment
        try:
            t = ramp.time_of(j, length)
        except ValueError:  # a falling ramp's formula has no time for requests past its end
            return False
        return t < length and base + t < duration and base + t < limit

    j = max(0, math.ceil(ramp.count_until(max(0.0, min(length, limit - base)))))
    # The formula is off by rounding only: a few steps settle it. Bounded, so this stays O(1)
    # whatever the numbers (a count past 2**53 cannot be stepped at all: j + 1 == j as floats).
    for _ in range(_EDGE_STEPS):
        if j > 0 and not inside(j - 1):
            j -= 1
        elif inside(j):
            j += 1
        else:
            break
    return j


async def _closed_loop(plan: LoadPlan, client: Client, start: float, clock: Callable[[], float],
                       stats: RunStats, order: SendOrder, should_stop: Callable[[], bool]) -> None:
    assert plan.concurrency is not None
    deadline = start + plan.max_time
    n = plan.shard[1] if plan.shard else 1
    cap = -(-plan.max_requests // n)
    # Each worker has its own connection (one request at a time per connection).
    clients = [client] + [plan.client() for _ in range(plan.concurrency - 1)]
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
            ticket = order.sent(now - start)
            sample = await _one(c, start, None, clock, plan.identity)
            stats.completed += 1
            order.done(ticket, sample)

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
