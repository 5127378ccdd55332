"""Distributed runs without Nomad: a real coordinator on a loopback port 0, real `loadgen worker`
processes (or fake workers posting real HTTP), a stand-in target answering X-App-Id 1 or 2."""

from __future__ import annotations

import random
import time
from pathlib import Path

import httpx
import pytest

from loadgen.distributed.coordinator import Coordinator
from loadgen.distributed.drive import coordinate
from loadgen.distributed.launchers import LocalLauncher
from loadgen.distributed.protocol import REPORT_PATH, TOKEN_HEADER, clock_offset, plan_from_json, plan_to_json
from loadgen.load.engine import LoadPlan
from loadgen.load.prefix_buckets import PrefixBuckets
from loadgen.load.sample import Sample
from loadgen.load.tally import Tally
from tests.unit.standin_target import standin_target

PLAN = LoadPlan(url="http://127.0.0.1:9/hello_a", rate=100, max_time=2, timeout=1)


def _split_85_15(seed: int):
    rng = random.Random(seed)
    return lambda _n: (200, "1" if rng.random() < 0.85 else "2")


@pytest.fixture(autouse=True)
def _close_pages():
    yield
    from loadgen.report.metrics_server import close_all

    close_all()  # the --metrics-listen pages a command run in-process left open (they live until the process exits)


@pytest.fixture
def coordinator():
    coord = Coordinator(PLAN, 2, latencies=True)
    coord.start()
    yield coord
    coord.close()


_HTTP: list[httpx.Client] = []  # one client for the module's posts (each new one loads the CA store: ~30 ms)


def _post(coord: Coordinator, body: dict, token: str | None = None) -> httpx.Response:
    if not _HTTP:
        _HTTP.append(httpx.Client(timeout=5))
    return _HTTP[0].post(coord.url + REPORT_PATH, json=body, headers={TOKEN_HEADER: token or coord.token})


def _fake_worker_reports(k: int, n: int, samples: list[Sample]) -> tuple[Tally, list[dict]]:
    """What worker k sends for its share of ``samples`` (one report per 0.5 s of send time)."""
    tally, prefix, reports = Tally(), PrefixBuckets(latencies=True), []
    mine = samples[k::n]
    for i, s in enumerate(mine):
        tally.add(s)
        prefix.add(s.t, s)
        if i % 50 == 49:
            prefix.advance(s.t)
            reports.append({"index": k, "of": n, "seq": len(reports) + 1, "prefix": prefix.report()})
    prefix.advance(1e9)
    reports.append({"index": k, "of": n, "seq": len(reports) + 1, "prefix": prefix.report(), "tally": tally.encode(),
                    "final": True, "progress": {"sent": tally.sent, "errors": tally.error_count,
                                                "app_ids": dict(tally.app_ids)}})
    return tally, reports


def _samples(count: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if rng.random() < 0.02:
            out.append(Sample(t=i / 100, status=503, app_id=None, latency_ms=rng.uniform(1, 50), error="http_503"))
        else:
            app = "1" if rng.random() < 0.85 else "2"
            out.append(Sample(t=i / 100, status=200, app_id=app, latency_ms=rng.lognormvariate(1.5, 0.8),
                              error=None))
    return out


def test_merged_histograms_equal_the_histogram_of_the_union(coordinator):
    samples = _samples(3000, seed=7)
    union = Tally()
    for s in samples:
        union.add(s)
    tallies = []
    for k in range(2):
        tally, reports = _fake_worker_reports(k, 2, samples)
        tallies.append(tally)
        for r in reports:
            assert _post(coordinator, r).json()["accepted"] is True
    merged = coordinator.merged_tally()
    assert merged.app_ids == tallies[0].app_ids + tallies[1].app_ids == union.app_ids
    assert merged.errors == union.errors
    # The exact-merge claim: every percentile of the merge is the union's, not an approximation.
    assert merged.book.summary() == union.book.summary()
    assert merged.latency_summary()["count"] == union.latency_summary()["count"] > 0
    counts, _ = coordinator.judged(final=True)
    assert counts.app_ids == union.app_ids and counts.errors == sum(union.errors.values())
    # Per-APP_ID latency bins of the buckets add up to every answer of that APP_ID.
    assert {a: sum(b.values()) for a, b in counts.latency.items()} == dict(union.app_ids)


def _page_samples(count: int, seed: int) -> list[Sample]:
    """Every kind of request a page counts: answers of mapped, unmapped and spec-less APP_IDs, a 500
    that names its instance, timeouts (no latency), answers exactly on a bucket edge."""
    from loadgen.report.run_metrics import DURATION_BUCKETS_S

    rng = random.Random(seed)
    out = []
    for i in range(count):
        roll, t = rng.random(), i / 100
        if roll < 0.03:
            out.append(Sample(t=t, status=None, app_id=None, latency_ms=None, error="timeout"))
        elif roll < 0.06:
            out.append(Sample(t=t, status=500, app_id="2", latency_ms=rng.uniform(1, 50), error="http_500"))
        elif roll < 0.08:
            out.append(Sample(t=t, status=200, app_id=rng.choice(["9", "v3"]), latency_ms=rng.uniform(1, 9),
                              error=None))
        else:
            latency = rng.choice(DURATION_BUCKETS_S) * 1000 if roll < 0.15 else rng.lognormvariate(1.5, 1.2)
            out.append(Sample(t=t, status=200, app_id="1" if rng.random() < 0.85 else "2", latency_ms=latency,
                              error=None))
    return out


def _page(metrics) -> dict[tuple[str, frozenset], float]:
    from prometheus_client.parser import text_string_to_metric_families

    from loadgen.report.prometheus import metrics_registry, render

    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(render(metrics_registry(metrics)).decode()) for s in f.samples}


