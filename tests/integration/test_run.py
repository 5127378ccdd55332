"""`loadgen run` on the real mesh: per-stage reports, all stages, closed loop, Ctrl-C.

One run and the walk over every stage run on every runtime (`per_runtime`); closed loop, signals
and workers exercise the generator, which is the same on every runtime, and run on process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.usefixtures("mesh_runtime")

@pytest.fixture
def reports(tmp_path):
    return tmp_path / "reports"


def _summary(reports, run_id, stage):
    return json.loads((reports / run_id / stage / "summary.json").read_text())


@pytest.mark.per_runtime
def test_one_stage_writes_every_file(loadgen, reports, mesh_runtime):
    proc = loadgen("run", "--stage", "splitter", "--rate", "200", "--duration", "3s", "--out", str(reports),
                   "--run-id", "one", "-q")
    assert "splitter" in proc.stdout
    files = {p.name for p in (reports / "one" / "splitter").iterdir()}
    assert files == {"summary.json", "histogram.hgrm", "timeseries.csv", "latency_over_time.png",
                     "percentile_spectrum.png"}
    s = _summary(reports, "one", "splitter")
    assert 550 <= s["requests"]["sent"] <= 601 and s["requests"]["errors"] == 0
    assert set(s["split"]) == {"1", "2"} and s["split"]["1"]["share"] > 0.7
    c, sv = s["latency_ms"]["corrected"], s["latency_ms"]["service"]
    assert c["count"] == sv["count"] == s["requests"]["sent"]
    assert 0 < c["p50"] <= c["p99"] <= c["max"] and sv["p99"] <= c["max"]
    assert s["generator"]["valid"], s["generator"]
    assert s["requests"]["dropped"] == 0 and s["stopped_by"] == "max_time"
    assert set(s["by_app_id"]) == {"1", "2"} and s["mode"] == "open" and s["schedule"] == "200"
    assert s["runtime"] == mesh_runtime.name
    rows = (reports / "one" / "splitter" / "timeseries.csv").read_text().splitlines()
    assert rows[0] == "second,sent,ok,errors,p50_ms,p99_ms,max_ms" and len(rows) == 4


@pytest.mark.per_runtime
def test_all_stages_walks_every_stage(loadgen, reports):
    # On the mesh left up (the shared one): every stage is switched to in place and splitter is
    # put back. A run that finds nothing and leaves nothing is the SIGTERM test's (and the canary's).
    loadgen("up", "--stage", "splitter")
    # 200 requests a stage: a subset with a 15 % share is missed with probability 0.85^200 < 1e-14.
    proc = loadgen("run", "--all-stages", "--rate", "200", "--duration", "1s", "--out", str(reports),
                   "--run-id", "all", "--no-plots", "--json")
    result = json.loads(proc.stdout)
    # The seed's four, then loadgen's own two (consul/stages.toml's order).
    assert [s["stage"] for s in result["stages"]] == ["basic", "intentions", "l7-router", "splitter",
                                                      "header-route", "nested-splitter"]
    by_stage = {s["stage"]: s for s in result["stages"]}
    assert by_stage["intentions"]["requests"]["ok"] == 0  # the deny is in force
    assert by_stage["intentions"]["requests"]["errors"] == by_stage["intentions"]["requests"]["sent"]
    for stage in ("basic", "l7-router", "splitter", "header-route", "nested-splitter"):
        assert by_stage[stage]["requests"]["errors"] == 0 and set(by_stage[stage]["split"]) == {"1", "2"}
    status = loadgen.json("status")
    assert status["up"] and status["stage"] == "splitter"  # put back as it was found


def test_closed_loop(loadgen, reports):
    proc = loadgen("run", "--stage", "basic", "--concurrency", "4", "--duration", "2s", "--out", str(reports),
                   "--run-id", "closed", "--json", "--no-plots")
    s = json.loads(proc.stdout)["stages"][0]
    assert s["mode"] == "closed" and s["concurrency"] == 4 and s["requests"]["sent"] > 200
    assert s["latency_ms"]["corrected"]["p99"] == s["latency_ms"]["service"]["p99"]


def test_ctrl_c_writes_what_was_collected(loadgen, reports):
    loadgen("up", "--stage", "basic")
    record = reports / "rec.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "run", "--stage", "basic", "--rate", "200", "--duration", "60s",
         "--out", str(reports), "--run-id", "int", "--record", str(record), "--no-plots", "-q"],
        env=loadgen.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not record.exists() or len(record.read_text().splitlines()) < 200:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    s = _summary(reports, "int", "basic")
    assert s["interrupted"] is True and s["stopped_by"] == "interrupted" and s["interrupted_by"] == "SIGINT"
    assert s["requests"]["sent"] == len(record.read_text().splitlines()) >= 200
    assert s["duration_s"] < 30


def test_sigterm_writes_the_report_and_takes_down_what_it_brought_up(loadgen, reports):
    loadgen("down", "-q")
    record = reports / "term.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "run", "--stage", "basic", "--rate", "200", "--duration", "120s",
         "--out", str(reports), "--run-id", "term", "--record", str(record), "--no-plots", "-q"],
        env=loadgen.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 240  # bringing the stage up comes first
    while not record.exists() or len(record.read_text().splitlines()) < 200:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    s = _summary(reports, "term", "basic")
    assert s["interrupted"] is True and s["interrupted_by"] == "SIGTERM"
    assert s["requests"]["sent"] == len(record.read_text().splitlines()) >= 200
    assert loadgen.state() == {}  # nothing was running before, so nothing is after


def test_workers_merge_exactly(loadgen, reports):
    record = reports / "w.jsonl"
    proc = loadgen("run", "--stage", "splitter", "--rate", "400", "--duration", "3s", "--workers", "2",
                   "--out", str(reports), "--run-id", "w", "--record", str(record), "--no-plots", "--json")
    s = json.loads(proc.stdout)["stages"][0]
    gen = s["generator"]
    assert gen["workers"] == 2 and len(gen["per_worker"]) == 2
    sent = s["requests"]["sent"]
    assert sent == sum(w["sent"] for w in gen["per_worker"])
    # Every request of the schedule is sent or, when a worker on a loaded machine missed the
    # deadline, counted as dropped (max_time is a wall-clock deadline): none is lost in the merge.
    assert sent + gen["dropped"] == 1200 and gen["dropped"] == sum(w["dropped"] for w in gen["per_worker"])
    assert gen["dropped"] <= 12, gen  # a slip at the deadline, not a generator that fell behind
    rows = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(rows) == sent and [r["t"] for r in rows] == sorted(r["t"] for r in rows)
    # The merged histogram holds every answer once; the split is over all of them.
    assert s["latency_ms"]["corrected"]["count"] == sent
    assert sum(v["count"] for v in s["split"].values()) == s["requests"]["ok"]
    assert sum(1 for r in rows if r["app_id"] == "1") == s["split"]["1"]["count"]
