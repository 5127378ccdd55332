"""`loadgen shift` on the docker and nomad runtimes (stage splitter): the same clean shift as on
the process runtime (tests/integration/test_shift.py has the failure cases), and the splitter
put back afterwards."""

from __future__ import annotations

import json

import httpx
import pytest

CONSUL = "http://127.0.0.1:8500"
SPLITTER = f"{CONSUL}/v1/config/service-splitter/service-b"
START = {"Kind": "service-splitter", "Name": "service-b",
         "Splits": [{"Weight": 85, "ServiceSubset": "v1"}, {"Weight": 15, "ServiceSubset": "v2"}]}


pytestmark = pytest.mark.parametrize("runtime", ["docker", "nomad"], indirect=True, scope="module")


def test_a_clean_shift_on_this_runtime(loadgen, runtime):
    loadgen("up", "--stage", "splitter", "-q")
    try:
        proc = loadgen("shift", "--subset", "v2", "--steps", "50,100", "--tolerance", "5", "--rate", "400",
                       "--verify-time", "40s", "--json", "-", timeout=300, check=False)
        assert proc.returncode == 0, (runtime, proc.stderr)
        report = json.loads(proc.stdout)
        assert [p["name"] for p in report["phases"]] == ["start", "step 1", "step 2"]
        assert all(p["passed"] and p["envoy_ms"] is not None for p in report["phases"][1:]), report["phases"]
        entry = httpx.get(SPLITTER, timeout=5).json()
        assert [(s["ServiceSubset"], s["Weight"]) for s in entry["Splits"]] == [("v1", 0), ("v2", 100)]
    finally:
        httpx.put(f"{CONSUL}/v1/config", json=START, timeout=5)
