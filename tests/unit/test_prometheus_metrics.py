"""Issue 28, Prometheus exposition: --metrics-listen on `canary` (and `run`), scraped during a run
and after its verdict, parsed with the client library's own parser."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadgen.errors import ExitCode, UsageError
from loadgen.load.sample import Sample
from loadgen.report.metrics_server import close_all, parse_listen, serving
from loadgen.report.prometheus import metrics_registry, render
from loadgen.report.run_metrics import DURATION_BUCKETS_S, MAX_APP_IDS, OTHER_APP_ID, RunMetrics
from tests.unit.cli_in_process import loadgen_in_process
from tests.unit.standin_target import standin_target

MAP = ("--map", "1=v1,2=v2")


@pytest.fixture(autouse=True)
def _close_pages() -> Iterator[None]:
    yield
    close_all()  # the pages a command left open (they live until the process exits)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    """name -> [(sample name, labels, value)], through the client library's parser."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return {family.name: [(s.name, s.labels, s.value) for s in family.samples]
            for family in text_string_to_metric_families(text)}


def values(page: dict, sample_name: str, **match: str) -> list[tuple[dict[str, str], float]]:
    family = sample_name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
    return [(labels, v) for name, labels, v in page.get(family, [])
            if name == sample_name and all(labels.get(k) == want for k, want in match.items())]


def total(page: dict, sample_name: str, **match: str) -> float:
    return sum(v for _, v in values(page, sample_name, **match))


def state(page: dict) -> str:
    (on,) = [labels["state"] for labels, v in values(page, "loadgen_verdict") if v == 1]
    return on


def check_histograms(page: dict) -> None:
    """Each series: cumulative buckets on the fixed edges, +Inf equal to its count."""
    series: dict[tuple, list[tuple[float, float]]] = {}
    for labels, v in values(page, "loadgen_request_duration_seconds_bucket"):
        key = (labels["subset"], labels["app_id"])
        series.setdefault(key, []).append((float(labels["le"]), v))
    assert series
    for (subset, app_id), buckets in series.items():
        edges = [le for le, _ in sorted(buckets)]
        assert edges == [*DURATION_BUCKETS_S, float("inf")]
        counts = [v for _, v in sorted(buckets)]
        assert counts == sorted(counts), counts  # cumulative
        assert counts[-1] == total(page, "loadgen_request_duration_seconds_count", subset=subset, app_id=app_id)


