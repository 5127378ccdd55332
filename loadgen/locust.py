"""loadgen inside Locust: a user class that reads APP_IDs, a live "Split" tab, a CI verdict.

Use it from a locustfile (``locustfiles/mesh.py`` does)::

    from loadgen.locust import MeshUser  # noqa: F401  (registers the plugin's event hooks)

What it adds to Locust:

* ``MeshUser`` -- a FastHttpUser hitting service-a's ``/hello_a`` (host defaults to the local
  mesh) that records each response's APP_ID and its latency in HDR histograms;
* options ``--expect 85/15|v1=85,v2=15|consul``, ``--tolerance``, ``--confidence``,
  ``--map 1=v1,2=v2`` (default: from Consul's catalog, ``--consul``), ``--canary-json FILE``,
  ``--canary-junit FILE`` (Locust itself owns ``--json``) and ``--stop-on-verdict``;
* a **Split** tab in the web UI: expected weight, the share Consul compiled (discovery chain)
  and the one the client sidecar's Envoy was programmed with (``--envoy-admin``), count,
  share with its interval and the judge's verdict per subset, and p50/p99/max per backend
  instance from HDR histograms;
* ``--latency p99 --latency-margin 10%``, ``--error-margin 0.5`` and ``--baseline``, as on
  ``loadgen canary``: each canary's latency and error rate judged against the baseline's, in a
  **Canary vs baseline** tab, in the JSON / JUnit and in the headless exit code (Locust's users
  are a closed loop: a latency is from the request's actual send);
* headless runs exit with the canary's codes (0 PASS, 1 FAIL, 3 INCONCLUSIVE) and write the
  same JSON / JUnit as ``loadgen canary``; every option (and the outputs' paths) is checked at
  Locust's ``init``, before any user spawns: a bad one is one line and exit 2 at once
  (loadgen.locust_options);
* the Envoy column reads ``--envoy-admin``; without it, service-a's sidecar on the local mesh
  only when ``--host`` is the local mesh's service-a and a local mesh is up;
* distributed runs: each worker sends its cumulative counts and encoded histograms with its
  stats report; the master sums the latest report of every worker (exact) for the tab and the
  latency figures.

The judge is loadgen's own SequentialJudge (anytime-valid), fed every second, and it judges
answers in the order their requests *started*, never the order they completed: each process
releases its answers in start order (load.send_order) and counts them per start-time bucket
(load.prefix_buckets); the judge takes the buckets every process has completed (every request
started in them has ended), so a faster or slower subset cannot look like a moved split.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, NoReturn

import gevent
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import MasterRunner, WorkerRunner

from loadgen.canary import CanaryResult, Expectation, SplitCheck, resolve_expectation, resolve_mapping
from loadgen.canary.final import final_verdict
from loadgen.canary.three_way import ThreeWay, three_way_for
from loadgen.canary.worse import WorseOptions, WorseTally
from loadgen.errors import ExitCode, LoadgenError
from loadgen.load.engine import app_id_of
from loadgen.load.histograms import LatencyBook
from loadgen.load.prefix_buckets import BUCKET_S, BucketCounts, MergedPrefix, PrefixBuckets
from loadgen.load.sample import Sample
from loadgen.load.send_order import SendOrder
from loadgen.load.tally import Tally
from loadgen.locust_final import FINAL_MESSAGE, FinalReports
from loadgen.locust_options import PluginSettings, compares, settings_from
from loadgen.mesh.consul_api import ConsulClient
from loadgen.report.files import write_json, write_output
from loadgen.report.terminal import COMPARISON_HEADERS, comparison_rows
from loadgen.stats import Verdict
from loadgen.stats.bands import format_band

log = logging.getLogger("loadgen.locust")
JUDGE_EVERY_S = 1.0
ENVOY_EVERY_S = 5.0  # the Split tab reads the client sidecar's route at most this often
TAB_KEY = "loadgen-split"
COMPARE_KEY = "loadgen-compare"
SERVICE = "service-b"  # whose subsets are judged


Pending = tuple[SendOrder, int, float]  # a request being sent: its order, ticket and start (seconds into the test)


class SplitTracker:
    """This process's tally of the test, released in start order -- plus, on a master, the latest
    report of each worker and every process's start-ordered buckets (what is judged)."""

    def __init__(self) -> None:
        self.latencies = False  # the buckets keep latencies too (the canary compares with the baseline)
        self.reset()

    def reset(self) -> None:
        self.started = time.time()  # wall clock: the workers' buckets line up across machines
        self.tally = Tally()
        self.order = SendOrder(self._released)
        self.prefix = PrefixBuckets(latencies=self.latencies)
        self.merged_prefix = MergedPrefix()  # what is judged: every process's complete buckets
        self.workers: dict[str, dict[str, Any]] = {}  # master: latest cumulative Tally.encode() per worker

    def sending(self) -> Pending:
        """A request starts now: its ticket in this process's start order."""
        t = time.time() - self.started
        return self.order, self.order.sent(t), t

    def record(self, pending: Pending, status: int | None, app_id: str | None, error: str | None,
               response_ms: float) -> None:
        order, ticket, t = pending
        if order is not self.order:
            return  # started before the stats were reset
        order.done(ticket, Sample(t=t, status=status, app_id=app_id, latency_ms=response_ms, error=error,
                                  service_ms=response_ms))

    def _released(self, sample: Sample) -> None:
        self.tally.add(sample)
        self.prefix.add(self.started + sample.t, sample)

    def close(self) -> None:
        """The users have stopped: a request killed mid-flight never answers, so release the rest."""
        self.order.close()
        # Nothing is in flight any more: the current bucket is complete too (its last answers are
        # reported with the worker's final stats).
        self.prefix.advance(time.time() + self.prefix.bucket_s)

    def prefix_report(self) -> dict[str, Any]:
        """The start-time buckets completed since the last report."""
        if self.order.sent_count or self.prefix.buckets:
            self.prefix.advance(self.started + self.order.complete_until(time.time() - self.started))
        return self.prefix.report()

    def judged(self, final: bool = False) -> tuple[BucketCounts, float | None]:
        """The counts to judge: the requests started before every process's complete mark (all of
        them on the final look), and that mark (wall seconds), None when nothing is complete."""
        if self.order.sent_count:  # this process sends (a standalone run): it is a source too
            self.merged_prefix.merge("local", self.prefix_report())
        counts, below = self.merged_prefix.judged(final)
        return counts, None if below is None else below * BUCKET_S

    def encode(self) -> dict[str, Any]:
        return {"tally": self.tally.encode(), "prefix": self.prefix_report()}

    def merged(self) -> Tally:
        """Exact totals (for the tab and the latency figures): this process's own released samples
        plus the latest cumulative report of each worker."""
        return Tally.merged([self.tally.encode(), *self.workers.values()])


