"""`loadgen shift` on the real mesh (process runtime, stage splitter): a clean shift, a bad
release rolled back, a concurrent write caught by CAS, --apply-cmd, Ctrl-C, and bad input.

Each test starts from the stage's splitter (85/15) and puts it back afterwards. service-b v2 is
the instance on :3002; its fault injection (POST /test/fault) plays the bad release.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from tests.integration.splitter import wait_envoy_split

CONSUL = "http://127.0.0.1:8500"
SPLITTER = f"{CONSUL}/v1/config/service-splitter/service-b"
V2_FAULT = "http://127.0.0.1:3002/test/fault"
START = {"Kind": "service-splitter", "Name": "service-b",
         "Splits": [{"Weight": 85, "ServiceSubset": "v1"}, {"Weight": 15, "ServiceSubset": "v2"}]}
# Wide enough that each step decides in a few seconds at 200/s; the split is still checked.
FAST = ("--tolerance", "5", "--rate", "600", "--verify-time", "40s", "--step-timeout", "30s")


def _weights() -> dict[str, float]:
    entry = httpx.get(SPLITTER, timeout=5).json()
    return {s["ServiceSubset"]: float(s["Weight"]) for s in entry["Splits"]}


def _when_weights(weights: dict[str, float], action) -> threading.Event:
    """Call ``action`` once, from a thread, as soon as Consul's splitter has ``weights``; the event
    returned is set when it has (within 120 s)."""
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _weights() == weights:
                action()
                done.set()
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return done


@pytest.fixture
def splitter(loadgen):
    loadgen("up", "--stage", "splitter", "-q")
    httpx.put(f"{CONSUL}/v1/config", json=START, timeout=5).raise_for_status()
    httpx.post(V2_FAULT, params={"error_rate": 0, "delay_ms": 0}, timeout=5).raise_for_status()
    yield
    httpx.post(V2_FAULT, params={"error_rate": 0, "delay_ms": 0}, timeout=5)
    httpx.put(f"{CONSUL}/v1/config", json=START, timeout=5)


def _shift(loadgen, *args: str, timeout: float = 300) -> tuple[int, dict, str]:
    proc = loadgen("shift", *FAST, *args, "--json", "-", timeout=timeout, check=False)  # args win
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout, (proc.returncode, proc.stderr)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_a_clean_shift_passes_every_step_and_leaves_v2_at_100(loadgen, splitter, tmp_path):
    junit, html = tmp_path / "shift.xml", tmp_path / "html"
    # A healthy v2 is also judged not slower than v1 (p50 within 50 %) wherever both get traffic;
    # at 200/s, since latencies are judged only when the generator keeps its schedule.
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "25,50,100", "--junit", str(junit),
                                  "--html", str(html), "--latency", "p50", "--latency-margin", "50%", "--rate", "200")
    assert code == 0 and report["outcome"] == "shifted", stderr
    assert _weights() == {"v1": 0.0, "v2": 100.0}
    names = [p["name"] for p in report["phases"]]
    assert names == ["start", "step 1", "step 2", "step 3"]
    for phase, want in zip(report["phases"][1:], ({"v1": 75, "v2": 25}, {"v1": 50, "v2": 50},
                                                   {"v1": 0, "v2": 100}), strict=True):
        assert phase["passed"] and phase["verdict"] == "PASS" and phase["weights"] == want, phase
        # Consul's chain showed the weights before the client sidecar's route did, both after the write.
        assert 0 <= phase["consul_ms"] <= phase["envoy_ms"] < 30_000, phase
        lo, hi = phase["interval"]["v2"]
        assert lo <= want["v2"] / 100 <= hi, phase
        assert phase["looks"], phase
    assert report["rolled_back"] is None and report["start_entry"]["Splits"][1]["Weight"] == 15
    xml = junit.read_text()
    assert xml.count("<testcase") == 4 and "<failure" not in xml
    page = (html / "index.html").read_text()
    assert all(name in page for name in names) and (html / "shift.png").stat().st_size > 10_000
    # Each step's p50 comparison, v2 against v1, in the JSON and on the page.
    assert all(p["comparisons"]["latency"][0]["verdict"] == "PASS" for p in report["phases"][1:3]), report["phases"]
    assert "latency p50 v2 vs v1" in page


def test_a_failing_v2_fails_the_first_step_and_the_rollback_is_verified(loadgen, splitter):
    before = httpx.get(SPLITTER, timeout=5).json()["ModifyIndex"]
    # v2 starts failing once the first step is in Consul, as a canary broken by the new traffic
    # would (failing from the start, it slowed the start's check: half its answers carry no APP_ID).
    broken = _when_weights({"v1": 75.0, "v2": 25.0}, lambda: httpx.post(
        V2_FAULT, params={"error_rate": 0.5}, timeout=5).raise_for_status())
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "25,50,100", "--max-errors", "1%")
    assert broken.wait(timeout=5), "the first step never showed in Consul"
    assert code == 1 and report["outcome"] == "failed", stderr
    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == ["start", "step 1", "rollback"]  # stopped at the first step that saw it
    step = phases["step 1"]
    assert not step["passed"] and "gate" in step["failure"] and "v2" in step["failure"], step
    assert step["subsets"]["v2"]["errors"] > 0 and step["subsets"]["v1"]["errors"] == 0, step
    rollback = phases["rollback"]
    assert rollback["passed"] and rollback["weights"] == {"v1": 85.0, "v2": 15.0} and rollback["envoy_ms"], rollback
    assert report["rolled_back"] is True and "verified" in report["rollback_note"]
    entry = httpx.get(SPLITTER, timeout=5).json()
    assert _weights() == {"v1": 85.0, "v2": 15.0} and entry["ModifyIndex"] > before
    assert "shift failed: step 1" in stderr and "rolled back and verified" in stderr


def test_a_slower_v2_fails_the_first_step_on_latency_and_is_rolled_back(loadgen, splitter):
    httpx.post(V2_FAULT, params={"delay_ms": 40}, timeout=5).raise_for_status()
    # 200/s: latencies are judged only when the generator keeps its schedule (a busy CI machine at 600/s may not).
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "25,50,100", "--latency", "p50",
                                  "--latency-margin", "50%", "--rate", "200")
    assert code == 1 and report["outcome"] == "failed", stderr
    phases = {p["name"]: p for p in report["phases"]}
    assert list(phases) == ["start", "step 1", "rollback"]
    assert "v2's p50 is at least" in phases["step 1"]["failure"], phases["step 1"]
    assert phases["rollback"]["passed"] and report["rolled_back"] is True
    assert _weights() == {"v1": 85.0, "v2": 15.0}


def test_a_concurrent_write_is_caught_and_not_overwritten(loadgen, splitter):
    theirs = {**START, "Splits": [{"Weight": 60, "ServiceSubset": "v1"}, {"Weight": 40, "ServiceSubset": "v2"}]}
    # Another client writes the splitter as soon as the shift's first step is in Consul.
    written = _when_weights({"v1": 75.0, "v2": 25.0}, lambda: httpx.put(
        f"{CONSUL}/v1/config", json=theirs, timeout=5).raise_for_status())
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "25,50,100")
    assert written.wait(timeout=5), "the other client never saw the first step"
    assert code == 1 and report["concurrent_change"], (report["failure"], stderr)
    assert "someone else" in report["failure"]
    # Their write stands: the shift rolls back only what it wrote, and says so.
    assert report["rolled_back"] is False and "rolls back only what it wrote" in report["rollback_note"]
    assert _weights() == {"v1": 60.0, "v2": 40.0}


def test_apply_cmd_applies_each_step_through_the_users_script(loadgen, splitter, tmp_path):
    script = tmp_path / "apply.py"
    log = tmp_path / "applied.txt"
    script.write_text(textwrap.dedent(f"""
        import json, os, urllib.request
        weights = dict(p.split("=") for p in os.environ["LOADGEN_WEIGHTS"].split(","))
        with open({str(log)!r}, "a") as fh:
            fh.write(os.environ["LOADGEN_STEP"] + " " + os.environ["LOADGEN_WEIGHTS"] + " "
                     + os.environ["LOADGEN_WEIGHT_V2"] + "\\n")
        entry = {{"Kind": "service-splitter", "Name": "service-b",
                  "Splits": [{{"Weight": float(weights["v1"]), "ServiceSubset": "v1"}},
                             {{"Weight": float(weights["v2"]), "ServiceSubset": "v2"}}]}}
        req = urllib.request.Request("{CONSUL}/v1/config", data=json.dumps(entry).encode(), method="PUT")
        assert urllib.request.urlopen(req).read().strip() == b"true"
    """))
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "50,100", "--apply-cmd",
                                  f"{sys.executable} {script}")
    assert code == 0, (report.get("failure"), stderr)
    assert log.read_text().splitlines() == ["1 v1=50,v2=50 50", "2 v1=0,v2=100 100"]
    assert _weights() == {"v1": 0.0, "v2": 100.0}
    assert all(p["passed"] and p["envoy_ms"] is not None for p in report["phases"][1:])


def test_a_failing_apply_cmd_is_a_failed_step_with_its_last_line(loadgen, splitter):
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "50", "--apply-cmd",
                                  "echo 'terraform: plan refused' >&2; exit 3")
    assert code == 1 and "--apply-cmd exited 3: terraform: plan refused" in report["failure"], stderr
    assert _weights() == {"v1": 85.0, "v2": 15.0}  # nothing was written, so nothing to roll back
    assert report["rolled_back"] is None


def test_ctrl_c_mid_step_rolls_back_and_exits_130(loadgen, splitter, tmp_path):
    out = tmp_path / "shift.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "shift", "--subset", "v2", "--steps", "25,50,100", "--tolerance", "5",
         "--rate", "400", "--verify-time", "20s", "--hold", "60s", "--force", "--json", str(out), "-q"],
        env=loadgen.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The first step is under load from its write until its 60 s hold is over (its check
        # takes ~3 s at 5 points): interrupt it there, checking or holding. The rollback is then
        # decided at the same 5 points in a few seconds (at 0.5 points it ran its whole budget).
        deadline = time.monotonic() + 90
        while _weights() != {"v1": 75.0, "v2": 25.0}:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the first step was never written"
            time.sleep(0.05)
        wait_envoy_split({"v1": 7500, "v2": 2500})  # the step is in the data plane: shift is timing/verifying it
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(out.read_text())
    assert report["outcome"] == "interrupted" and report["rolled_back"] is True, report
    assert report["rollback_note"] == "rolled back and verified in the data plane", report["rollback_note"]
    rollback = report["phases"][-1]
    assert rollback["name"] == "rollback" and rollback["envoy_ms"] is not None and rollback["verdict"] == "PASS"
    assert _weights() == {"v1": 85.0, "v2": 15.0}


@pytest.mark.parametrize(("args", "said"), [
    (("--subset", "v2", "--steps", "25,20"), "--steps must go up"),
    (("--subset", "v9", "--steps", "25"), "--subset 'v9' is not in the splitter"),
    (("--steps", "90/20"), "add up to 110"),
    (("--steps", "25,50"), "needs --subset"),
    (("--subset", "v2", "--steps", "25", "--max-errors", "lots"), "--max-errors 'lots'"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(loadgen, splitter, args, said):
    before = httpx.get(SPLITTER, timeout=5).json()["ModifyIndex"]
    proc = loadgen("shift", *args, check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not line.startswith(" ")]
    assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert lines[-1].startswith("loadgen: error:") or "Error:" in lines[-1], proc.stderr
    assert httpx.get(SPLITTER, timeout=5).json()["ModifyIndex"] == before


def test_with_no_splitter_the_shift_starts_from_the_default_subset_and_its_rollback_deletes_it(loadgen, splitter):
    httpx.delete(SPLITTER, timeout=5).raise_for_status()
    try:
        # Resolver DefaultSubset v1: all traffic to v1. v2 fails half its answers: step 1 breaks the gate.
        httpx.post(V2_FAULT, params={"error_rate": 0.5}, timeout=5).raise_for_status()
        code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "20,100", "--max-errors", "1%")
        assert code == 1, stderr
        assert report["start"] == {"v1": 100.0, "v2": 0.0} and report["start_entry"] is None
        assert [p["name"] for p in report["phases"]] == ["start", "step 1", "rollback"]
        assert report["rolled_back"] is True, report["rollback_note"]
        assert httpx.get(SPLITTER, timeout=5).status_code == 404  # the splitter the shift created is gone
    finally:
        httpx.put(f"{CONSUL}/v1/config", json=START, timeout=5)


def test_an_apply_cmd_that_never_makes_consul_show_the_weights_fails_the_step(loadgen, splitter):
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "50", "--apply-cmd", "true",
                                  "--step-timeout", "3s")
    assert code == 1, stderr
    assert "never showed 50/50 within 3 s" in report["failure"], report["failure"]
    assert report["rolled_back"] is None and _weights() == {"v1": 85.0, "v2": 15.0}


def test_a_second_shift_of_the_same_service_is_refused_while_one_runs(loadgen, splitter, tmp_path):
    first = subprocess.Popen(
        # Its one step stays under load for its 60 s hold; its rollback is decided in seconds.
        [sys.executable, "-m", "loadgen.cli", "shift", "--subset", "v2", "--steps", "25", "--tolerance", "5",
         "--rate", "400", "--verify-time", "30s", "--hold", "60s", "--force", "-q"],
        env=loadgen.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _weights() != {"v1": 75.0, "v2": 25.0}:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = loadgen("shift", "--subset", "v2", "--steps", "50", check=False)
        assert second.returncode == 5, second.stderr
        assert "another loadgen shift of service-b" in second.stderr and "Traceback" not in second.stderr
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert _weights() == {"v1": 85.0, "v2": 15.0}  # the first one rolled back


def test_every_client_sidecar_given_must_show_the_step(loadgen, splitter):
    # service-b-1's sidecar (admin :19001) has no route to service-b: as a second client sidecar
    # it never shows the step, so the step fails naming it -- as a stale client would.
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "50", "--step-timeout", "3s", "--force",
                                  "--envoy-admin", "127.0.0.1:19000", "--envoy-admin", "127.0.0.1:19001")
    assert code == 1, stderr
    step = report["phases"][0]
    assert step["name"] == "step 1" and "stale proxy" in step["failure"] and "127.0.0.1:19001" in step["failure"]
    assert "127.0.0.1:19000" not in step["failure"] and "127.0.0.1:19000" in step["envoy_each_ms"], step
    assert report["rolled_back"] is False and "not seen in the data plane" in report["rollback_note"]
    assert _weights() == {"v1": 85.0, "v2": 15.0}  # written back all the same


def test_hold_soaks_each_passed_step_under_load_and_gates_it_again(loadgen, splitter):
    code, report, stderr = _shift(loadgen, "--subset", "v2", "--steps", "50", "--hold", "3s", "--max-errors", "1%",
                                  "--force")
    assert code == 0, stderr
    [step] = report["phases"]
    hold = step["hold"]
    assert hold["seconds"] == 3.0 and hold["verdict"] in ("PASS", "INCONCLUSIVE"), hold  # one look, fixed length
    assert hold["requests"] >= 400 and hold["gate"]["held"], hold  # 3 s at 200/s
    assert set(hold["subsets"]) == {"v1", "v2"}


def test_the_metrics_page_follows_the_shift_and_adds_up_to_its_requests(loadgen, splitter, tmp_path):
    """Issue 28: --metrics-listen scraped while the shift runs and after it, parsed with the
    Prometheus client's parser (in this process, so the page is still up after the command)."""
    import contextlib
    import socket
    import urllib.request

    from click.testing import CliRunner
    from prometheus_client.parser import text_string_to_metric_families

    from loadgen.cli import cli
    from loadgen.report.metrics_server import close_all

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def scrape() -> dict[tuple[str, frozenset], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        return {(x.name, frozenset(x.labels.items())): x.value
                for family in text_string_to_metric_families(text) for x in family.samples}

    def total(page: dict, name: str, **labels: str) -> float:
        return sum(v for (n, got), v in page.items() if n == name and set(labels.items()) <= got)

    pages: list[dict] = []
    done = threading.Event()

    def poll() -> None:  # pages seen while the shift runs (the page is up from before its first request)
        while not done.is_set():
            with contextlib.suppress(OSError):
                pages.append(scrape())
            done.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        result = CliRunner().invoke(cli, ["shift", *FAST, "--subset", "v2", "--steps", "25", "--force", "-q",
                                          "--json", str(tmp_path / "shift.json"), "--metrics-listen",
                                          f"127.0.0.1:{port}"],
                                    env={"LOADGEN_RUN_DIR": str(loadgen.run_dir)}, catch_exceptions=False)
        done.set()
        poller.join()
        after = scrape()
    finally:
        done.set()
        close_all()
    report = json.loads((tmp_path / "shift.json").read_text())
    assert result.exit_code == 0 and report["outcome"] == "shifted", result.stderr
    running = [p for p in pages if total(p, "loadgen_shift_outcome", outcome="running") == 1
               and total(p, "loadgen_requests_total") > 0]
    assert running and total(running[-1], "loadgen_verdict_final") == 0
    assert total(after, "loadgen_shift_outcome", outcome="shifted") == 1
    assert total(after, "loadgen_verdict", state="PASS") == 1 and total(after, "loadgen_verdict_final") == 1
    (step,) = report["phases"]  # --force: no start check
    assert total(after, "loadgen_requests_total") == step["requests"]
    by_subset = {name: total(after, "loadgen_requests_total", subset=name) for name in ("v1", "v2", "")}
    assert sum(by_subset.values()) == step["requests"] and by_subset["v2"] > 0
    assert total(after, "loadgen_expected_share", subset="v2") == 0.25
    lower, upper = step["interval"]["v2"]
    assert total(after, "loadgen_split_share", subset="v2", bound="lower") == pytest.approx(lower, abs=1e-6)
    assert total(after, "loadgen_split_share", subset="v2", bound="upper") == pytest.approx(upper, abs=1e-6)
    assert total(after, "loadgen_request_duration_seconds_count") == step["requests"]
