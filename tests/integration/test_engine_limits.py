"""--duration / --max-time are wall-clock limits in open loop, against a real local HTTP
server (no mesh): a generator that cannot keep the rate stops at the deadline, counts the
requests it never sent as dropped and marks the run invalid. The time bounds below only
show that the run stops; they are generous on purpose, not performance figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from loadgen.load.engine import LoadPlan, run_blocking, run_load
from loadgen.load.workers import run_workers
from tests.integration.local_target import local_target

SLOW_MS = 50


@pytest.fixture(scope="module")
def slow_target():
    with local_target(delay_ms=SLOW_MS) as target:
        yield target


def _run(plan: LoadPlan):
    samples = []
    began = time.monotonic()
    stats = run_blocking(lambda: run_load(plan, samples.append))
    return stats, samples, time.monotonic() - began


def test_an_absurd_rate_stops_at_the_deadline_and_counts_what_it_dropped(slow_target):
    plan = LoadPlan(url=slow_target.url, rate=1e9, max_time=1.0, timeout=2.0, max_in_flight=4,
                    max_requests=10**12)
    stats, samples, took = _run(plan)
    assert took < plan.max_time + plan.timeout + 3, took  # before the fix it ran for hours
    assert stats.stopped_by == "max_time"
    assert stats.dropped > 0 and stats.sent + stats.dropped == 1_000_000_000
    # The requests in flight at the deadline finished and were kept.
    assert stats.sent == stats.completed == len(samples) > 0
    health = stats.health()
    assert not health["valid"] and health["dropped"] == stats.dropped
    assert any("due by the deadline were never sent" in p for p in health["problems"]), health


def test_a_rate_the_generator_keeps_drops_nothing(slow_target):
    plan = LoadPlan(url=slow_target.url, rate=100, max_time=1.0, timeout=2.0)
    stats, samples, _ = _run(plan)
    assert stats.dropped == 0 and stats.sent == len(samples) == 100


def test_workers_stop_at_the_deadline_and_add_up_their_drops(slow_target):
    plan = LoadPlan(url=slow_target.url, rate=1e9, max_time=1.0, timeout=2.0, max_in_flight=4,
                    max_requests=10**12)
    began = time.monotonic()
    merged = run_workers(plan, 2)
    # Spawning two workers (each imports the engine) comes on top of the run itself.
    assert time.monotonic() - began < plan.max_time + plan.timeout + 15
    stats = merged.stats
    assert [w.dropped > 0 for w in merged.per_worker] == [True, True]
    assert stats.dropped == sum(w.dropped for w in merged.per_worker)
    assert stats.sent + stats.dropped == 1_000_000_000
    assert not stats.health()["valid"]


def test_cli_run_at_an_absurd_rate_finishes_and_reports_the_drops(slow_target, tmp_path):
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    began = time.monotonic()
    proc = subprocess.run(
        # The most --rate accepts (MAX_RATE, 100,000/s; above it is refused, tests/unit/test_bounded_loops.py):
        # far more than 256 connections to a 50 ms target can carry.
        [sys.executable, "-m", "loadgen.cli", "run", "--target", slow_target.url, "--rate", "100000",
         "--duration", "2s", "--timeout", "2s", "--out", str(tmp_path / "reports"), "--run-id", "absurd",
         "--no-plots", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    took = time.monotonic() - began
    assert proc.returncode == 0, proc.stderr
    assert took < 2 + 2 + 15, took  # interpreter start-up and the probe come on top
    (stage,) = json.loads(proc.stdout)["stages"]
    gen = stage["generator"]
    assert gen["dropped"] > 0 and not gen["valid"]
    assert stage["requests"]["dropped"] == gen["dropped"]
    assert stage["stopped_by"] == "max_time" and stage["requests"]["sent"] > 0
    # Due: the whole schedule, 2 s at 100,000/s.
    assert stage["requests"]["sent"] + gen["dropped"] == 200_000
    summary = json.loads((tmp_path / "reports" / "absurd" / "target" / "summary.json").read_text())
    assert summary["generator"]["dropped"] == gen["dropped"]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_stops_the_recording_not_the_run(slow_target, tmp_path, workers):
    # /dev/full fails every write with ENOSPC, as a full disk does (issue 13): the run goes on,
    # its report is written, and the summary says the recording stopped.
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    record = "/dev/full"  # with workers, their parts are merged into it at the end
    proc = subprocess.run(
        [sys.executable, "-m", "loadgen.cli", "run", "--target", slow_target.url, "--rate", "100", "--duration", "2s",
         "--workers", str(workers), "--record", record, "--out", str(tmp_path / "reports"), "--run-id", "full",
         "--no-plots", "--json"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Task exception" not in proc.stderr
    (stage,) = json.loads(proc.stdout)["stages"]
    assert stage["requests"]["sent"] > 0
    assert stage["recording_failed"] and "No space left on device" in stage["recording_failed"][0]
