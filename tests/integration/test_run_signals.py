"""`loadgen run` stopped by a signal, against a local HTTP server (no mesh): SIGTERM behaves
like Ctrl-C -- stop sending, write what was collected, reap every worker process -- and
exits 143 (130 for Ctrl-C). A parent killed outright (SIGKILL) must not leave its workers
sending load."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.integration.local_target import local_target


@pytest.fixture(scope="module")
def target():
    with local_target(delay_ms=5) as t:
        yield t


def _start_run(target, tmp_path, run_id: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen.cli", "run", "--target", target.url, "--rate", "200", "--duration", "60s",
         "--out", str(tmp_path / "reports"), "--run-id", run_id, "--no-plots", "-q", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_load(proc: subprocess.Popen[str], target, requests: int = 200) -> None:
    """Until the server has seen ``requests`` more requests (about a second at 200/s)."""
    first = target.count()
    deadline = time.monotonic() + 60
    while target.count() - first < requests:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.1)


def _assert_no_more_load(target) -> None:
    before = target.count()
    time.sleep(1.0)
    assert target.count() == before, "something is still sending load"


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("signum", "code", "word"),
                         [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_stop_signal_writes_the_report_and_reaps_every_worker(target, tmp_path, workers, signum, code, word):
    proc = _start_run(target, tmp_path, "sig", "--workers", str(workers))
    # 201: the server also counts the one reachability request `run` sends before the run.
    _wait_for_load(proc, target, requests=201)
    children = psutil.Process(proc.pid).children(recursive=True)
    if workers > 1:
        assert len(children) >= workers
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert word in stderr and "Traceback" not in stderr
    _, alive = psutil.wait_procs(children, timeout=5)
    assert alive == [], f"still running after loadgen exited: {alive}"
    _assert_no_more_load(target)
    summary = json.loads((tmp_path / "reports" / "sig" / "target" / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["stopped_by"] == "interrupted"
    assert summary["interrupted_by"] == signal.Signals(signum).name
    assert summary["requests"]["sent"] >= 200 and summary["latency_ms"]["corrected"]["count"] > 0
    assert summary["duration_s"] < 30
    assert summary["generator"]["workers"] == workers


def test_workers_stop_when_their_parent_is_killed(target, tmp_path):
    proc = _start_run(target, tmp_path, "kill", "--workers", "2")
    _wait_for_load(proc, target)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2
    proc.kill()  # no chance to tell anyone
    proc.communicate(timeout=30)
    _, alive = psutil.wait_procs(children, timeout=10)
    for p in alive:  # do not leave them behind whatever the assertion says
        p.kill()
    assert alive == [], f"workers outlived their killed parent: {alive}"
    _assert_no_more_load(target)
