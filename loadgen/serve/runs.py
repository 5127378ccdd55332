"""The server's canaries: each runs in a worker thread, at most ``max_runs`` at once.

Why threads and not a ``loadgen canary`` subprocess per run: a run is :func:`run_live` itself, so
``GET`` can show the latest look's figures (the :class:`Snapshot` the CLI's status line shows) at no
cost, and a run starts at once (a subprocess pays numpy and scipy's import, ~1-2 s, each time).
``run_live`` installs its Ctrl-C/SIGTERM handlers through ``loop.add_signal_handler``, which only
works on the main thread: in a worker that is refused and skipped (interrupts.stop_on_signals
suppresses it), so ``DELETE`` stops a run with ``run_live(cancel=...)``, a threading.Event its
monitor looks at with every look, exactly where a signal would set the same stop flag. The
server's own SIGINT/SIGTERM (aiohttp's, on the main thread) cancels every run the same way.
Each run's end is one line of the server's log (its verdict, requests, what stopped it): after a
SIGTERM the results are judged but no client is left to GET them, and the log is where they stay.

A run that fails (unreachable target, an error only the answers show, a bug) ends with the result
``loadgen canary --json`` writes for it (canary.unstarted: INCONCLUSIVE, nothing judged, its
``exit_code`` the error's) and the server keeps serving.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.canary import CanaryOptions, Snapshot, run_live
from loadgen.canary.expectation import expects_consul
from loadgen.canary.unstarted import unstarted_result
from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.consul_api import ConsulClient
from loadgen.report.run_metrics import RunMetrics
from loadgen.safe_text import describe_exception
from loadgen.serve.body import BodyError, PostedCanary

__all__ = ["RUNNING", "Run", "Runs", "TooManyRuns"]

RUNNING = "RUNNING"

log = logging.getLogger("loadgen.serve")


class TooManyRuns(Exception):
    """``max_runs`` canaries are running: 429."""


@dataclass
class Run:
    id: str
    posted: PostedCanary
    created: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    snapshot: Snapshot | None = None  # the latest look (replaced whole by the worker: no lock needed)
    result: dict[str, Any] | None = None  # `canary --json`'s, once the run ended
    error: str | None = None  # the one line of an error that ended it without a verdict
    gate_answered: bool = False  # a gate call has reported this run's result (loadgen.serve.gate)
    ended: float | None = None  # time.time() when the result was set
    metrics: RunMetrics = field(default_factory=lambda: RunMetrics("canary"))  # its series on GET /metrics

    @property
    def state(self) -> str:
        return RUNNING if self.result is None else str(self.result["verdict"])

    def to_json(self) -> dict[str, Any]:
        """What GET answers: `canary --json` plus ``id``, ``state`` and ``options`` once ended; while
        running, the latest look's figures under ``progress``."""
        head = {"id": self.id, "state": self.state, "options": self.posted.shown(),
                "cancelled": self.cancel.is_set()}
        if self.result is not None:
            return {**self.result, **head, "error": self.error}
        snap = self.snapshot
        progress = None if snap is None else {
            "sent": snap.sent, "elapsed_s": round(snap.elapsed, 3), "errors": snap.errors,
            "look": snap.verdict.state.value, "reason": snap.verdict.reason, "judge": snap.verdict.to_json(),
        }
        return {**head, "verdict": None, "progress": progress}


class Runs:
    """Every canary the server was asked for: running ones, and the last ``keep`` that ended."""

    def __init__(self, max_runs: int = 4, keep: int = 100, consul_addr: str | None = None,
                 run: Callable[..., Any] = run_live) -> None:
        self.max_runs = max_runs
        self.keep = keep
        self.consul_addr = consul_addr  # None: no Consul (a posted canary then needs 'map' and a split)
        self._run_live = run
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._lock = threading.Lock()

    def running(self) -> list[Run]:
        with self._lock:
            return [r for r in self._runs.values() if r.result is None]

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            return self._runs.get(run_id)

    def start(self, posted: PostedCanary, reuse: Callable[[Run], bool] | None = None) -> Run:
        """A new run of ``posted`` (or, given ``reuse``, the newest existing run with the same options
        it accepts). Raises :class:`TooManyRuns`, and BodyError (400) for a canary that needs a Consul
        when the server has none."""
        options = posted.options
        if self.consul_addr is None and (expects_consul(options.expect) or not options.mapping):
            raise BodyError("this server reads no Consul (loadgen serve --consul, or CONSUL_HTTP_ADDR): give "
                            "'map' (like \"1=v1,2=v2\") and the split itself (like \"85/15\")")
        with self._lock:
            if reuse is not None:
                for run in reversed(self._runs.values()):
                    if run.posted.key == posted.key and reuse(run):
                        return run
            if sum(1 for r in self._runs.values() if r.result is None) >= self.max_runs:
                raise TooManyRuns(f"{self.max_runs} canaries are running, this server's limit (loadgen serve "
                                  "--max-runs): try again when one has ended")
            run = Run(id=secrets.token_hex(8), posted=posted)
            self._runs[run.id] = run
            self._forget_old()
        threading.Thread(target=self._work, args=(run,), name=f"canary-{run.id}", daemon=True).start()
        return run

    def with_metrics(self) -> list[tuple[dict[str, str], RunMetrics]]:
        """Every run the server keeps, with its id as a label: what GET /metrics shows."""
        with self._lock:
            return [({"run_id": run.id}, run.metrics) for run in self._runs.values()]

    def cancel_all(self) -> None:
        for run in self.running():
            run.cancel.set()

    def wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for run in self.running():
            run.done.wait(max(0.0, deadline - time.monotonic()))

    def _forget_old(self) -> None:
        ended = [k for k, r in self._runs.items() if r.result is not None]
        for k in ended[:max(0, len(ended) - self.keep)]:
            del self._runs[k]

    def _work(self, run: Run) -> None:
        options: CanaryOptions = run.posted.options
        consul = ConsulClient(self.consul_addr) if self.consul_addr else None
        try:
            def on_look(snap: Snapshot) -> None:
                run.snapshot = snap
                run.metrics.look(snap.verdict, snap.comparisons)

            if run.cancel.is_set():  # cancelled before it started: nothing sent
                raise LoadgenError("cancelled before any request was sent", ExitCode.INCONCLUSIVE)
            assert options.target is not None  # parse_canary requires it
            result = self._run_live(options, options.target, consul, lambda _msg: None, on_look,
                                    envoy_admin=options.envoy_admin, refuse_undecidable=True, cancel=run.cancel,
                                    on_sample=run.metrics.observe)
            run.metrics.finish(result.verdict, result.comparisons)
            data = result.to_json()
        except LoadgenError as exc:
            run.error = exc.message
            data = unstarted_result(options, None, error=exc).to_json()
        except Exception as exc:  # a bug: this run says so; the server and the other runs go on
            run.error = f"internal error: {describe_exception(exc)}"
            data = unstarted_result(options, None, error=LoadgenError(run.error, ExitCode.INTERNAL)).to_json()
        finally:
            if consul is not None:
                consul.close()
        if run.cancel.is_set() and data.get("stopped_by") != "cancelled" and data["verdict"] == "INCONCLUSIVE":
            data["stopped_by"] = "cancelled"
        run.ended = time.time()
        run.result = data
        # Before done: a shutdown waits on done, then the process (and this daemon thread) ends.
        log.info("canary %s ended: %s, %s requests, stopped by %s", run.id, data["verdict"], data.get("requests"),
                 data.get("stopped_by"))
        run.done.set()
