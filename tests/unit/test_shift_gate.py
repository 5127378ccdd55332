"""The shift's latency/error gate and its timeline outputs (pure)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from loadgen.shift.gate import MIN_FOR_P99, LatencyGate, SubsetHealth
from loadgen.shift.timeline import PhaseRecord, ShiftReport

STEP = {"v1": 75.0, "v2": 25.0}


def test_an_empty_gate_holds_whatever_happened():
    gate = LatencyGate()
    assert not gate.active
    assert gate.check({"v2": SubsetHealth(500, 900.0, errors=400, requests=500)}, STEP, "v2").held


def test_p99_over_the_limit_names_the_subset_and_too_few_answers_are_a_note():
    gate = LatencyGate(max_p99_ms=50)
    result = gate.check({"v1": SubsetHealth(1000, 20.0), "v2": SubsetHealth(300, 80.0)}, STEP, "v2")
    assert result.problems == ["v2 p99 80.0 ms over --max-p99 50 ms (300 answers)"]
    few = gate.check({"v1": SubsetHealth(1000, 20.0), "v2": SubsetHealth(MIN_FOR_P99 - 1, 500.0)}, STEP, "v2")
    assert few.held and "too few to judge a p99" in few.notes[0]


def test_errors_are_judged_per_subset_from_the_sidecar_counts_and_overall_without_them():
    gate = LatencyGate(max_errors=0.01)
    per_subset = gate.check({"v1": SubsetHealth(900, 5.0, errors=0, requests=900),
                             "v2": SubsetHealth(150, 5.0, errors=150, requests=300)}, STEP, "v2")
    assert per_subset.problems == ["v2 answered 150 of 300 requests with a 5xx (50.00%), over --max-errors 1.00%"]
    overall = gate.check({"v1": SubsetHealth(900, 5.0), "v2": SubsetHealth(150, 5.0)}, STEP, "v2",
                         failed=30, requests=1000)
    assert len(overall.problems) == 1 and "per-subset counts were not read" in overall.problems[0]
    assert gate.check({"v1": SubsetHealth(900, 5.0)}, STEP, "v2", failed=5, requests=1000).held  # 0.5 %


def test_p99_ratio_compares_the_shifted_subset_with_the_worst_other():
    gate = LatencyGate(max_p99_ratio=1.2)
    slow = gate.check({"v1": SubsetHealth(800, 10.0), "v2": SubsetHealth(200, 30.0)}, STEP, "v2")
    assert slow.problems == ["v2 p99 30.0 ms is 3.00 x v1's 10.0 ms, over --max-p99-ratio 1.2"]
    assert gate.check({"v1": SubsetHealth(800, 10.0), "v2": SubsetHealth(200, 11.0)}, STEP, "v2").held
    # At 0/100 nothing else carries traffic: nothing to compare with, said as a note.
    alone = gate.check({"v2": SubsetHealth(1000, 30.0)}, {"v1": 0.0, "v2": 100.0}, "v2")
    assert alone.held and "no other subset" in alone.notes[0]


def _phase(name: str, passed: bool, failure: str | None = None) -> PhaseRecord:
    p = PhaseRecord(name, dict(STEP), started=1.0, ended=3.5, verdict="PASS" if passed else "FAIL",
                    reason="why", passed=passed, failure=failure)
    return p


def test_the_report_exit_codes_and_junit_name_the_step_that_broke():
    ok = ShiftReport("service-b", "v2", {"v1": 85, "v2": 15}, None, [STEP], phases=[_phase("step 1", True)])
    assert int(ok.exit_code) == 0 and ok.outcome == "shifted" and ok.to_json()["exit_code"] == 0
    bad = ShiftReport("service-b", "v2", {"v1": 85, "v2": 15}, None, [STEP],
                      phases=[_phase("step 1", False, "gate: v2 p99"), _phase("rollback", True)],
                      failure="step 1 (75/25): gate: v2 p99", rolled_back=True)
    assert int(bad.exit_code) == 1 and bad.outcome == "failed"
    suite = ET.fromstring(bad.junit())
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["step 1 75/25", "rollback 75/25"]
    assert cases[0].find("failure").get("message") == "gate: v2 p99" and cases[1].find("failure") is None
    assert suite.get("failures") == "1" and cases[0].get("time") == "2.500"
    interrupted = ShiftReport("service-b", "v2", {}, None, [], failure="interrupted", signum=2)
    assert int(interrupted.exit_code) == 130 and interrupted.outcome == "interrupted"


def test_traffic_followed_is_the_first_look_that_holds_the_new_share_and_not_the_old():
    from loadgen.shift.timeline import Look, traffic_followed

    looks = [Look(10.2, 0.20, 0.10, 0.30), Look(10.4, 0.24, 0.17, 0.31), Look(10.6, 0.25, 0.21, 0.29)]
    # Written at 10.0, 15 % -> 25 %: the look at 10.2 still holds 15 %; the one at 10.4 (17-31 %) is the first not to.
    assert traffic_followed(looks, 0.15, 0.25, 10.0) == 400.0
    assert traffic_followed(looks, 0.25, 0.25, 10.0) is None  # no change to see
    assert traffic_followed(looks, 0.24, 0.25, 10.0) is None  # too close to tell apart in these looks
    assert traffic_followed(looks, 0.15, 0.25, None) is None
