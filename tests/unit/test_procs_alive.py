"""procs.alive: a recorded process is the same one when its start matches: its start in clock
ticks since boot (which no wall-clock step moves), or, for a record without ticks (an older
loadgen's state.json), psutil's create_time within the slack it needs (it moves with btime)."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from loadgen.mesh import procs
from loadgen.mesh.procs import ProcRecord
from loadgen.mesh.state import Borrower


def _record(proc: subprocess.Popen, shift: float, ticks: int | None = None) -> ProcRecord:
    started = psutil.Process(proc.pid).create_time()
    return ProcRecord(name="x", pid=proc.pid, create_time=started + shift, argv=[], log="x", start_ticks=ticks)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_record_without_ticks_is_alive_within_the_slack_and_not_when_recycled(sleeper):
    assert procs.alive(_record(sleeper, 0.0))
    assert procs.alive(_record(sleeper, 1.0)) and procs.alive(_record(sleeper, -1.0))  # btime jitter
    assert not procs.alive(_record(sleeper, -5.0))  # same pid, a process started 5 s apart: not ours


def test_a_process_known_by_its_ticks_stays_alive_when_the_wall_clock_is_stepped(sleeper, tmp_path):
    # A VM resumed or an NTP step moves btime, and every create_time with it: the ticks do not move.
    ticks = procs.start_ticks(sleeper.pid)
    assert ticks is not None
    assert procs.alive(_record(sleeper, 10.0, ticks)) and procs.alive(_record(sleeper, -10.0, ticks))
    assert not procs.alive(_record(sleeper, 0.0, ticks + 1))  # another start: a recycled pid
    spawned = procs.spawn("x", [sys.executable, "-c", "import time; time.sleep(30)"], log=tmp_path / "x.log")
    try:
        assert spawned.start_ticks == procs.start_ticks(spawned.pid) and procs.alive(spawned)
    finally:
        procs.stop(spawned)
    assert not procs.alive(spawned)


def test_a_borrower_known_by_its_ticks_survives_a_clock_step_and_is_the_same_one(sleeper):
    ticks = procs.start_ticks(sleeper.pid)
    created = psutil.Process(sleeper.pid).create_time()
    stepped = Borrower(sleeper.pid, created + 10.0, "splitter", start_ticks=ticks)
    assert stepped.alive()
    assert stepped.same(Borrower(sleeper.pid, created, "splitter", start_ticks=ticks))
    assert not stepped.same(Borrower(sleeper.pid, created + 10.0, "splitter", start_ticks=ticks + 1))
    assert Borrower.from_json(Borrower.me("splitter").__dict__).start_ticks == procs.start_ticks(Borrower.me("s").pid)


def test_an_exited_process_is_not_alive():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = procs.start_ticks(proc.pid)
    proc.wait()
    assert not procs.alive(ProcRecord(name="x", pid=proc.pid, create_time=0.0, argv=[], log="x"))
    assert not procs.alive(ProcRecord(name="x", pid=proc.pid, create_time=0.0, argv=[], log="x", start_ticks=ticks))



def test_how_a_started_process_ended_is_said(tmp_path):
    # `up` says why a sidecar it started is gone ("exited (killed by SIGKILL)"): an empty log alone
    # did not tell a crash from a kill.
    import os
    import signal
    import time

    quits = procs.spawn("x", [sys.executable, "-c", "raise SystemExit(3)"], log=tmp_path / "a.log")
    killed = procs.spawn("y", [sys.executable, "-c", "import time; time.sleep(30)"], log=tmp_path / "b.log")
    assert procs.how_it_ended(killed) == "" and procs.alive(killed)
    os.kill(killed.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (procs.alive(quits) or procs.alive(killed)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (procs.how_it_ended(quits), procs.how_it_ended(killed)) == ("exit code 3", "killed by SIGKILL")
