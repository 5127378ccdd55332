"""The coordinator's side: an HTTP endpoint the workers report to, and the exact merge.

It runs an aiohttp server on its own thread (bound to 127.0.0.1 unless told otherwise: a
worker on another machine needs an address it can reach, given with ``bind``), so the CLI's
thread can judge, draw the status line and handle Ctrl-C as it does for one process.

What it keeps per worker (:class:`WorkerState`): the last accepted sequence number, its newest
cumulative tally (HDR histograms encoded, exact to add), its clock offset and round trip, its
final generator stats. Across workers: every send-ordered bucket (:class:`MergedPrefix`), what
the judge looks at -- the buckets below every live worker's complete mark.

Start: a worker says hello until every worker has; the coordinator then fixes one start
instant on its own clock (``start_lead_s`` ahead, so the last worker to hear it is not late)
and each worker converts it to its own clock with the offset it measured.

The Prometheus page (``--metrics-listen``): when the run serves one, the hello asks the workers
for its counts (``page``) and each accepted report's increments go to ``on_page`` once, exactly
as its buckets are merged once.

Stop: :meth:`Coordinator.stop` makes every reply say stop. A worker that hears nothing for
``lease_s`` (the coordinator killed, the network cut) stops by itself, so no worker outlives
its coordinator by more than the lease plus its requests' timeout.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from loadgen.distributed.protocol import HELLO_PATH, REPORT_PATH, TOKEN_HEADER, plan_to_json, token_ok
from loadgen.errors import EnvironmentProblem
from loadgen.load.engine import LoadPlan, RunStats
from loadgen.load.prefix_buckets import BUCKET_S, BucketCounts, MergedPrefix
from loadgen.load.tally import Tally

if TYPE_CHECKING:
    from loadgen.report.run_metrics import PageIncrement

__all__ = ["Coordinator", "WorkerState", "merged_stats"]

DEFAULT_LEASE_S = 10.0
START_LEAD_S = 1.0
MAX_REPORT_BYTES = 64 * 1024 * 1024  # a long run's cumulative histograms, with room


@dataclass
class WorkerState:
    index: int
    instance: str | None = None  # the process that took this index (a rescheduled copy is another)
    hello_at: float | None = None  # coordinator clock, the first hello
    offset_s: float | None = None  # the worker's estimate of (coordinator clock - its clock)
    rtt_s: float | None = None
    seq: int = 0  # the last accepted report
    last_heard: float | None = None  # monotonic, the last accepted (or duplicate) report or hello
    tally: dict[str, Any] | None = None  # newest cumulative Tally.encode()
    sent: int = 0
    errors: int = 0
    app_ids: dict[str, int] = field(default_factory=dict)
    started_late_s: float | None = None  # its first send instant minus the common start (coordinator clock)
    stats: dict[str, Any] | None = None  # RunStats fields, with the final report
    final: bool = False
    lost: str | None = None  # why the coordinator stopped waiting for it
    ended_by: str | None = None  # why it stopped, from its final report (finished, stop, signal)
    replacements: int = 0  # other processes that asked for this index (Nomad rescheduling it) and were sent away
    duplicates: int = 0  # reports received again and not merged
    buckets: dict[int, Counter[str]] = field(default_factory=dict)  # its own answers per APP_ID and bucket

    def answers_from(self, bucket: int) -> dict[str, int]:
        """Its answers per APP_ID in the buckets from ``bucket`` on (what of it was judged)."""
        total: Counter[str] = Counter()
        for b, counts in self.buckets.items():
            if b >= bucket:
                total.update(counts)
        return dict(total)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "seq": self.seq, "sent": self.sent, "errors": self.errors,
                "app_ids": dict(self.app_ids), "final": self.final, "lost": self.lost, "ended_by": self.ended_by,
                "replacements": self.replacements,
                "clock_offset_ms": None if self.offset_s is None else round(self.offset_s * 1000, 3),
                "rtt_ms": None if self.rtt_s is None else round(self.rtt_s * 1000, 3),
                "start_error_ms": None if self.started_late_s is None else round(self.started_late_s * 1000, 3),
                "duplicates": self.duplicates}


class Coordinator:
    def __init__(self, plan: LoadPlan, workers: int, *, latencies: bool = False, bind: str = "127.0.0.1",
                 port: int = 0, lease_s: float = DEFAULT_LEASE_S, start_lead_s: float = START_LEAD_S,
                 on_page: Callable[[int, PageIncrement], None] | None = None) -> None:
        self.plan = plan
        self.on_page = on_page  # the page's increments of each accepted report, by worker (None: no page)
        self.n = workers
        self.latencies = latencies
        self.bind, self.port = bind, port
        self.lease_s = lease_s
        self.start_lead_s = start_lead_s
        self.token = secrets.token_urlsafe(32)  # this run's only: never printed or logged
        self.lock = threading.Lock()
        self.workers = {k: WorkerState(k) for k in range(workers)}
        self.prefix = MergedPrefix()
        self.start_at: float | None = None  # coordinator wall clock
        self.stop_reason: str | None = None
        self.rejected = 0  # requests refused (bad token, bad body, out of order)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve on a thread of its own; returns once the port is bound (``port`` 0: a free one)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # the bind failed: said by start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=serve, name="loadgen-coordinator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise EnvironmentProblem(f"the coordinator cannot listen on {self.bind}:{self.port}: {failure[0]}")

    async def _serve(self) -> None:
        app = web.Application(client_max_size=MAX_REPORT_BYTES)
        app.router.add_post(HELLO_PATH, self._hello)
        app.router.add_post(REPORT_PATH, self._report)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.bind, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def close(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop = None

    def stop(self, reason: str) -> None:
        """Every reply from now on tells the workers to stop (the first reason is kept)."""
        with self.lock:
            self.stop_reason = self.stop_reason or reason

    # -- the workers' requests ---------------------------------------------------------------
    async def _body(self, request: web.Request
                    ) -> tuple[dict[str, Any] | None, WorkerState | None, web.Response | None]:
        if not token_ok(request.headers.get(TOKEN_HEADER), self.token):
            self.rejected += 1
            return None, None, web.json_response({"error": "unauthorized"}, status=401)
        try:
            body = await request.json()
            worker = self.workers[int(body["index"])]
            if int(body.get("of", self.n)) != self.n:
                raise ValueError("of")
        except (ValueError, KeyError, TypeError):
            self.rejected += 1
            return None, None, web.json_response({"error": "bad request"}, status=400)
        return body, worker, None

    async def _hello(self, request: web.Request) -> web.Response:
        body, worker, refused = await self._body(request)
        if refused is not None:
            return refused
        assert body is not None and worker is not None
        now = time.time()
        instance = str(body.get("instance") or "")
        with self.lock:
            if worker.instance is not None and instance != worker.instance:
                # Another process for an index already taken (Nomad rescheduled a stopped allocation):
                # its share cannot be caught up, and two senders of one share would count it twice.
                worker.replacements += 1
                return web.json_response({"now": time.time(), "start_at": None, "lease_s": self.lease_s,
                                          "stop": f"worker {worker.index} already ran as another process"})
            worker.instance = instance
            if worker.hello_at is None:
                worker.hello_at = now
            worker.last_heard = time.monotonic()
            if self.start_at is None and self.stop_reason is None and all(
                    w.hello_at is not None for w in self.workers.values()):
                self.start_at = now + self.start_lead_s
            return web.json_response({"now": time.time(), "start_at": self.start_at, "stop": self.stop_reason,
                                      "lease_s": self.lease_s, "plan": plan_to_json(self.plan),
                                      "latencies": self.latencies, "page": self.on_page is not None})

    async def _report(self, request: web.Request) -> web.Response:
        body, worker, refused = await self._body(request)
        if refused is not None:
            return refused
        assert body is not None and worker is not None
        try:
            seq = int(body["seq"])
            page = None if self.on_page is None or body.get("page") is None else _decode_page(body["page"])
        except (KeyError, TypeError, ValueError):
            self.rejected += 1
            return web.json_response({"error": "bad request"}, status=400)
        with self.lock:
            if worker.instance is not None and str(body.get("instance") or "") != worker.instance:
                self.rejected += 1
                return web.json_response({"error": "not this index's worker", "seq": worker.seq, "stop": "replaced"},
                                         status=409)
            if seq <= worker.seq:  # a retry of one already merged: never counted twice
                worker.duplicates += 1
                worker.last_heard = time.monotonic()
                return web.json_response({"accepted": False, "duplicate": True, "seq": worker.seq,
                                          "stop": self.stop_reason, "lease_s": self.lease_s})
            if seq != worker.seq + 1 or worker.lost is not None:
                self.rejected += 1
                return web.json_response({"error": f"expected report {worker.seq + 1}", "seq": worker.seq,
                                          "stop": self.stop_reason or (worker.lost and "lost")}, status=409)
            self._merge(worker, body)
            if page is not None and self.on_page is not None:
                self.on_page(worker.index, page)  # once: this seq is taken now, a copy of it is a duplicate
            worker.seq = seq
            worker.last_heard = time.monotonic()
            return web.json_response({"accepted": True, "seq": seq, "stop": self.stop_reason,
                                      "lease_s": self.lease_s})

    def _merge(self, worker: WorkerState, body: dict[str, Any]) -> None:
        """One accepted report (under the lock)."""
        if body.get("prefix") is not None:
            self.prefix.merge(f"w{worker.index}", body["prefix"])
            for key, data in body["prefix"].get("buckets", {}).items():
                worker.buckets.setdefault(int(key), Counter()).update(
                    {str(a): int(n) for a, n in data.get("app_ids", {}).items()})
        if body.get("tally") is not None:
            worker.tally = body["tally"]
        progress = body.get("progress") or {}
        worker.sent = int(progress.get("sent", worker.sent))
        worker.errors = int(progress.get("errors", worker.errors))
        worker.app_ids = {str(a): int(n) for a, n in (progress.get("app_ids") or worker.app_ids).items()}
        if body.get("offset_s") is not None:
            worker.offset_s, worker.rtt_s = float(body["offset_s"]), float(body.get("rtt_s") or 0.0)
        if body.get("started_late_s") is not None:
            worker.started_late_s = float(body["started_late_s"])
        if body.get("final"):
            worker.final = True
            worker.stats = body.get("stats")
            worker.ended_by = str(body.get("ended_by") or "finished")

    # -- what the CLI's thread asks ---------------------------------------------------------------
    @property
    def started(self) -> bool:
        with self.lock:
            return self.start_at is not None

    def sending(self) -> list[int]:
        """Workers whose reports show their first send and answers: the run is under way on them."""
        with self.lock:
            return [k for k, w in self.workers.items() if w.started_late_s is not None and w.sent > 0]

    def tallies(self) -> dict[int, dict[str, Any]]:
        """Each worker's newest cumulative tally (Tally.encode()), as it sent it; absent: none arrived."""
        with self.lock:
            return {k: w.tally for k, w in self.workers.items() if w.tally is not None}

    def not_started(self) -> list[int]:
        with self.lock:
            return [k for k, w in self.workers.items() if w.hello_at is None]

    def all_final(self) -> bool:
        with self.lock:
            return all(w.final or w.lost for w in self.workers.values())

    def mark_lost(self, index: int, why: str) -> None:
        """Stop waiting for a worker (its allocation died, its lease ran out): what it reported stays;
        its complete mark no longer holds the judged prefix back."""
        with self.lock:
            w = self.workers[index]
            if not w.final and w.lost is None:
                w.lost = why

    def silent(self, now: float | None = None) -> list[int]:
        """Workers that started and have not been heard from for longer than the lease."""
        now = time.monotonic() if now is None else now
        with self.lock:
            return [k for k, w in self.workers.items() if not w.final and w.lost is None
                    and w.last_heard is not None and now - w.last_heard > self.lease_s]

    def judged(self, final: bool = False, from_bucket: int | None = None) -> tuple[BucketCounts, float | None]:
        """The merged send-ordered counts every worker still running has completed (every reported
        bucket on the final look, or once none is running), from ``from_bucket`` on (the warm-up's
        buckets are not judged), and the send time (seconds into the run) they are complete to."""
        with self.lock:
            live = [f"w{k}" for k, w in self.workers.items() if w.lost is None and not w.final]
            below: int | None = None
            if not final and live:
                if not all(s in self.prefix.sources for s in live):
                    return BucketCounts(), None  # a worker has not reported yet: nothing is complete
                below = self.prefix.complete_below(live)
            total = BucketCounts()
            for b, c in self.prefix.buckets.items():
                if (from_bucket is None or b >= from_bucket) and (below is None or b < below):
                    total.add(c)
            return total, None if below is None else below * BUCKET_S

    def counts_below(self, bucket: int) -> BucketCounts:
        """The merged counts of the buckets below ``bucket`` (the warm-up's)."""
        with self.lock:
            total = BucketCounts()
            for b, c in self.prefix.buckets.items():
                if b < bucket:
                    total.add(c)
            return total

    def progress(self) -> tuple[int, int, dict[str, int]]:
        """(sent, errors, answers per APP_ID) of the workers' latest reports (display only)."""
        with self.lock:
            app_ids: dict[str, int] = {}
            for w in self.workers.values():
                for a, n in w.app_ids.items():
                    app_ids[a] = app_ids.get(a, 0) + n
            return (sum(w.sent for w in self.workers.values()), sum(w.errors for w in self.workers.values()),
                    app_ids)

    def merged_tally(self) -> Tally:
        """Every worker's newest cumulative tally, added (exact: counts and HDR histograms add)."""
        with self.lock:
            return Tally.merged(w.tally for w in self.workers.values() if w.tally is not None)

    def per_worker_stats(self) -> dict[int, RunStats]:
        with self.lock:
            return {k: RunStats(**w.stats) for k, w in self.workers.items() if w.stats is not None}

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [w.to_json() for w in self.workers.values()]

    def start_spread_ms(self) -> float | None:
        """How far apart the workers' first sends were, on the coordinator's clock."""
        with self.lock:
            late = [w.started_late_s for w in self.workers.values() if w.started_late_s is not None]
        return round((max(late) - min(late)) * 1000, 3) if len(late) > 1 else None

    def max_skew_ms(self) -> float | None:
        with self.lock:
            offsets = [abs(w.offset_s) for w in self.workers.values() if w.offset_s is not None]
        return round(max(offsets) * 1000, 3) if offsets else None


def _decode_page(data: Any) -> PageIncrement:
    from loadgen.report.run_metrics import decode_increment  # only a run with a page gets here

    return decode_increment(data)


def merged_stats(per_worker: list[RunStats], interrupted: bool) -> RunStats:
    """The generators together, as load.workers merges its processes': sums, the worst worker's
    lateness and CPU."""
    return RunStats(
        sent=sum(w.sent for w in per_worker), completed=sum(w.completed for w in per_worker),
        late=sum(w.late for w in per_worker), max_late_ms=max(w.max_late_ms for w in per_worker),
        elapsed=max(w.elapsed for w in per_worker), cpu_share=max(w.cpu_share for w in per_worker),
        stopped_by="stop" if interrupted else per_worker[0].stopped_by,
        dropped=sum(w.dropped for w in per_worker), waited_for_target=sum(w.waited_for_target for w in per_worker),
    )