TRACKER = SplitTracker()


class LocustCanary:
    """The canary's core (:class:`SplitCheck`), set up from Locust's command line and fed the
    merged tally every second."""

    def __init__(self, environment: Any, settings: PluginSettings) -> None:
        self.environment = environment
        self.expect = settings.expect
        self.config = settings.config
        self.consul_address = settings.consul
        self.map_text = settings.map_text
        self.json_path = settings.json_path
        self.junit_path = settings.junit_path
        self.stop_on_verdict = settings.stop_on_verdict
        self.settings = settings
        self.worse: WorseOptions | None = None  # the comparisons, once the subsets are known
        self.expectation: Expectation | None = None
        self.check: SplitCheck | None = None
        self.envoy_admin = settings.envoy_admin
        self.three: ThreeWay | None = None  # the Consul and Envoy columns
        self.stopped_by = "end of test"
        self.lag_s: float | None = None  # the judged prefix's lag behind now at the latest look
        self.started = time.monotonic()  # reset at each test start

    @property
    def verdict(self) -> Verdict | None:
        return self.check.verdict if self.check else None

    def prepare(self) -> None:
        """Resolve the APP_ID map and the expected split (Consul is asked once, at start, before
        any user spawns). Raises LoadgenError: the caller refuses to start the test."""
        consul = ConsulClient(self.consul_address, timeout=3.0)
        try:
            if self.expect:
                self.expectation = resolve_expectation(self.expect, self.map_text, consul, service=SERVICE,
                                                       say=lambda msg: log.warning("loadgen: %s", msg))
                s = self.settings
                self.worse = WorseOptions.parse(self.expectation.spec, s.latency, s.latency_margin, s.error_margin,
                                                s.baseline)
                self.three = three_way_for(self.expectation.consul, consul, self.envoy_admin, {})
                self._read_envoy_before()
                self.reset()
            else:
                resolve_mapping(self.map_text, consul, SERVICE)  # says now when APP_IDs cannot be mapped
        finally:
            consul.close()

    def _read_envoy_before(self) -> None:
        """The Envoy column: the client sidecar read at start (an unreachable one is logged and
        leaves the column empty; Locust keeps running)."""
        if self.three is None or self.three.admin is None:
            return
        try:
            self.three.before()
        except LoadgenError as exc:
            log.warning("loadgen: no Envoy column: %s", exc.message)
            self.three.admin = None

    def reset(self) -> None:
        if self.expectation is not None:
            self.check = SplitCheck(self.expectation, self.config, worse=self.worse)

    def look(self, final: bool = False) -> Verdict | None:
        if self.check is None:
            return None
        # Judged in start order: the requests every process has completed up to `below`; the look
        # is dated by that start time (seconds into the test), for reporting a change in the split.
        counts, below = TRACKER.judged(final)
        now = time.time()
        if not final:  # how far the judged prefix trails the newest requests, for the result
            self.lag_s = None if below is None else max(0.0, now - below)
        t = max(0.0, (below if below is not None else now) - TRACKER.started)
        subsets, unknown = self.check.expectation.classify(counts.app_ids)
        expectation = self.check.expectation
        worse = (WorseTally.from_buckets(expectation.spec.names, counts, expectation.subset_of)
                 if self.check.worse is not None else None)
        return self.check.look_counts(t, subsets, unknown, counts.errors, final, worse_tally=worse)

    def comparison_rows(self) -> list[dict[str, str]]:
        """The Canary vs baseline tab: one row per comparison, as the terminal shows them."""
        result = self.check.worse_result if self.check else None
        if result is None:
            return []
        keys = ("compared", "canary", "baseline", "ratio", "verdict")
        rows = [dict(zip(keys, cells, strict=True)) for cells in comparison_rows(result.to_json())]
        return [*rows, {"compared": "reason", "canary": "", "baseline": "", "ratio": "", "verdict": result.reason}]

    def rows(self) -> list[dict[str, Any]]:
        """The Split tab's table: one row per subset, one per backend APP_ID, one for the verdict."""
        tally = TRACKER.merged()
        rows: list[dict[str, Any]] = []
        v = self.verdict
        mapping = self.expectation.mapping.app_ids if self.expectation else {}
        columns = self._consul_envoy_columns()
        if v is not None:
            for s in v.subsets:
                ids = ",".join(a for a, sub in sorted(mapping.items()) if sub == s.name)
                lat = _latency(tally.book, ids.split(",")) if ids else {}
                rows.append({"subset": s.name, "app_ids": ids, "expected": f"{s.expected * 100:.4g} %",
                             **columns.get(s.name, {"consul": "", "envoy": ""}),
                             "count": s.count, "share": f"{s.share * 100:.2f} %",
                             "interval": f"{s.lower * 100:.1f}-{s.upper * 100:.1f} %",
                             "band": format_band(s.band), "status": s.status, **lat})
        for app_id, n in sorted(tally.app_ids.items()):
            if v is None or app_id not in mapping or mapping[app_id] not in {s.name for s in v.subsets}:
                rows.append({"subset": mapping.get(app_id, "(unknown)"), "app_ids": app_id, "expected": "",
                             "count": n, "share": "", "interval": "", "band": "", "status": "",
                             **_latency(tally.book, [app_id])})
        if tally.errors:
            rows.append({"subset": "(errors)", "app_ids": "", "expected": "", "count": tally.error_count,
                         "share": "", "interval": "", "band": "",
                         "status": ", ".join(f"{k} x{n}" for k, n in tally.errors.items())})
        state = v.state.value if v else ("no --expect" if not self.expect else "waiting")
        spec = self.expectation.spec.as_percent() if self.expectation else ""
        rows.append({"subset": "VERDICT", "app_ids": "", "expected": spec,
                     "count": v.n if v else 0, "share": "", "interval": "", "band": "", "status": state,
                     "p50_ms": "", "p99_ms": "", "max_ms": "", "reason": v.reason if v else ""})
        return rows

    def _consul_envoy_columns(self) -> dict[str, dict[str, str]]:
        """Per subset: Consul's compiled share and the client sidecar's programmed one (read again
        every ENVOY_EVERY_S)."""
        if self.three is None:
            return {}
        self.three.refresh(ENVOY_EVERY_S, time.monotonic())
        out = {}
        for name, row in self.three.to_json()["subsets"].items():
            out[name] = {key: "" if row[key] is None else f"{row[key] * 100:.4g} %" for key in ("consul", "envoy")}
        return out

    def result(self, traffic: Verdict) -> CanaryResult:
        """The same result (and JSON schema) as ``loadgen canary``'s, from Locust's merged counts,
        and the same final verdict (:func:`final_verdict`: a stale client sidecar FAILs)."""
        assert self.check is not None and self.expectation is not None
        tally = TRACKER.merged()
        elapsed = time.monotonic() - self.started
        self._three_way_after()
        answered = dict(self.expectation.classify(tally.app_ids)[0])
        final = final_verdict(traffic, self.three, answered, self.config.alpha)
        return self.check.result(
            final.verdict, tally=tally, target=str(self.environment.host or MeshUser.host), requests=tally.sent,
            duration_s=elapsed, stopped_by=self.stopped_by, source="locust",
            rate_achieved=tally.sent / elapsed if elapsed > 0 else None,
            workers={w: {"app_ids": r["app_ids"], "errors": r["errors"]} for w, r in TRACKER.workers.items()},
            notes=final.notes, three_way=final.three_way,
            judged_prefix={"order": "start", "at_last_look": None if self.lag_s is None else {
                "held": None, "in_flight": None, "lag_s": round(self.lag_s, 4)}},
        )

    def _three_way_after(self) -> None:
        """Consul and the client sidecar read again once the test is over (never raises)."""
        if self.three is not None:
            self.three.after()

    def write_outputs(self, result: CanaryResult) -> list[str]:
        """Write --canary-json and --canary-junit (each even when the other fails; both paths were
        checked at start, so a failure here is the disk's): one line per failure."""
        failures = []
        for path, write in ((self.json_path, lambda p: write_json(p, result.to_json())),
                            (self.junit_path, lambda p: write_output(p, result.junit()))):
            if path is None:
                continue
            try:
                write(path)
            except LoadgenError as exc:
                failures.append(exc.message)
        return failures


