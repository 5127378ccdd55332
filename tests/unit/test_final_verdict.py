"""One final verdict for every canary path (canary/final.py), and one JSON key set whoever wrote
the result (a live run, a replay, Locust)."""

from __future__ import annotations

import signal

from loadgen.canary.check import SplitCheck
from loadgen.canary.consul_view import chain_request
from loadgen.canary.expectation import Expectation
from loadgen.canary.final import final_verdict
from loadgen.canary.result import GENERATOR_KEYS, WARMUP_KEYS
from loadgen.canary.three_way import ThreeWay
from loadgen.load.engine import RunStats
from loadgen.load.sample import Sample
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import JudgeConfig, SplitSpec, VerdictState
from tests.unit.test_three_way import FakeAdmin, verdict_for, view_with_trust

SPEC = SplitSpec(("v1", "v2"), (0.85, 0.15))


def test_a_stale_sidecar_turns_a_passing_traffic_verdict_into_fail_with_its_columns():
    three = ThreeWay(view_with_trust("nested"), FakeAdmin((8500, 1500), version="old-hash"),  # type: ignore[arg-type]
                     chain_request({}))
    three.before()
    three.after()
    traffic = verdict_for({"v1": 8500, "v2": 1500}, SPEC)
    assert traffic.state is VerdictState.PASS
    final = final_verdict(traffic, three, {"v1": 8500, "v2": 1500}, 0.01)
    assert final.verdict.state is VerdictState.FAIL
    assert final.verdict.reason.startswith("stale proxy") and "the traffic alone: PASS" in final.verdict.reason
    assert final.three_way is not None and final.three_way["stale"] and "old-hash" in final.three_way["stale"]


def test_an_in_step_sidecar_keeps_the_traffic_verdict():
    admin = FakeAdmin((8500, 1500))
    three = ThreeWay(view_with_trust(), admin, chain_request({}))  # type: ignore[arg-type]
    three.before()
    admin.counts = {"v1": 850, "v2": 150}
    three.after()
    traffic = verdict_for({"v1": 850, "v2": 150}, SPEC)
    final = final_verdict(traffic, three, {"v1": 850, "v2": 150}, 0.01)
    assert final.verdict is traffic and final.notes == [] and final.three_way is not None


def test_an_undecided_interrupted_run_says_so_and_a_decided_one_keeps_its_reason():
    undecided = verdict_for({"v1": 9, "v2": 1}, SPEC)
    assert undecided.state is VerdictState.INCONCLUSIVE
    final = final_verdict(undecided, None, None, 0.01, signal.SIGTERM)
    assert final.verdict.reason.startswith("terminated (SIGTERM): ") and final.three_way is None
    decided = verdict_for({"v1": 8500, "v2": 1500}, SPEC)
    assert final_verdict(decided, None, None, 0.01, signal.SIGINT).verdict is decided


def _check(warmup: float) -> SplitCheck:
    mapping = SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "test")
    check = SplitCheck(Expectation(SPEC, mapping), JudgeConfig(), warmup=warmup)
    for i in range(100):
        check.add(Sample(t=i / 10, status=200, app_id="1" if i % 7 else "2", latency_ms=1.0,
                         error=None))
    return check


def _keys(doc: dict) -> dict:
    """Every key, and the keys of the objects whose keys are fixed (the others are keyed by data)."""
    return {k: sorted(doc[k]) if k in ("judge", "plan", "mapping", "generator", "warmup") else None for k in doc}


def test_live_replay_and_locust_results_have_the_same_keys_with_null_where_nothing_applies():
    live_check = _check(warmup=1.0)
    stats = RunStats(sent=100, elapsed=10.0)
    live = live_check.result(live_check.look(10.0, final=True), target="t", requests=100, duration_s=10.0,
                             stopped_by="max_time", generator=stats.health(False)).to_json()
    locust_check = _check(warmup=0.0)
    locust = locust_check.result(locust_check.look(10.0, final=True), tally=locust_check.tally, target="t",
                                 requests=100, duration_s=10.0, stopped_by="end of test", source="locust",
                                 workers={}).to_json()
    assert _keys(live) == _keys(locust)
    assert list(live["generator"])[:len(GENERATOR_KEYS)] == list(GENERATOR_KEYS)
    assert list(live["warmup"]) == list(WARMUP_KEYS)
    assert live["generator"]["valid"] is True and live["generator"]["workers"] is None
    assert live["warmup"]["seconds"] == 1.0 and live["warmup"]["requests"] == 10
    assert all(v is None for v in locust["generator"].values())
    assert all(v is None for v in locust["warmup"].values())