def test_the_merged_page_is_the_page_of_one_process_sending_every_request():
    """--metrics-listen with remote workers: each worker's page increments, posted with its reports
    (one of them twice, one out of order), added by the coordinator, make exactly the page of one
    process that sent every request -- counts, every bucket, the sums -- and the sum of the workers' own."""
    from loadgen.report.run_metrics import PageIncrements, RunMetrics

    def subset_of(app_id: str) -> str | None:  # the map 1=v1,2=v2 and a mapped APP_ID outside the spec
        return {"1": "v1", "2": "v2", "v3": "v3"}.get(app_id)

    samples = _page_samples(3000, seed=17)
    one_process, merged = RunMetrics("canary"), RunMetrics("canary")
    for s in samples:
        one_process.observe(s, subset_of(s.app_id) if s.app_id else None)
    coord = Coordinator(PLAN, 3, on_page=lambda _k, increment: merged.add_increment(increment, subset_of))
    coord.start()
    try:
        own = []
        for k in range(3):
            mine, page, seq = RunMetrics("canary"), PageIncrements(), 0
            own.append(mine)
            for i, s in enumerate(samples[k::3], start=1):
                mine.observe(s, subset_of(s.app_id) if s.app_id else None)
                page.observe(s)
                if i % 97 == 0 or i == len(samples[k::3]):
                    seq += 1
                    report = {"index": k, "of": 3, "seq": seq, "page": page.take()}
                    if k == 1 and seq == 3:  # a report out of order is refused, nothing of it counted
                        assert _post(coord, {**report, "seq": 4}).status_code == 409
                    assert _post(coord, report).json()["accepted"] is True
                    if k == 2 and seq == 2:  # the retry after a lost reply: a duplicate, not added again
                        assert _post(coord, report).json()["duplicate"] is True
        assert coord.workers[2].duplicates == 1
    finally:
        coord.close()
    page = _page(merged)
    assert sum(v for (name, _), v in page.items() if name == "loadgen_requests_total") == 3000
    assert page == _page(one_process)
    summed = RunMetrics("canary")
    for k, mine in enumerate(own):
        summed.absorb(k, mine.encode())  # the local --workers path's exact addition
    assert page == _page(summed)
    # Every subset the run's map gives, the failed 500's (v2) included, and the unmapped ones under "".
    labels = {dict(labels)["subset"] for name, labels in page if name == "loadgen_requests_total"}
    assert labels == {"v1", "v2", "v3", ""}


def test_a_page_increment_that_is_not_one_is_refused_whole():
    from loadgen.report.run_metrics import PageIncrements, RunMetrics

    merged = RunMetrics("run", judged=False)
    coord = Coordinator(PLAN, 1, on_page=lambda _k, increment: merged.add_increment(increment))
    coord.start()
    try:
        page = PageIncrements()
        page.observe(Sample(t=0.0, status=200, app_id="1", latency_ms=2.0, error=None))
        good = page.take()
        bad_count = {"rows": [[*good["rows"][0][:5], 7]], "errors": {}}  # 7 != the buckets' sum
        for body in (bad_count, {"rows": [["1", -1, 0, [0] * 16, 0, 0]], "errors": {}}, {"rows": "x"}):
            assert _post(coord, {"index": 0, "of": 1, "seq": 1, "page": body}).status_code == 400
        assert merged.read().requests == {} and coord.workers[0].seq == 0
        assert _post(coord, {"index": 0, "of": 1, "seq": 1, "page": good}).json()["accepted"] is True
        assert merged.read().requests == {("", "1"): 1}
    finally:
        coord.close()