def _latency(book: LatencyBook, app_ids: list[str]) -> dict[str, Any]:
    if len(app_ids) != 1:
        return {"p50_ms": "", "p99_ms": "", "max_ms": ""}
    s = book.summary("corrected", f"app_id={app_ids[0]}")
    if not s.get("count"):
        return {"p50_ms": "", "p99_ms": "", "max_ms": ""}
    return {"p50_ms": f"{s['p50']:.1f}", "p99_ms": f"{s['p99']:.1f}", "max_ms": f"{s['max']:.1f}"}


class MeshUser(FastHttpUser):
    """GET service-a's /hello_a and record which service-b instance answered."""

    host = "http://127.0.0.1:3000"
    abstract = True  # the locustfile subclasses it (so Locust finds exactly one user class)

    @task
    def hello_a(self) -> None:
        pending = TRACKER.sending()
        with self.client.get("/hello_a", name="/hello_a", catch_response=True) as resp:
            status = resp.status_code or None
            body = resp.content or b""
            app_id = app_id_of({"X-App-Id": resp.headers.get("X-App-Id", "")} if resp.headers else {}, body)
            error = None
            if status != 200:
                error = f"http_{status}" if status else "transport"
                resp.failure(error)
            elif app_id is None:
                error = "no_app_id"
                resp.failure("no APP_ID in the answer")
            else:
                resp.success()
            TRACKER.record(pending, status, app_id, error, float(resp.request_meta.get("response_time") or 0.0)
                           if hasattr(resp, "request_meta") else 0.0)


