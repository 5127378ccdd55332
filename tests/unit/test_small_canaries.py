"""The judge on real canaries: bands that fit the weight, a dead canary, a split that moves mid-run.

Recorded streams go through `loadgen canary --replay` (the same path as a live run's looks);
the rest feed the judge directly.
"""

import json

import numpy as np
import pytest

from loadgen.stats import JudgeConfig, SequentialJudge, SpecError, SplitSpec, Tolerance, VerdictState
from loadgen.stats.bands import band_of, half_widths
from loadgen.stats.figures import HELP_SCENARIOS, published
from tests.unit.cli_in_process import loadgen_in_process
from tests.unit.test_canary_cli import UNREACHABLE, run


def _record(path, shares_by_segment, seed):
    """A recording whose split is shares_by_segment[i][1] for shares_by_segment[i][0] responses, at 500/s."""
    rng = np.random.default_rng(seed)
    names = {"1": "v1", "2": "v2", "3": "v3"}
    i = 0
    with path.open("w") as fh:
        for n, shares in shares_by_segment:
            apps = rng.choice([str(k + 1) for k in range(len(shares))], size=n, p=shares)
            for app in apps:
                fh.write(json.dumps({"t": i / 500, "status": 200, "app_id": app, "latency_ms": 2.0, "error": None,
                                     "subset": names[app]}) + "\n")
                i += 1


def _replay(tmp_path, rec, *args):
    # In-process: the replay path is what is tested, not the CLI's start (test_canary_cli has that).
    proc = loadgen_in_process("canary", "--replay", str(rec), *args, "--json", "-", tmp_path=tmp_path)
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


# -- bands ---------------------------------------------------------------------------------
def test_bands_follow_the_weight():
    two = Tolerance.parse("2")
    assert half_widths((0.85, 0.15), two) == (0.02, 0.02)
    assert half_widths((0.99, 0.01), two) == pytest.approx((0.005, 0.005))
    assert half_widths((0.98, 0.02), two) == pytest.approx((0.01, 0.01))
    assert half_widths((0.7, 0.2, 0.1), two) == pytest.approx((0.02, 0.02, 0.02))
    assert half_widths((0.9, 0.07, 0.03), two) == pytest.approx((0.02, 0.02, 0.015))
    rel = Tolerance.parse("20%")
    assert rel.relative and rel.value == pytest.approx(0.2)
    assert half_widths((0.7, 0.2, 0.1), rel) == pytest.approx((0.14, 0.04, 0.02))
    assert half_widths((0.85, 0.15), rel) == pytest.approx((0.03, 0.03))  # two subsets: the narrower band
    # A subset expected above 0 never has a band that reaches 0; one expected at 0 must get nothing.
    for weights in ((0.99, 0.01), (0.999, 0.001), (0.5, 0.3, 0.2)):
        for tol in (two, rel, Tolerance.parse("49")):
            for w, h in zip(weights, half_widths(weights, tol), strict=True):
                assert band_of(w, h)[0] > 0
    assert half_widths((1.0, 0.0), two) == (0.02, 0.02)


@pytest.mark.parametrize("text", ["0", "50", "-1", "0%", "60%", "abc", "nan"])
def test_bad_tolerances(text):
    with pytest.raises(SpecError):
        Tolerance.parse(text)


def test_every_output_shows_each_band(tmp_path):
    rec = tmp_path / "ok.jsonl"
    _record(rec, [(20_000, [0.99, 0.01])], seed=3)
    out_xml = tmp_path / "j.xml"
    proc = run("--replay", str(rec), "--expect", "99/1", "--junit", str(out_xml), tmp_path=tmp_path)
    assert "0.5-1.5 %" in proc.stdout  # the terminal table
    assert "band 0.5-1.5 %" in out_xml.read_text()
    _code, result = _replay(tmp_path, rec, "--expect", "99/1")
    assert result["bands"] == {"v1": pytest.approx([0.985, 0.995]), "v2": pytest.approx([0.005, 0.015])}
    assert [s["band"] for s in result["judge"]["subsets"]] == [pytest.approx([0.985, 0.995]),
                                                                pytest.approx([0.005, 0.015])]
    _code, result = _replay(tmp_path, rec, "--expect", "99/1", "--tolerance", "30%")
    assert result["judge"]["tolerance"] == {"value": pytest.approx(0.3), "relative": True}
    assert result["bands"]["v2"] == pytest.approx([0.007, 0.013])


# -- small and dead canaries -----------------------------------------------------------------
def test_dead_one_percent_canary_fails_naming_v2(tmp_path):
    rec = tmp_path / "dead.jsonl"
    _record(rec, [(6_000, [1.0, 0.0])], seed=1)
    code, result = _replay(tmp_path, rec, "--expect", "99/1")
    assert code == 1 and result["verdict"] == "FAIL"
    assert result["reason"].startswith("v2 gets no response at all: it has answered 0 of")
    assert "expected 1 %" in result["reason"] and "band 0.5-1.5 %" in result["reason"]
    assert result["requests"] <= 3_000  # it stops as soon as the FAIL is proved
    code, result = _replay(tmp_path, rec, "--expect", "98/2")
    assert code == 1 and "v2 gets no response at all" in result["reason"] and result["requests"] <= 1_500


def test_one_percent_canary_at_one_percent_passes(tmp_path):
    rec = tmp_path / "ok.jsonl"
    _record(rec, [(20_000, [0.99, 0.01])], seed=2)
    code, result = _replay(tmp_path, rec, "--expect", "99/1")
    assert code == 0 and result["verdict"] == "PASS", result["reason"]
    assert "v2 0.5-1.5 %" in result["reason"]


