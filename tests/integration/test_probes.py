"""Time-to-apply probes on the real mesh: one deny/allow cycle; a splitter change and its restore."""

from __future__ import annotations

import json

import httpx

CONSUL = "http://127.0.0.1:8500"


def test_intentions_one_cycle(loadgen):
    loadgen("up", "--stage", "basic")  # kept up by the test, so Consul can be asked afterwards
    proc = loadgen("intentions", "--repeat", "1", "--json", "-", timeout=240)
    report = json.loads(proc.stdout)
    assert report["violations"] == 0
    deny = report["protocols"]["tcp"]["repeats"][0]["deny"]
    allow = report["protocols"]["tcp"]["repeats"][0]["allow"]
    for phase in (deny, allow):
        assert 0 < phase["all_ms"]["new"] < 30_000, phase
        assert 0 < phase["first_ms"]["new"] <= phase["all_ms"]["new"]
        assert all(0 < v < 30_000 for v in phase["envoy_ms"].values()), phase
        assert phase["requests"]["new"] > 100
    assert deny["violations"] == 0
    # The deny entry is gone again afterwards.
    assert httpx.get(f"{CONSUL}/v1/config/service-intentions", timeout=5).json() in ([], None)


def test_splitter_change_is_detected_and_restored(loadgen):
    loadgen("up", "--stage", "splitter")
    proc = loadgen("propagation", "--splitter", "50/50", "--json", "-", timeout=240)
    changes = json.loads(proc.stdout)["changes"]
    assert [c["to"] for c in changes] == ["v1=50,v2=50", "v1=85,v2=15"]
    for c in changes:
        assert 0 < c["envoy_ms"] < 30_000, c
        assert c["change_ms"] is not None and c["detected_ms"] is not None, c
        assert c["detected_ms"] >= c["change_ms"] - 50, c
    assert abs(changes[0]["share_after"]["v1"] - 0.5) < 0.1
    entry = httpx.get(f"{CONSUL}/v1/config/service-splitter/service-b", timeout=5).json()
    assert {s["ServiceSubset"]: s["Weight"] for s in entry["Splits"]} == {"v1": 85, "v2": 15}


def test_probes_against_a_given_deployment(loadgen):
    # Any mesh: the local one, addressed explicitly as a remote one would be.
    loadgen("up", "--stage", "basic")
    proc = loadgen("intentions", "--repeat", "1", "--target", "http://127.0.0.1:9000/hello_b", "--consul",
                   "127.0.0.1:8500", "--envoy-admin", "b1=127.0.0.1:19001", "--envoy-admin", "b2=127.0.0.1:19002",
                   "--json", "-", timeout=240)
    report = json.loads(proc.stdout)
    deny = report["protocols"]["target"]["repeats"][0]["deny"]
    assert set(deny["envoy_ms"]) == {"b1", "b2"} and report["violations"] == 0
    assert 0 < deny["all_ms"]["new"] < 30_000
    bad = loadgen("intentions", "--target", "http://127.0.0.1:9000/hello_b", check=False)
    assert bad.returncode == 2 and "--target needs --consul" in bad.stderr