# -- event hooks --------------------------------------------------------------------------
@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("loadgen canary")
    group.add_argument("--expect", default="", help="Expected split: 85/15, v1=85,v2=15 or consul")
    group.add_argument("--tolerance", default="2",
                       help="Allowed deviation per subset: points (2; at most half a weight) or a share of each "
                            "weight (20%%)")
    group.add_argument("--confidence", type=float, default=99.0, help="Confidence, percent")
    group.add_argument("--map", default="", help="APP_ID to subset, like 1=v1,2=v2 (default: from Consul)")
    group.add_argument("--consul", default="127.0.0.1:8500", help="Consul for the APP_ID map / --expect consul")
    group.add_argument("--envoy-admin", default=None,
                       help="The client sidecar's Envoy admin HOST:PORT, for the Split tab's Envoy column and the "
                            "stale-proxy check (default: service-a's sidecar when --host is the local mesh's "
                            "service-a, http://127.0.0.1:3000, and a local mesh is up; otherwise none; empty: none)")
    group.add_argument("--canary-json", default="", help="Write the verdict as JSON (like loadgen canary --json)")
    group.add_argument("--canary-junit", default="", help="Write JUnit XML (like loadgen canary --junit)")
    group.add_argument("--stop-on-verdict", action="store_true", default=False,
                       help="Headless: stop as soon as the verdict is PASS or FAIL")
    group.add_argument("--latency", default="",
                       help="Judge each canary's latency quantile against the baseline's (p50, p99, p99.9, ...)")
    group.add_argument("--latency-margin", default="",
                       help="How much slower the canary may be: 10%% of the baseline's quantile, or 5ms (default 10%%)")
    group.add_argument("--error-margin", default="",
                       help="Judge each canary's error rate against the baseline's: at most this many points above")
    group.add_argument("--baseline", default="",
                       help="The subset the canaries are compared with (default: the largest expected weight)")


