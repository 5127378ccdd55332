"""The canary on the process mesh when the machine, not the mesh, is the problem (issue 13):
a generator that cannot keep the asked rate says so, and a recording that hits a full disk
stops while the run goes on and is judged."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def splitter(splitter_mesh):
    """The session's shared process mesh at stage splitter (tests/integration/conftest.py)."""
    return splitter_mesh


def test_a_generator_that_falls_behind_is_flagged(loadgen, splitter):
    # One Python process cannot send 20,000 requests a second through the sidecars: most start
    # late, and the result must say the latency figures are not valid (as `loadgen run` does).
    proc = loadgen("canary", "--expect", "85/15", "--rate", "20000", "--max-time", "3s", "--tolerance", "0.1",
                   "--max-errors", "99", "-q", "--json", "-", check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode in (0, 1, 3), proc.stderr
    assert result["generator"]["valid"] is False and result["generator"]["problems"]
    assert any("could not keep the asked rate" in w for w in result["warnings"])
    human = loadgen("canary", "--expect", "85/15", "--rate", "20000", "--max-time", "2s", "--tolerance", "0.1",
                    "--max-errors", "99", check=False)
    # Who is named depends on who held the connections: the generator's full CPU, or a mesh that
    # cannot answer 20,000/s through 256 connections (RunStats.generator_health).
    assert "could not keep the asked rate" in " ".join(human.stdout.split())


def test_a_full_disk_stops_the_recording_not_the_run(loadgen, splitter, tmp_path):
    # /dev/full fails every write with ENOSPC, as a full disk does.
    proc = loadgen("canary", "--expect", "85/15", "--max-time", "5s", "--record", "/dev/full", "-q",
                   "--json", str(tmp_path / "c.json"), check=False)
    assert proc.returncode in (0, 3), proc.stderr
    assert "Traceback" not in proc.stderr and "Task exception" not in proc.stderr
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["verdict"] in ("PASS", "INCONCLUSIVE") and result["requests"] > 0
    assert any("recording to /dev/full stopped after" in w for w in result["warnings"]), result["warnings"]