def test_a_report_sent_twice_is_merged_once_and_a_gap_is_refused(coordinator):
    _, reports = _fake_worker_reports(0, 2, _samples(400, seed=3))
    first = _post(coordinator, reports[0]).json()
    assert first["accepted"] is True and first["seq"] == 1
    counts_once, _ = coordinator.judged(final=True)
    again = _post(coordinator, reports[0]).json()  # the retry after a lost reply
    assert again["accepted"] is False and again["duplicate"] is True
    counts_after, _ = coordinator.judged(final=True)
    assert counts_after.app_ids == counts_once.app_ids and coordinator.workers[0].duplicates == 1
    skipped = _post(coordinator, reports[2])  # report 2 never arrived: 3 cannot be merged before it
    assert skipped.status_code == 409 and skipped.json()["seq"] == 1
    assert _post(coordinator, reports[1]).json()["accepted"] is True


def test_wrong_token_and_bad_index_are_refused(coordinator):
    body = {"index": 0, "of": 2, "seq": 1, "prefix": {"complete_below": 0, "buckets": {}}}
    assert _post(coordinator, body, token="x" * 43).status_code == 401
    assert httpx.post(coordinator.url + REPORT_PATH, json=body, timeout=5).status_code == 401  # no header
    assert _post(coordinator, {**body, "index": 5}).status_code == 400
    assert _post(coordinator, {**body, "of": 3}).status_code == 400
    assert coordinator.workers[0].seq == 0 and coordinator.rejected == 4


def test_a_lagging_worker_holds_the_judged_prefix_back_until_it_is_lost(coordinator):
    samples = _samples(1000, seed=5)
    _, reports0 = _fake_worker_reports(0, 2, samples)
    _, reports1 = _fake_worker_reports(1, 2, samples)
    for r in reports0[:-1]:
        _post(coordinator, r)
    _post(coordinator, reports1[0])
    counts, below = coordinator.judged()
    behind = reports1[0]["prefix"]["complete_below"] * 0.25
    assert below == behind and sum(counts.app_ids.values()) + counts.errors < 500
    coordinator.mark_lost(1, "test")
    counts, below = coordinator.judged()
    assert below == reports0[-2]["prefix"]["complete_below"] * 0.25 > behind


def test_plan_travels_to_each_worker_with_its_shard():
    plan = LoadPlan(url="https://x/hello_a", rate=250, max_time=12, timeout=2, headers={"x-a": "1"},
                    method="POST", body=b"\x00{}", concurrency=None)
    back = plan_from_json(plan_to_json(plan), (1, 3), 123.0)
    assert (back.url, back.rate, back.max_time, back.headers, back.method, back.body) == \
        (plan.url, 250, 12, {"x-a": "1"}, "POST", b"\x00{}")
    assert back.shard == (1, 3) and back.start_at == 123.0
    closed = plan_from_json(plan_to_json(LoadPlan(url="http://x/", concurrency=10)), (0, 3), 0.0)
    assert closed.concurrency == 4  # 10 connections over 3 workers: 4, 3, 3
    offset, rtt = clock_offset(10.0, 15.5, 11.0)
    assert offset == 5.0 and rtt == 1.0


def test_a_worker_killed_mid_run_is_lost_and_what_it_reported_stays(tmp_path: Path):
    launcher = LocalLauncher(tmp_path)
    killed: list[int] = []

    def kill_once_started(coord: Coordinator) -> bool:
        if not killed and coord.workers[1].seq >= 2:  # it has reported some of its share
            launcher.kill(1)
            killed.append(coord.workers[1].sent)
        return False

    from loadgen.report.run_metrics import RunMetrics

    metrics = RunMetrics("run", judged=False)  # a --metrics-listen page
    with standin_target(_split_85_15(seed=12)) as url:
        plan = LoadPlan(url=url, rate=200, max_time=2, timeout=1)
        run = coordinate(plan, 2, launcher, on_tick=kill_once_started, start_lead_s=0.3,
                         on_page=lambda _k, increment: metrics.add_increment(increment))
    assert killed and 1 in run.lost and "exited" in run.lost[1]
    coord = run.coordinator
    assert coord.workers[0].final and not coord.workers[1].final
    counts, _ = coord.judged(final=True)
    # Worker 1's buckets reported before it died are kept (each once), the survivor's in full.
    assert sum(counts.app_ids.values()) + counts.errors >= coord.per_worker_stats()[0].sent
    # On the page too: each worker's requests up to its last accepted report, once (the same report
    # carried its count of requests sent and the page's increments up to the same sample).
    assert sum(metrics.read().requests.values()) == coord.workers[0].sent + coord.workers[1].sent
    assert 0 < coord.workers[1].sent < coord.workers[0].sent