@events.init.add_listener
def _init(environment: Any, **_kw: Any) -> None:
    """Every option is checked (and Consul asked for the map) here, before Locust spawns a user:
    a mistake is one line and its exit code now, not after a whole -t of load."""
    if environment.parsed_options is None:
        return
    try:
        settings = settings_from(environment.parsed_options, environment.host or MeshUser.host)
        canary = LocustCanary(environment, settings)
        if not isinstance(environment.runner, WorkerRunner):
            canary.prepare()
    except LoadgenError as exc:
        _refuse(environment, exc)
    except Exception as exc:  # a bug (e.g. a Consul answering something else): a distinct code, not FAIL's 1
        if os.environ.get("LOADGEN_DEBUG"):
            raise
        # The type only: an exception's text can carry a header value (a token).
        _refuse(environment, LoadgenError(f"internal error at start: {type(exc).__name__} (set LOADGEN_DEBUG=1 for "
                                          "the traceback, and please report it)", ExitCode.INTERNAL))
    environment.loadgen_canary = canary
    # Every process keeps latencies in its buckets when the master compares them (workers too).
    TRACKER.latencies = settings.compares
    TRACKER.reset()
    if isinstance(environment.runner, MasterRunner):
        FinalReports(_take_report).install(environment.runner)
    if environment.web_ui is not None:
        _install_tab(environment, canary)


def _refuse(environment: Any, exc: LoadgenError) -> NoReturn:
    """Stop Locust before its test starts. Locust's event hook logs and swallows an Exception from
    a listener (and then exits 1, the FAIL code); SystemExit passes through it and Locust's main,
    so the process leaves with the error's own code (2 for bad input) before any user spawns."""
    log.error("loadgen: %s", exc.message)
    environment.process_exit_code = int(exc.code)
    if environment.runner is not None:
        environment.runner.quit()  # a master tells its workers to go too
    raise SystemExit(int(exc.code))