def test_a_canary_page_scraped_during_the_run_and_after_its_verdict(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    during: list[dict] = []

    def answer(n: int):
        if n == 300:  # the target itself scrapes while the run waits on this very answer
            during.append(scrape(url))
        return 200, "1" if n % 20 < 17 else "2"

    with standin_target(answer) as target:
        result = loadgen_in_process("canary", "--target", target, "--consul", "127.0.0.1:9", *MAP, "--expect", "85/15",
                                    "--tolerance", "5", "--rate", "500", "--warmup", "0.1s", "--max-time", "30s", "-q",
                                    "--json", str(tmp_path / "r.json"), "--metrics-listen", f"127.0.0.1:{port}",
                                    tmp_path=tmp_path)
        after = scrape(url)  # the verdict is out; the page stays up until the process exits
    assert result.returncode == ExitCode.OK, result.stderr
    assert f"metrics: {url}" in result.stderr
    doc = json.loads((tmp_path / "r.json").read_text())

    (running,) = during
    assert state(running) == "RUNNING" and total(running, "loadgen_verdict_final") == 0
    assert 0 < total(running, "loadgen_requests_total") <= 300  # released in send order, so never ahead
    check_histograms(running)

    # The page's final state is the result's (PASS, unless a busy machine made the stand-in time out a lot).
    assert state(after) == doc["verdict"] and total(after, "loadgen_verdict_final") == 1
    assert total(after, "loadgen_requests_total") == doc["requests"]
    for subset, app_id in (("v1", "1"), ("v2", "2")):
        assert total(after, "loadgen_requests_total", subset=subset, app_id=app_id) == doc["app_id_counts"][app_id]
        assert total(after, "loadgen_answers_total", subset=subset) == doc["app_id_counts"][app_id]
    assert {labels["kind"]: v for labels, v in values(after, "loadgen_errors_total")} == doc["errors"]
    # Every answer has a latency; a request that timed out has none.
    answered = sum(doc["app_id_counts"].values())
    assert answered <= total(after, "loadgen_request_duration_seconds_count") <= doc["requests"]
    check_histograms(after)
    assert total(after, "loadgen_judged_answers") == doc["judge"]["n"]
    for s in doc["judge"]["subsets"]:
        assert total(after, "loadgen_expected_share", subset=s["name"]) == pytest.approx(s["expected"])
        for bound, key in (("lower", "lower"), ("observed", "share"), ("upper", "upper")):
            assert total(after, "loadgen_split_share", subset=s["name"], bound=bound) == pytest.approx(s[key])
        assert [total(after, "loadgen_split_band_share", subset=s["name"], bound=b) for b in ("lower", "upper")] \
            == pytest.approx(s["band"])
    assert values(after, "loadgen_run_info", command="canary")


def test_a_run_page_counts_every_request_and_its_errors(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with standin_target(lambda n: (503, None) if n % 10 == 0 else (200, "1" if n % 2 else "2")) as target:
        result = loadgen_in_process("run", "--target", target, "--rate", "200", "--duration", "0.5s", "--no-plots",
                                    "--json", "--out", str(tmp_path / "out"), "--metrics-listen", f"127.0.0.1:{port}",
                                    tmp_path=tmp_path)
        page = scrape(url)
    assert result.returncode == ExitCode.OK, result.stderr
    (stage,) = json.loads(result.stdout)["stages"]
    assert total(page, "loadgen_requests_total") == stage["requests"]["sent"] > 0
    assert total(page, "loadgen_errors_total") == stage["requests"]["errors"] > 0
    assert {labels["kind"] for labels, _ in values(page, "loadgen_errors_total")} == set(stage["errors"])
    assert total(page, "loadgen_answers_total") == stage["requests"]["sent"] - stage["requests"]["errors"]
    assert {labels["subset"] for labels, _ in values(page, "loadgen_requests_total")} == {""}  # run has no map
    assert "loadgen_verdict" not in page  # nothing is judged
    check_histograms(page)


def test_a_taken_port_is_one_line_before_any_request(tmp_path):
    sent: list[int] = []
    with socket.socket() as taken, standin_target(lambda n: sent.append(n) or (200, "1")) as target:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = loadgen_in_process("canary", "--target", target, "--consul", "127.0.0.1:9", *MAP, "--expect",
                                    "85/15", "--metrics-listen", f"127.0.0.1:{port}", tmp_path=tmp_path)
    assert result.returncode == ExitCode.ENVIRONMENT, result.stderr
    assert "already in use" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sent == []


@pytest.mark.parametrize(("args", "needle"), [
    (("--metrics-listen", "0.0.0.0:9464"), "not a loopback address"),
    (("--metrics-listen", "192.0.2.1:9464"), "--metrics-allow-remote"),
    (("--metrics-listen", "127.0.0.1"), "is not HOST:PORT"),
    (("--metrics-listen", "127.0.0.1:99999"), "is not HOST:PORT"),
    (("--metrics-listen", "::1:9464"), "in brackets"),
    (("--metrics-allow-remote",), "goes with --metrics-listen"),
])
def test_bad_metrics_options_exit_2_before_any_request(args, needle, tmp_path):
    sent: list[int] = []
    with standin_target(lambda n: sent.append(n) or (200, "1")) as target:
        result = loadgen_in_process("canary", "--target", target, "--consul", "127.0.0.1:9", *MAP, "--expect",
                                    "85/15", *args, tmp_path=tmp_path)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sent == [] and serving() == []


def test_listen_addresses():
    assert str(parse_listen("127.0.0.1:0")) == "127.0.0.1:0"
    assert str(parse_listen("[::1]:9464")) == "[::1]:9464"
    assert parse_listen("localhost:9464").host == "localhost"
    assert parse_listen("0.0.0.0:9464", allow_remote=True).host == "0.0.0.0"  # parsed only: nothing binds it here
    with pytest.raises(UsageError, match="not a loopback"):
        parse_listen("[::]:9464")


def test_app_ids_beyond_the_cap_share_one_label_and_every_request_is_counted():
    metrics = RunMetrics("run", judged=False)
    for i in range(MAX_APP_IDS + 10):
        metrics.observe(Sample(0.0, 200, f"id{i}", 1.0, None))
    page = {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(render(metrics_registry(metrics)).decode())}
    labels = {lab["app_id"] for lab, _ in values(page, "loadgen_requests_total")}
    assert len(labels) == MAX_APP_IDS + 1 and OTHER_APP_ID in labels
    assert total(page, "loadgen_requests_total", app_id=OTHER_APP_ID) == 10
    assert total(page, "loadgen_requests_total") == MAX_APP_IDS + 10


def test_remote_increments_beyond_the_cap_share_one_label_and_keep_their_subset():
    from loadgen.report.run_metrics import PageIncrements, decode_increment

    metrics, page = RunMetrics("canary"), PageIncrements()
    for i in range(MAX_APP_IDS + 10):
        page.observe(Sample(0.0, 200, f"id{i}", 1.0, None))
    metrics.add_increment(decode_increment(page.take()), lambda app_id: "v2" if app_id.endswith("1") else "v1")
    view = metrics.read()
    assert len({app_id for _, app_id in view.requests}) == MAX_APP_IDS + 1
    assert sum(n for (_, app_id), n in view.requests.items() if app_id == OTHER_APP_ID) == 10
    # An APP_ID past the cap loses its own label, not its subset: id41 (v2) and id32..id40 (v1).
    assert view.requests[("v2", OTHER_APP_ID)] == 1 and view.requests[("v1", OTHER_APP_ID)] == 9
    assert page.take() == {"rows": [], "errors": {}}  # taken: the next report starts from zero


def test_a_latency_on_a_bucket_edge_is_in_that_bucket():
    metrics = RunMetrics("run", judged=False)
    metrics.observe(Sample(0.0, 200, "1", DURATION_BUCKETS_S[0] * 1000, None))
    page = {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(render(metrics_registry(metrics)).decode())}
    first = values(page, "loadgen_request_duration_seconds_bucket", le=str(DURATION_BUCKETS_S[0]))
    assert [v for _, v in first] == [1]


def test_several_runs_on_one_page_keep_their_series_apart():
    a, b = RunMetrics("canary"), RunMetrics("canary")
    a.observe(Sample(0.0, 200, "1", 1.0, None), "v1")
    b.observe(Sample(0.0, 200, "1", 1.0, None), "v1")
    b.observe(Sample(0.0, 200, "2", 1.0, None), "v2")
    registry = metrics_registry(lambda: [({"run_id": "a"}, a), ({"run_id": "b"}, b)])
    page = {f.name: [(s.name, s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(render(registry).decode())}
    assert total(page, "loadgen_requests_total", run_id="a") == 1
    assert total(page, "loadgen_requests_total", run_id="b") == 2
    assert len(values(page, "loadgen_verdict", state="RUNNING")) == 2


def test_worker_processes_counts_add_up_on_the_parents_page():
    from loadgen.load.engine import LoadPlan
    from loadgen.load.workers import run_workers

    metrics = RunMetrics("run", judged=False)
    with standin_target(lambda n: (503, None) if n % 5 == 0 else (200, "1" if n % 2 else "2")) as target:
        plan = LoadPlan(url=target, rate=200, max_requests=40, max_time=5, timeout=2)
        merged = run_workers(plan, 2, on_metrics=metrics.absorb)
    view = metrics.read()
    assert sum(view.requests.values()) == merged.tally.sent == 40
    assert view.errors == dict(merged.tally.errors) and sum(view.errors.values()) > 0
    assert {app_id: n for (_, app_id), n in view.answers.items()} == dict(merged.tally.app_ids)
    assert sum(d.count for d in view.durations.values()) == 40
    assert all(sum(d.buckets) == d.count for d in view.durations.values())


def test_an_unreachable_target_ends_the_page_inconclusive_not_running(tmp_path):
    port = free_port()
    with standin_target(lambda n: "cut") as target:
        result = loadgen_in_process("canary", "--target", target, "--consul", "127.0.0.1:9", *MAP, "--expect",
                                    "85/15", "-q", "--metrics-listen", f"127.0.0.1:{port}", tmp_path=tmp_path)
    page = scrape(f"http://127.0.0.1:{port}/metrics")
    assert result.returncode == ExitCode.UNREACHABLE, result.stderr
    assert state(page) == "INCONCLUSIVE" and total(page, "loadgen_verdict_final") == 1
    assert "loadgen_requests" not in page  # the reachability probe's attempts are not the run's requests


def test_comparisons_on_the_page_are_the_results(tmp_path):
    port = free_port()
    with standin_target(lambda n: (200, "1" if n % 20 < 17 else "2")) as target:
        result = loadgen_in_process("canary", "--target", target, "--consul", "127.0.0.1:9", *MAP, "--expect", "85/15",
                                    "--tolerance", "5", "--rate", "500", "--warmup", "0", "--max-requests", "1200",
                                    "--latency", "p50", "--latency-margin", "100%", "--error-margin", "5", "-q",
                                    "--json", str(tmp_path / "r.json"), "--metrics-listen", f"127.0.0.1:{port}",
                                    tmp_path=tmp_path)
    page = scrape(f"http://127.0.0.1:{port}/metrics")
    assert result.returncode in (ExitCode.OK, ExitCode.INCONCLUSIVE), result.stderr
    comparisons = json.loads((tmp_path / "r.json").read_text())["comparisons"]
    (latency,) = comparisons["latency"]
    (errors,) = comparisons["errors"]
    assert (latency["subset"], latency["baseline"]) == ("v2", "v1")
    on = [labels for labels, v in values(page, "loadgen_latency_comparison", subset="v2", baseline="v1",
                                            quantile="p50") if v == 1]
    assert [labels["state"] for labels in on] == [latency["verdict"]]
    for subset, key in (("v2", "canary_ms"), ("v1", "baseline_ms")):
        got = [total(page, "loadgen_latency_quantile_seconds", subset=subset, quantile="p50", bound=b) * 1000
               for b in ("lower", "upper")]
        assert got == pytest.approx(latency[key], abs=1e-3)
    on = [labels["state"] for labels, v in values(page, "loadgen_error_comparison", subset="v2") if v == 1]
    assert on == [errors["verdict"]]
    assert total(page, "loadgen_error_share", subset="v2", bound="observed") == pytest.approx(errors["rate"], abs=1e-6)
    assert total(page, "loadgen_error_share", subset="v1", bound="upper") == \
        pytest.approx(errors["baseline_interval"][1], abs=1e-6)
