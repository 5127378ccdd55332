"""procs.alive: a recorded process is the same one when its start time matches within the
slack psutil's create_time needs (it can move by a whole second between reads)."""

from __future__ import annotations

import subprocess
import sys

import psutil

from loadgen.mesh import procs
from loadgen.mesh.procs import ProcRecord


def _record(proc: subprocess.Popen, shift: float) -> ProcRecord:
    started = psutil.Process(proc.pid).create_time()
    return ProcRecord(name="x", pid=proc.pid, create_time=started + shift, argv=[], log="x")


def test_a_live_process_is_alive_when_its_start_time_moved_by_a_second_and_not_when_recycled():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert procs.alive(_record(proc, 0.0))
        assert procs.alive(_record(proc, 1.0)) and procs.alive(_record(proc, -1.0))  # btime jitter
        assert not procs.alive(_record(proc, -5.0))  # same pid, a process started 5 s apart: not ours
    finally:
        proc.kill()
        proc.wait()
    assert not procs.alive(_record_after_exit(proc.pid))


def _record_after_exit(pid: int) -> ProcRecord:
    return ProcRecord(name="x", pid=pid, create_time=0.0, argv=[], log="x")