def test_two_percent_canary_at_one_percent_does_not_pass_and_at_half_a_percent_fails(tmp_path):
    # 98/2 has the band 1-3 % for v2, so a canary at exactly 1 % sits on its edge: no test can
    # PASS it (a share outside the band would be indistinguishable), and it must not.
    rec = tmp_path / "edge.jsonl"
    _record(rec, [(20_000, [0.99, 0.01])], seed=4)
    code, result = _replay(tmp_path, rec, "--expect", "98/2")
    assert result["verdict"] != "PASS" and code != 0
    rec = tmp_path / "half.jsonl"
    _record(rec, [(20_000, [0.995, 0.005])], seed=4)
    code, result = _replay(tmp_path, rec, "--expect", "98/2")
    assert code == 1 and result["verdict"] == "FAIL" and "v2 gets" in result["reason"]


def test_old_fixed_band_cases_no_longer_pass_a_dead_canary():
    for text in ("99/1", "98/2", "95/5", "90/10"):
        judge = SequentialJudge(SplitSpec.parse(text))
        for n in range(50, 6_001, 50):
            v = judge.update({"v1": n, "v2": 0})
            assert v.state is not VerdictState.PASS
            if v.decided:
                break
        assert v.state is VerdictState.FAIL and "v2 gets no response at all" in v.reason


# -- a split that moves mid-run --------------------------------------------------------------
def test_mid_run_change_fails_with_the_change_reason(tmp_path):
    rec = tmp_path / "moved.jsonl"
    _record(rec, [(1_000, [0.85, 0.15]), (4_000, [0.5, 0.5])], seed=5)
    code, result = _replay(tmp_path, rec, "--expect", "85/15")
    assert code == 1 and result["verdict"] == "FAIL"
    assert result["reason"].startswith("the split changed during the run at t ≈ 2.0 s: before 8")
    change = result["judge"]["change"]
    assert change["detected"] and change["at_n"] == 1_000 and change["at_t"] == pytest.approx(2.0, abs=0.01)
    assert change["before"]["n"] == 1_000 and abs(change["before"]["shares"]["v1"] - 0.85) < 0.04
    assert abs(change["after"]["shares"]["v1"] - 0.5) < 0.12 and change["after"]["n"] < 500
    assert change["log_evidence"] >= change["log_threshold"]


def test_alternating_split_is_a_fail(tmp_path):
    rec = tmp_path / "flap.jsonl"
    _record(rec, [(500, [0.85, 0.15]), (500, [0.95, 0.05])] * 10, seed=6)
    code, result = _replay(tmp_path, rec, "--expect", "85/15")
    assert code == 1 and result["verdict"] == "FAIL"


@pytest.mark.parametrize("text", ["85/15", "99/1", "50/50", "70/20/10", "95/5"])
def test_constant_split_never_trips_the_change_test(text):
    spec = SplitSpec.parse(text)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        judge = SequentialJudge(spec, JudgeConfig(alpha=0.2))  # a generous alpha: any slack would show
        counts = np.zeros(spec.k, dtype=int)
        for look in range(200):  # 10,000 responses, a look every 50
            counts += rng.multinomial(50, spec.weights)
            v = judge.update(dict(zip(spec.names, counts.tolist(), strict=True)), t=look * 0.1)
            assert not v.change.detected
            assert v.change.log_evidence < v.change.log_threshold - 2
            assert "unsteady" not in v.reason


# -- --plan, --help and the budget ------------------------------------------------------------
def test_plan_follows_the_bands(tmp_path):
    proc = run("--expect", "99/1", "--plan", "--json", "-", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["bands"]["v2"] == pytest.approx([0.005, 0.015])
    assert 4_000 < report["fixed_n"]["80%"] < report["fixed_n"]["90%"] < report["fixed_n"]["95%"]
    cells = report["sequential"]["cells"]
    assert cells["expected split"]["pass_rate"] > 0.95
    assert cells["v2 gets nothing"]["fail_rate"] == 1.0 and cells["v2 gets nothing"]["p95_n"] < 3_000
    proc = run("--expect", "99/1", "--plan", tmp_path=tmp_path)
    assert "v2 0.5-1.5 %" in proc.stdout and "v2 gets nothing" in proc.stdout


def test_a_budget_that_cannot_reach_a_verdict_is_said_before_sending(tmp_path):
    proc = run("--expect", "99.9/0.1", "--target", UNREACHABLE, "--map", "1=v1,2=v2", "--max-time", "5s", "-q",
               tmp_path=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("warning: bands v1 99.85-99.95 %, v2 0.05-0.15 %") and "expect INCONCLUSIVE" in lines[0]
    assert proc.returncode == 4  # and only then is the target found unreachable


def test_help_prints_the_bench_figures(tmp_path):
    figures = published()
    assert figures is not None, "stats/simulated.json is missing or stale: run bench/judge_sim.py --write-figures"
    assert tuple(figures["scenarios"]) == HELP_SCENARIOS and figures["runs"] >= 10_000
    proc = run("--help", tmp_path=tmp_path)
    row = figures["scenarios"]["99/1"]
    line = next(x.split() for x in proc.stdout.splitlines() if x.strip().startswith("99/1 "))
    assert line == ["99/1", "98.5-99.5/0.5-1.5", f"{row['fixed_n_90']:,}", f"{row['pass_mean_n']:,}",
                    f"({row['pass_p95_n']:,})", f"{row['starved_mean_n']:,}", f"({row['starved_p95_n']:,})"]