def test_a_worker_stops_by_itself_when_the_coordinator_is_gone(tmp_path: Path):
    coord = Coordinator(LoadPlan(url="http://127.0.0.1:9/hello_a", rate=50, max_time=60, timeout=1), 1, lease_s=2.0)
    coord.start()
    launcher = LocalLauncher(tmp_path)
    try:
        with standin_target(_split_85_15(seed=13)) as url:
            coord.plan = LoadPlan(url=url, rate=50, max_time=60, timeout=1)
            launcher.launch(coord.url, coord.token, 1, lease_s=2.0)
            deadline = time.monotonic() + 30
            while coord.workers[0].seq < 1 and time.monotonic() < deadline:  # it runs and reports
                time.sleep(0.05)
            assert coord.workers[0].seq >= 1
            coord.close()  # the coordinator is killed: no reply ever comes again
            launcher.procs[0].wait(timeout=30)  # a bound for a hung test, not a timing claim
    finally:
        launcher.stop()
    log = (tmp_path / "worker0.log").read_text()
    assert "worker 0/1: lease" in log, log


def test_canary_judges_the_merged_send_ordered_stream_of_three_workers(tmp_path: Path):
    from loadgen.canary.options import CanaryOptions
    from loadgen.commands.metrics_option import watch_looks
    from loadgen.distributed.canary_run import run_distributed_canary
    from loadgen.report.run_metrics import RunMetrics
    from loadgen.stats import JudgeConfig, Tolerance

    options = CanaryOptions(expect="85/15", mapping="1=v1,2=v2", rate=900, max_time=30, timeout=2, warmup=0.25,
                            config=JudgeConfig(tolerance=Tolerance.parse("5")))
    said: list[str] = []
    metrics = RunMetrics("canary")  # --metrics-listen's page, fed by the workers' reports
    during: list[dict] = []

    def look(snap) -> None:
        if not during and snap.sent > 100:
            during.append(_page(metrics))

    with standin_target(_split_85_15(seed=21)) as url:
        result = run_distributed_canary(options, url, None, said.append, LocalLauncher(tmp_path), 3,
                                        start_lead_s=0.3, metrics=metrics, on_look=watch_looks(metrics, look))
    # The lines a user (or a test) waits on: every worker said hello, then every worker is sending.
    hello = [i for i, m in enumerate(said) if m.startswith("3 of 3 workers said hello")]
    sending = [i for i, m in enumerate(said) if m.startswith("3 of 3 workers sending")]
    assert len(hello) == 1 and len(sending) == 1 and hello[0] < sending[0], said
    assert "clock offset to the coordinator at most" in said[sending[0]] and "first sends" in said[sending[0]]
    doc = result.to_json()
    assert doc["workers"] == result.workers  # in --json too
    assert result.verdict.state.value == "PASS", result.verdict.reason
    assert result.stopped_by == "verdict"
    workers = result.workers
    assert workers is not None and sorted(workers) == ["0", "1", "2"]
    # Every judged answer came from one worker's share, counted once: the workers' judged counts add up to n.
    judged = sum(sum(w["judged_app_ids"].values()) for w in workers.values())
    assert judged == result.verdict.n
    # Every answer (the warm-up's too) is in the result's counts once.
    assert sum(result.app_id_counts.values()) == sum(sum(w["app_ids"].values()) for w in workers.values())
    assert result.warmup is not None and result.warmup["requests"] > 0
    assert all(w["final"] and w["sent"] > 0 and w["ended_by"] == "stop" for w in workers.values())
    # Each worker measured its clock against the coordinator's and how late its first send was.
    assert all(w["clock_offset_ms"] is not None and w["start_error_ms"] is not None for w in workers.values())

    # The page while the run went: the coordinator's judged state (RUNNING) and the counts reported so far.
    (running,) = during
    assert running[("loadgen_verdict", frozenset({("state", "RUNNING")}))] == 1
    assert 0 < sum(v for (name, _), v in running.items() if name == "loadgen_requests_total") <= result.requests
    # After the verdict: every request of every worker, once, by subset and APP_ID as one process counts them.
    metrics.finish(result.verdict, result.comparisons)
    page = _page(metrics)
    assert page[("loadgen_verdict", frozenset({("state", "PASS")}))] == 1
    assert page[("loadgen_judged_answers", frozenset())] == result.verdict.n
    per_worker = {a: sum(w["app_ids"].get(a, 0) for w in workers.values()) for a in ("1", "2")}
    for subset, app_id in (("v1", "1"), ("v2", "2")):
        labels = frozenset({("subset", subset), ("app_id", app_id)})
        assert page[("loadgen_answers_total", labels)] == result.app_id_counts[app_id] == per_worker[app_id]
        assert page[("loadgen_request_duration_seconds_count", labels)] == result.app_id_counts[app_id]
    assert sum(v for (name, _), v in page.items() if name == "loadgen_requests_total") == result.requests \
        == sum(w["sent"] for w in workers.values())


