"""A split that moves back and forth (issue 23 §2): 85/15 and 95/5 in turn average 90/10, and the
judge must FAIL it naming the movement, while a constant 90/10 still PASSes.

Replays go through `loadgen canary --replay` in-process; the rest feed the judge or the
e-process (loadgen.stats.flapping) directly. Every simulation is seeded: no timed assertion.
"""

import json

import numpy as np
import pytest

from loadgen.stats import FlapResult, JudgeConfig, SequentialJudge, SplitSpec, VerdictState, flapping
from loadgen.stats.decide import flap_sentence
from loadgen.stats.simulate import FAIL, PASS, Rule, apply_rule
from tests.unit.cli_in_process import loadgen_in_process

SPEC = SplitSpec.parse("90/10")


def _alternating_shares(n: int, stretch: int, offset: int = 0) -> np.ndarray:
    """v1's share for each of n responses: 85 % for `stretch` responses, then 95 %, and so on."""
    position = np.arange(n) + offset
    return np.where((position // stretch) % 2 == 0, 0.85, 0.95)


def _record(path, v1_shares: np.ndarray, seed: int) -> None:
    """A recording at 500 requests/s whose response i is APP_ID 1 with probability v1_shares[i]."""
    rng = np.random.default_rng(seed)
    apps = np.where(rng.random(len(v1_shares)) < v1_shares, "1", "2")
    with path.open("w") as fh:
        for i, app in enumerate(apps):
            fh.write(json.dumps({"t": i / 500, "status": 200, "app_id": str(app), "latency_ms": 2.0,
                                 "error": None}) + "\n")


def _replay(tmp_path, rec):
    proc = loadgen_in_process("canary", "--expect", "90/10", "--replay", str(rec), "--map", "1=v1,2=v2",
                              "--json", "-", tmp_path=tmp_path)
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _counts_stream(v1_shares: np.ndarray, rng: np.random.Generator, per_look: int = 50):
    """Cumulative {v1, v2} counts after every look of per_look responses."""
    v1 = rng.random(len(v1_shares)) < v1_shares
    for end in range(per_look, len(v1_shares) + 1, per_look):
        yield {"v1": int(v1[:end].sum()), "v2": int(end - v1[:end].sum())}, end / 500


def test_an_alternating_recording_fails_naming_the_movement(tmp_path):
    rec = tmp_path / "flapping.jsonl"
    _record(rec, _alternating_shares(12_000, 500), seed=23)
    code, result = _replay(tmp_path, rec)
    judge = result["judge"]
    assert judge["state"] == "FAIL" and code == 1, judge["reason"]
    flap = judge["flapping"]
    # This seed is proved over three windows (85, 95, 85): two crossings, so back and forth.
    assert flap["crossings"] >= 2
    assert judge["reason"].startswith("the split moved back and forth during the run: over "), judge["reason"]
    assert "look for two writers fighting over the splitter" in judge["reason"]
    assert flap["detected"] and flap["log_evidence"] >= flap["log_threshold"]
    # The shares named are the windows' own: one 85-ish, one 95-ish, either side of the band.
    assert flap["low"]["v1"] < 0.88 and flap["high"]["v1"] > 0.92
    assert flap["window"] in flapping.WINDOWS and flap["windows"] >= 2
    assert f"windows of ~{flap['window']:,} responses" in judge["reason"]
    assert judge["change"] is not None  # the existing key stays beside the new one


def test_a_constant_split_recording_passes(tmp_path):
    rec = tmp_path / "steady.jsonl"
    _record(rec, np.full(12_000, 0.9), seed=23)
    code, result = _replay(tmp_path, rec)
    judge = result["judge"]
    assert judge["state"] == "PASS" and code == 0, judge["reason"]
    assert not judge["flapping"]["detected"] and judge["flapping"]["log_evidence"] < 0


@pytest.mark.parametrize("stretch, offset", [(500, 0), (500, 250), (1000, 600), (2000, 1700)])
def test_the_judge_alone_detects_alternating_counts(stretch, offset):
    rng = np.random.default_rng(stretch + offset)
    judge = SequentialJudge(SPEC)
    for counts, t in _counts_stream(_alternating_shares(12_000, stretch, offset), rng):
        verdict = judge.update(counts, t=t)
        if verdict.decided:
            break
    # A long first stretch at 85/15 may be proved outside the band first: a FAIL either way, and
    # never the PASS the judge gave before the flapping test.
    assert verdict.state is VerdictState.FAIL, verdict.reason
    assert verdict.flapping is not None
    if verdict.flapping.detected:
        assert "the split moved" in verdict.reason
        assert verdict.flapping.window_s is not None and verdict.flapping.window_s > 0
    else:
        assert stretch == 2000 and "v1 gets" in verdict.reason


def test_a_pass_waits_while_the_split_may_be_moving():
    """Flapping evidence short of proof holds a PASS: RUNNING with a reason that says why."""
    judge = SequentialJudge(SPEC)
    rng = np.random.default_rng(1)  # a seed where the intervals reach the band before the proof
    held = None
    for counts, t in _counts_stream(_alternating_shares(12_000, 1000, 500), rng):
        verdict = judge.update(counts, t=t)
        if verdict.state is VerdictState.RUNNING and "may be moving back and forth" in verdict.reason:
            held = verdict
        if verdict.decided:
            break
    assert held is not None and held.flapping is not None and held.flapping.holding
    assert all(s.status == "inside" for s in held.subsets)  # the judge before would have PASSed here
    assert verdict.state is VerdictState.FAIL and "the split moved" in verdict.reason


def test_the_e_process_stays_below_its_threshold_at_a_constant_split():
    """Seeded: 2,000 constant 90/10 streams of 12,000 responses, looks of Poisson(50); the
    e-process is a supermartingale under the null, so its running maximum stays far below
    log(1 / alpha), and its end value is far below 0."""
    rng = np.random.default_rng(20261129)
    runs, looks = 2000, 240
    sizes = rng.poisson(50, size=(looks, runs))
    v1 = rng.binomial(sizes, 0.9)
    cum = np.stack([v1, sizes - v1], axis=-1).cumsum(axis=0).astype(float)
    config = JudgeConfig()
    test = flapping.FlapTest(SPEC.weights, flapping.concentration(SPEC.weights, config.half_widths(SPEC)), runs)
    peak = np.full(runs, -np.inf)
    for t in range(looks):
        log_e, _ = test.look(cum[t])
        peak = np.maximum(peak, log_e)
    threshold = np.log(1 / config.flap_alpha)
    assert peak.max() < threshold - 2
    assert (peak >= np.log(20)).mean() < 0.01  # Ville: <= 1/20; in fact far fewer
    assert np.median(log_e) < -10


def test_simulation_and_judge_agree_on_alternating_streams():
    """simulate.apply_rule (the bench's vectorised rule) gives the SequentialJudge's verdicts."""
    rng = np.random.default_rng(11)
    runs = 6
    shares = np.stack([_alternating_shares(6000, 500, int(o)) for o in rng.integers(0, 1000, runs)], axis=1)
    steps = rng.binomial(50, shares.reshape(120, 50, runs).mean(axis=1))  # one share per look, (looks, runs)
    steps = np.stack([steps, 50 - steps], axis=-1)
    out = apply_rule(Rule.of_judge(SPEC, JudgeConfig()), SPEC, steps)
    cum = steps.cumsum(axis=0)
    for r in range(runs):
        judge = SequentialJudge(SPEC)
        for t in range(cum.shape[0]):
            verdict = judge.update({"v1": int(cum[t, r, 0]), "v2": int(cum[t, r, 1])})
            if verdict.decided:
                break
        assert (verdict.state is VerdictState.FAIL) == (out.code[r] == FAIL)
        assert (verdict.state is VerdictState.PASS) == (out.code[r] == PASS)
        assert verdict.n == out.stop_n[r]
        assert bool(verdict.flapping and verdict.flapping.detected) == out.by_flap[r]


def test_window_grid():
    assert flapping.window_of(0, 500, 0) == 0
    assert flapping.window_of(1, 500, 0) == flapping.window_of(500, 500, 0) == 1
    assert flapping.window_of(501, 500, 0) == 2
    assert flapping.window_of(250, 500, 250) == 0 and flapping.window_of(251, 500, 250) == 1
    assert len(flapping.grids()) == len(flapping.WINDOWS) * flapping.PHASES
    # 100/0 has no share in (0, 1) to take a spread from: a positive floor, never a prior of 0.
    assert flapping.concentration((1.0, 0.0), (0.02, 0.02)) == flapping.MIN_CONCENTRATION


def test_one_crossing_is_a_move_two_are_back_and_forth():
    """The proof is the same (the windows do not share one split); the words follow what the windows show."""
    def sentence(crossings):
        return flap_sentence(FlapResult(detected=True, log_evidence=9.0, log_threshold=8.29, window=500, windows=3,
                                        window_s=1.0, crossings=crossings, low={"v1": 0.85, "v2": 0.05},
                                        high={"v1": 0.95, "v2": 0.15}), ("v1", "v2"))
    assert sentence(2).startswith("the split moved back and forth during the run: over 3 windows of ~500 "
                                  "responses (~1.0 s each) the shares ranged v1 85.0-95.0 %, v2 5.00-15.0 %")
    assert sentence(1).startswith("the split moved during the run: over 3 windows")
    assert "a write to the splitter during the run" in sentence(1)


def test_junit_and_the_terminal_name_a_moving_split(tmp_path):
    """The JUnit failure's type is SplitMoving (a change point is SplitChanged) and the results
    print the windows' ranges under the verdict, as they print a change's segments."""
    from rich.console import Console

    from loadgen.canary import CanaryOptions, replay
    from loadgen.report.terminal import verdict_table

    rec = tmp_path / "flapping.jsonl"
    _record(rec, _alternating_shares(12_000, 500), seed=23)
    result = replay(CanaryOptions(expect="90/10", replay=rec, mapping="1=v1,2=v2"))
    assert result.verdict.flapping is not None and result.verdict.flapping.detected
    assert 'type="SplitMoving"' in result.junit()
    console = Console(width=200, record=True, force_terminal=False)
    console.print(verdict_table(result.verdict, None, plain=True))
    text = console.export_text()
    assert "split moving: over" in text and "v1 " in text.split("split moving: over", 1)[1]