def _install_tab(environment: Any, canary: LocustCanary) -> None:
    from flask import request

    conf = f"{(1 - canary.config.alpha) * 100:.4g} %"
    columns = [("subset", "Subset"), ("app_ids", "APP_ID"), ("expected", "Expected"),
               ("consul", "Consul compiled"), ("envoy", "Envoy programmed"), ("count", "Count"),
               ("share", "Observed share"), ("interval", f"True share ({conf} interval)"),
               ("band", "Band (PASS inside)"), ("status", "Status"),
               ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms")]
    tabs = [{"title": "Split", "key": TAB_KEY}]
    tables = [{"key": TAB_KEY, "structure": [{"key": k, "title": t} for k, t in columns]}]
    if canary.settings.compares:
        keys = ("compared", "canary", "baseline", "ratio", "verdict")
        tabs.append({"title": "Canary vs baseline", "key": COMPARE_KEY})
        tables.append({"key": COMPARE_KEY, "structure": [{"key": k, "title": t}
                                                         for k, t in zip(keys, COMPARISON_HEADERS, strict=True)]})
    environment.web_ui.template_args["extended_tabs"] = tabs
    environment.web_ui.template_args["extended_tables"] = tables

    @environment.web_ui.app.after_request
    def _with_split(response: Any) -> Any:
        if request.path != "/stats/requests" or not response.is_json:
            return response
        data = response.get_json()
        extended = [{"key": TAB_KEY, "data": canary.rows()}]
        if canary.settings.compares:
            extended.append({"key": COMPARE_KEY, "data": canary.comparison_rows()})
        data["extended_stats"] = [*data.get("extended_stats", []), *extended]
        response.set_data(json.dumps(data))
        return response

    @environment.web_ui.app.route("/loadgen/split")
    def _split_json() -> Any:
        worse = canary.check.worse_result if canary.check else None
        return {"rows": canary.rows(), "verdict": canary.verdict.to_json() if canary.verdict else None,
                "comparisons": worse.to_json() if worse else None}


@events.test_start.add_listener
def _start(environment: Any, **_kw: Any) -> None:
    canary: LocustCanary | None = getattr(environment, "loadgen_canary", None)
    if isinstance(environment.runner, WorkerRunner):
        # A worker started with only --worker learns the master's options now (Locust's spawn
        # message): its buckets keep latencies when the master compares them.
        wanted = compares(environment.parsed_options)
        if wanted != TRACKER.latencies:
            TRACKER.latencies = wanted
            TRACKER.reset()
        return
    if canary is None:
        return
    canary.started = time.monotonic()

    def monitor() -> None:
        while True:
            gevent.sleep(JUDGE_EVERY_S)
            v = canary.look()
            if v is not None and v.decided and canary.stop_on_verdict and environment.parsed_options.headless:
                log.info("loadgen: verdict %s after %d responses; stopping", v.state.value, v.n)
                canary.stopped_by = "verdict"
                environment.runner.quit()
                return

    gevent.spawn(monitor)


@events.reset_stats.add_listener
def _reset(**_kw: Any) -> None:
    TRACKER.reset()


@events.report_to_master.add_listener
def _to_master(client_id: str, data: dict[str, Any]) -> None:
    data["loadgen_split"] = TRACKER.encode()


@events.worker_report.add_listener
def _from_worker(client_id: str, data: dict[str, Any]) -> None:
    if "loadgen_split" in data:
        _take_report(client_id, data["loadgen_split"])


def _take_report(client_id: str, report: dict[str, Any]) -> None:
    """A worker's report: its cumulative tally, and the start-time buckets completed since its last one."""
    TRACKER.workers[client_id] = report["tally"]
    TRACKER.merged_prefix.merge(client_id, report["prefix"])


@events.test_stop.add_listener
def _stopped(environment: Any = None, **_kw: Any) -> None:
    TRACKER.close()
    runner = getattr(environment, "runner", None)
    if isinstance(runner, WorkerRunner):
        # Everything is released now: the master waits for this before it judges (locust_final).
        runner.send_message(FINAL_MESSAGE, TRACKER.encode())


@events.quitting.add_listener
def _quitting(environment: Any, **_kw: Any) -> None:
    canary: LocustCanary | None = getattr(environment, "loadgen_canary", None)
    if canary is None:
        return
    TRACKER.close()
    if isinstance(environment.runner, WorkerRunner):
        # A worker's own final counts (what its last report carried), for checking the merge.
        if canary.json_path:
            try:
                write_json(canary.json_path, {"worker": environment.runner.client_id, "app_ids":
                                              dict(TRACKER.tally.app_ids), "errors": dict(TRACKER.tally.errors)})
            except LoadgenError as exc:
                log.error("loadgen: %s", exc.message)
        return
    v = canary.look(final=True)
    if v is None:
        return
    result = canary.result(v)
    # The verdict first: an output that fails to write must not hide it (nor replace its code).
    log.info("loadgen canary: %s -- %s", result.verdict.state.value, result.verdict.reason)
    if isinstance(environment.runner, MasterRunner):
        log.info("loadgen canary: judged the sum of %d workers' reports", len(TRACKER.workers))
    for failure in canary.write_outputs(result):
        log.error("loadgen: %s", failure)
    environment.process_exit_code = int(result.exit_code)