def test_run_stage_from_remote_workers_writes_one_summary_of_their_merged_histograms(tmp_path: Path):
    import json

    from hdrh.histogram import HdrHistogram

    from loadgen.distributed.stage_run import run_remote_workers
    from loadgen.load.histograms import new_histogram, summarize
    from loadgen.report.run_metrics import RunMetrics
    from loadgen.stage_load import load_stage

    launcher = LocalLauncher(tmp_path)
    kept: list = []

    said: list[str] = []
    metrics = RunMetrics("run", judged=False)  # --metrics-listen's page

    def remote(plan, progress, interrupted):
        merged = run_remote_workers(plan, 2, launcher, progress, interrupted, said.append, out_dir=tmp_path / "out",
                                    metrics=metrics)
        kept.append(merged)
        return merged

    with standin_target(_split_85_15(seed=31)) as url:
        plan = LoadPlan(url=url, rate=400, max_time=1, timeout=2)
        result = load_stage("target", plan, "external", tmp_path / "out", plots=False, workers=2, remote=remote)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    merged = kept[0]
    assert summary["requests"]["sent"] == 400 == sum(w.sent for w in merged.per_worker)
    assert [w.sent for w in merged.per_worker] == [200, 200]
    # The stage's histogram is the merge of the workers' (each worker's cumulative HDR tally, added).
    assert result.tally is merged.tally and (tmp_path / "out" / "histogram.hgrm").is_file()
    assert summary["latency_ms"]["corrected"]["count"] == 400
    assert summary["generator"]["workers"] == 2 and merged.missing == []
    # Each worker's own histogram, as it sent it, in workers.json: added up, they are summary.json's.
    figures = json.loads((tmp_path / "out" / "workers.json").read_text())["per_worker"]
    assert [(w["index"], w["sent"], w["ended_by"]) for w in figures] == [(0, 200, "finished"), (1, 200, "finished")]
    added = new_histogram()
    for w in figures:
        own = HdrHistogram.decode(w["hdr"]["corrected"].encode("ascii"))
        assert own.get_total_count() == 200 and w["latency_ms"]["corrected"] == summarize(own)
        added.add(own)
    assert summary["latency_ms"]["corrected"] == summarize(added)
    # The page: the 400 requests once, by APP_ID (no subset: run has no map), as the merged tally counts them.
    view = metrics.read()
    assert {app_id: n for (subset, app_id), n in view.answers.items() if subset == ""} == dict(merged.tally.app_ids)
    assert sum(view.requests.values()) == 400 and sum(d.count for d in view.durations.values()) == 400
    assert [m for m in said if m.startswith("worker ")] == [
        f"worker {w['index']}: 200 requests, 0 errors, p50 {w['latency_ms']['corrected']['p50']:.2f} ms, "
        f"p99 {w['latency_ms']['corrected']['p99']:.2f} ms, max {w['latency_ms']['corrected']['max']:.2f} ms "
        "(finished)" for w in figures]


