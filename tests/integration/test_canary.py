"""`loadgen canary` on the real mesh: PASS, FAIL, a changed splitter, a missing subset, Ctrl-C.

What differs per runtime (`per_runtime`: a PASS from a fresh machine, a stopped instance that
FAILs) runs on every runtime; the rest exercises the judge and the borrowing, which are the same
on every runtime, and runs on process. Canaries whose subject is not precision use
`--tolerance 5` (85/15 then needs ~850 requests instead of ~5,000)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.integration.splitter import put_splitter, wait_envoy_split

pytestmark = pytest.mark.usefixtures("mesh_runtime")

CONSUL = "http://127.0.0.1:8500"


def canary(loadgen, *args, check=False):
    return loadgen("canary", *args, "-q", check=check)


@pytest.mark.per_runtime
def test_pass_on_a_fresh_machine_and_the_mesh_is_put_back(loadgen, mesh_runtime, tmp_path):
    # The README's own job, at the default tolerance, on the embedded default (process). Docker
    # and nomad are here for their own bring-up and take-down: the judge's precision is the same
    # code on every runtime, so they judge at 5 points (~850 requests instead of ~5,000).
    loadgen("down", "-q")
    out_json, out_xml = tmp_path / "c.json", tmp_path / "c.xml"
    precision = () if mesh_runtime.name == "process" else ("--tolerance", "5")
    proc = canary(loadgen, "--expect", "85/15", *precision, "--json", str(out_json), "--junit", str(out_xml))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out_json.read_text())
    assert result["verdict"] == "PASS"
    assert result["mapping"]["app_ids"] == {"1": "v1", "2": "v2"}
    assert result["errors"] == {} and result["stopped_by"] == "verdict"
    assert "<testsuite" in out_xml.read_text()
    # Nothing was running before, so nothing runs after.
    assert loadgen.state() == {}


def test_wrong_expectation_fails(loadgen):
    loadgen("up", "--stage", "splitter")
    proc = canary(loadgen, "--expect", "50/50", "--json", "-")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert result["verdict"] == "FAIL" and result["requests"] < 2_000
    # The mesh the test brought up is left as it was found: still up, at splitter.
    assert loadgen.json("status")["stage"] == "splitter"


def test_changed_splitter_fails_the_old_expectation_and_passes_consul(loadgen):
    loadgen("up", "--stage", "splitter")  # on its own too, not only after the tests before it
    put_splitter((50, 50))
    try:
        wait_envoy_split({"v1": 5000, "v2": 5000})
        proc = canary(loadgen, "--expect", "85/15", "--tolerance", "5", "--json", "-")
        assert proc.returncode == 1
        assert json.loads(proc.stdout)["verdict"] == "FAIL"
        proc = canary(loadgen, "--expect", "consul", "--tolerance", "5", "--json", "-")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["expected"] == {"v1": 0.5, "v2": 0.5} and result["verdict"] == "PASS"
    finally:
        put_splitter((85, 15))
        wait_envoy_split({"v1": 8500, "v2": 1500})


@pytest.mark.per_runtime
def test_stopped_v2_instance_fails_naming_the_subset(loadgen, mesh_runtime):
    # process: the instance is terminated; docker: its container stopped; nomad: its group scaled to 0.
    loadgen("up", "--stage", "splitter")  # the fresh-machine canary before it left nothing running
    mesh_runtime.stop_instance(loadgen, "service-b-2")
    try:
        status = loadgen("status", "--json", check=False)
        assert status.returncode == 4
        assert {c["name"] for c in json.loads(status.stdout)["components"] if not c["running"]} >= {"service-b-2"}
        proc = canary(loadgen, "--expect", "85/15", "--json", "-")
        assert proc.returncode == 1
        result = json.loads(proc.stdout)
        assert result["verdict"] == "FAIL"
        # Named either way: proved below its band, or noted as silent when the errors proved the FAIL first.
        assert "v2 gets no response at all" in result["reason"] or "v2 has not answered once" in result["reason"]
        assert result["app_id_counts"].get("2") is None and sum(result["errors"].values()) > 0
    finally:
        loadgen("up", "--stage", "splitter")  # restarts the stopped instance


def test_one_percent_canary_passes_and_fails_when_v2_is_stopped(loadgen, mesh_runtime):
    # A 99/1 splitter: the canary's band is 0.5-1.5 %, so a dead v2 can no longer hide in +-2 points.
    loadgen("up", "--stage", "splitter")
    put_splitter((99, 1))
    try:
        wait_envoy_split({"v1": 9900, "v2": 100})
        proc = canary(loadgen, "--expect", "99/1", "--rate", "800", "--json", "-")
        result = json.loads(proc.stdout)
        assert proc.returncode == 0 and result["verdict"] == "PASS", result["reason"]
        assert result["bands"]["v2"] == pytest.approx([0.005, 0.015])
        assert result["app_id_counts"]["2"] > 0 and not result["judge"]["change"]["detected"]
        mesh_runtime.stop_instance(loadgen, "service-b-2")
        proc = canary(loadgen, "--expect", "99/1", "--rate", "800", "--json", "-")
        result = json.loads(proc.stdout)
        assert proc.returncode == 1 and result["verdict"] == "FAIL", result["reason"]
        assert result["reason"].startswith("v2 gets no response at all: it has answered 0 of"), result["reason"]
        assert "expected 1 %" in result["reason"] and result["app_id_counts"].get("2") is None
        # The requests the splitter sent to the missing v2 failed (~1 %), below --max-errors: the FAIL is v2's.
        assert not any(g["exceeded"] for g in result["judge"]["guards"])
    finally:
        loadgen("up", "--stage", "splitter")  # restarts the stopped instance
        put_splitter((85, 15))
        wait_envoy_split({"v1": 8500, "v2": 1500})


def test_splitter_changed_mid_run_fails_with_the_change_reason(loadgen, tmp_path):
    # Another operator's write during the run: 85/15 becomes 50/50 after ~2 s.
    loadgen("up", "--stage", "splitter")
    out, record = tmp_path / "c.json", tmp_path / "rec.jsonl"
    # A tolerance that cannot be decided in a few seconds, so the run is still going at the write.
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "canary", "--expect", "85/15", "--tolerance", "0.3", "--rate", "500",
         "--max-time", "30s", "--record", str(record), "--json", str(out), "-q"],
        env=loadgen.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not record.exists() or len(record.read_text().splitlines()) < 1000:  # ~2 s of answers at 85/15
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        put_splitter((50, 50))
        _, stderr = proc.communicate(timeout=60)
        result = json.loads(out.read_text())
        assert proc.returncode == 1 and result["verdict"] == "FAIL", stderr
        assert result["reason"].startswith("the split changed during the run at t ≈ "), result["reason"]
        change = result["judge"]["change"]
        assert change["detected"] and 1.5 < change["at_t"] < 10.0
        assert abs(change["before"]["shares"]["v1"] - 0.85) < 0.05 and abs(change["after"]["shares"]["v1"] - 0.5) < 0.2
    finally:
        if proc.poll() is None:
            proc.kill()
        put_splitter((85, 15))
        wait_envoy_split({"v1": 8500, "v2": 1500})


def test_another_stage_is_put_back_after_the_run(loadgen):
    loadgen("up", "--stage", "basic")
    proc = canary(loadgen, "--expect", "85/15", "--tolerance", "5")
    assert proc.returncode == 0, proc.stderr
    assert loadgen.json("status")["stage"] == "basic"
    entries = httpx.get(f"{CONSUL}/v1/config/service-splitter", timeout=5).json()
    assert entries == []  # basic has no splitter; the one the canary needed is gone again


@pytest.mark.parametrize(("signum", "code", "word"),
                         [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_stop_signal_keeps_every_sample_writes_the_reports_and_takes_the_mesh_down(loadgen, tmp_path, signum, code,
                                                                                     word):
    """Ctrl-C and SIGTERM (timeout, CI cancellation, docker stop) alike: every sample is judged
    and written, and the mesh the canary brought up for itself is taken down again."""
    loadgen("down", "-q")
    record, out_json, out_xml = tmp_path / "rec.jsonl", tmp_path / "c.json", tmp_path / "c.xml"
    # A tolerance this small cannot be decided in 2 s, so the run is still going when interrupted.
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "canary", "--expect", "85/15", "--tolerance", "0.1", "--rate", "300",
         "--record", str(record), "--json", str(out_json), "--junit", str(out_xml), "-q"],
        env=loadgen.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while not record.exists() or len(record.read_text().splitlines()) < 150:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    pids = [p["pid"] for p in loadgen.state().get("processes", {}).values() if p.get("pid")]
    proc.send_signal(signum)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code, stderr
    result = json.loads(out_json.read_text())
    assert result["verdict"] == "INCONCLUSIVE" and result["stopped_by"] == "interrupted"
    assert result["reason"].startswith(word) and result["exit_code"] == code
    assert result["interrupted_by"] == signal.Signals(signum).name
    assert "<testsuite" in out_xml.read_text()
    lines = record.read_text().splitlines()
    assert len(lines) == result["requests"] > 100
    assert sum(result["app_id_counts"].values()) + sum(result["errors"].values()) == result["requests"]
    assert "Traceback" not in stderr
    # Nothing ran before the canary, so nothing runs after it.
    assert loadgen.state() == {}
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:3000/hello_a", timeout=2)