def test_a_second_process_for_a_taken_index_is_sent_away(coordinator):
    from loadgen.distributed.protocol import HELLO_PATH

    def hello(index: int, instance: str) -> dict:
        return httpx.post(coordinator.url + HELLO_PATH, json={"index": index, "of": 2, "instance": instance},
                          headers={TOKEN_HEADER: coordinator.token}, timeout=5).json()

    assert hello(0, "a")["stop"] is None
    started = hello(1, "b")
    assert started["start_at"] is not None and started["stop"] is None
    again = hello(0, "c")  # Nomad rescheduled worker 0's stopped allocation
    assert again["stop"] and again["start_at"] is None and coordinator.workers[0].replacements == 1
    report = {"index": 0, "of": 2, "seq": 1, "instance": "c", "prefix": {"complete_below": 0, "buckets": {}}}
    assert _post(coordinator, report).status_code == 409 and coordinator.workers[0].seq == 0
    assert _post(coordinator, {**report, "instance": "a"}).json()["accepted"] is True


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nomad_workers_without_a_nomad_is_one_line_and_exit_4(tmp_path: Path):
    from tests.unit.cli_in_process import loadgen_in_process

    with standin_target(_split_85_15(seed=41)) as url:
        proc = loadgen_in_process("canary", "--target", url, "--map", "1=v1,2=v2", "--expect", "85/15",
                                  "--tolerance", "5", "--nomad-workers", "2", "-q", "--metrics-listen", "127.0.0.1:0",
                                  tmp_path=tmp_path,
                                  env={"NOMAD_ADDR": f"http://127.0.0.1:{_free_port()}", "CONSUL_HTTP_ADDR": None})
        run = loadgen_in_process("run", "--target", url, "--rate", "50", "--duration", "1s", "--nomad-workers", "2",
                                 "--no-plots", "--out", str(tmp_path / "out"), "--metrics-listen", "127.0.0.1:0",
                                 tmp_path=tmp_path, env={"NOMAD_ADDR": f"http://127.0.0.1:{_free_port()}"})
    for done in (proc, run):  # --metrics-listen goes with --nomad-workers: the page is up, then Nomad is asked
        assert done.returncode == 4, done.stderr
        assert "Nomad" in done.stderr and "unreachable" in done.stderr.lower(), done.stderr
        assert "metrics: http://127.0.0.1:" in done.stderr, done.stderr


def test_nomad_workers_refuses_what_runs_in_one_process_only(tmp_path: Path):
    from tests.unit.cli_in_process import loadgen_in_process

    replay = loadgen_in_process("canary", "--replay", str(tmp_path / "x.jsonl"), "--expect", "85/15",
                                "--nomad-workers", "2", tmp_path=tmp_path)
    assert replay.returncode == 2 and "--replay" in replay.stderr
    both = loadgen_in_process("run", "--target", "http://127.0.0.1:9/hello_a", "--workers", "2", "--nomad-workers",
                              "2", tmp_path=tmp_path)
    assert both.returncode == 2 and "--nomad-workers" in both.stderr


@pytest.mark.parametrize("rate, duration", [
    ("250", 3.1), ("100", 1.0), ("0.7", 9.5), ("100..800", 2.3), ("800..100", 2.3), ("1000..1", 1.7),
    ("100:1.3s,250:0.7s,33.3:2s", 4.0), ("100:1.3s,250:0.7s,33.3:2s", 1.6), ("7:0.45s,3:0.2s,11:1s", 5.0),
])
def test_each_worker_computes_only_its_own_share_of_the_schedule(rate: str, duration: float):
    from loadgen.load.engine import shard_offsets
    from loadgen.load.schedule import RateSchedule

    schedule = RateSchedule.parse(rate)
    whole = list(schedule.offsets(duration))
    assert whole
    for n in (1, 2, 3, 7, 64):
        shares = [list(shard_offsets(schedule, duration, k, n)) for k in range(n)]
        # The same intended start times as walking the whole schedule and keeping every n-th (exactly: floats).
        assert shares == [whole[k::n] for k in range(n)], (rate, duration, n)


def test_a_workers_share_is_computed_without_walking_the_others():
    from loadgen.load import schedule as schedule_module
    from loadgen.load.engine import shard_offsets
    from loadgen.load.schedule import RateSchedule

    calls = [0]
    time_of = schedule_module.Segment.time_of

    def counted(self, k, length):
        calls[0] += 1
        return time_of(self, k, length)

    schedule = RateSchedule.parse("1000:2s,3000:1s")  # 5,000 intended starts
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(schedule_module.Segment, "time_of", counted)
        share = list(shard_offsets(schedule, 3.0, 3, 100))
    assert len(share) == 50
    assert calls[0] < 50 + 2 * 40  # its 50 times, the end of each segment, and its count's edge: not 5,000
