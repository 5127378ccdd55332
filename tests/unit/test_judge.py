"""The judge, on fixed inputs and on seeded simulations that a broken judge would fail."""

import numpy as np
import pytest

from loadgen.stats import (
    FixedJudge,
    JudgeConfig,
    SequentialJudge,
    SpecError,
    SplitSpec,
    VerdictState,
    confseq,
    plan_sample_size,
)


def monitored_run(judge, p, rng, batch=50, budget=20_000):
    """Feed one simulated stream in batches, looking after each; return the last verdict."""
    counts = np.zeros(len(p), dtype=int)
    verdict = None
    while counts.sum() < budget:
        counts += rng.multinomial(batch, p)
        verdict = judge.update(dict(zip(judge.spec.names, counts.tolist(), strict=True)))
        if verdict.decided:
            return verdict
    return judge.finish(dict(zip(judge.spec.names, counts.tolist(), strict=True)))


def test_confidence_sequence_covers_at_every_look():
    # alpha = 0.05 so a broken sequence shows up with few runs; Ville's bound is
    # conservative, so the observed rate of ever missing is well below alpha.
    rng = np.random.default_rng(7)
    p, n_runs, looks, batch = 0.85, 400, 100, 50
    mix = confseq.mixture_for(0.85, 0.02)
    steps = rng.binomial(batch, p, size=(n_runs, looks)).cumsum(axis=1)
    n = np.arange(1, looks + 1) * batch
    lo, hi = confseq.interval(steps, np.broadcast_to(n, steps.shape), 0.05, mix)
    missed = ((lo > p) | (hi < p)).any(axis=1).mean()
    assert missed <= 0.05
    # ... and the intervals shrink like 1/sqrt(n) (a too-wide sequence would never decide).
    assert np.median(hi[:, -1] - lo[:, -1]) < 0.035


def test_interval_edges():
    mix = confseq.mixture_for(0.5, 0.02)
    lo, hi = confseq.interval(0, 0, 0.01, mix)
    assert (lo[0], hi[0]) == (0.0, 1.0)
    # A prior centred on 50 % makes extreme data cost more, but it still rules 50 % out.
    lo, hi = confseq.interval(0, 1000, 0.01, mix)
    assert lo[0] == 0.0 and 0 < hi[0] < 0.48
    lo, hi = confseq.interval(1000, 1000, 0.01, mix)
    assert hi[0] == 1.0 and 0.52 < lo[0] < 1


def test_scalar_and_vector_intervals_agree():
    rng = np.random.default_rng(2)
    mix = confseq.mixture_for(0.15, 0.02)
    n = rng.integers(1, 20_000, size=50)
    s = rng.binomial(n, 0.15)
    lo, hi = confseq.interval(s, n, 0.01, mix)
    for i in range(50):
        assert confseq.interval_scalar(int(s[i]), int(n[i]), 0.01, mix) == pytest.approx((lo[i], hi[i]), abs=1e-12)


def test_pass_at_the_true_split_and_fail_far_from_it():
    rng = np.random.default_rng(11)
    spec = SplitSpec.parse("85/15")
    v = monitored_run(SequentialJudge(spec), [0.85, 0.15], rng)
    assert v.state is VerdictState.PASS and 2_000 < v.n < 15_000
    assert all(s.status == "inside" for s in v.subsets)
    v = monitored_run(SequentialJudge(spec), [0.5, 0.5], rng)
    assert v.state is VerdictState.FAIL and v.n < 300
    assert "v1 gets" in v.reason and "expected 85 %" in v.reason


def test_false_fail_rate_at_the_true_split_is_below_alpha():
    # 200 monitored runs at alpha = 0.1 (so a broken judge shows); each looks ~100 times.
    rng = np.random.default_rng(3)
    spec = SplitSpec.parse("85/15")
    cfg = JudgeConfig(alpha=0.1)
    fails = sum(monitored_run(SequentialJudge(spec, cfg), [0.85, 0.15], rng, budget=5_000).state
                is VerdictState.FAIL for _ in range(200))
    assert fails / 200 <= 0.1


def test_missing_subset_fails_naming_it():
    v = SequentialJudge(SplitSpec.parse("85/15")).update({"v1": 600, "v2": 0}, errors=110)
    assert v.state is VerdictState.FAIL
    assert "v2 gets no response at all" in v.reason


def test_zero_weight_subset_fails_on_any_traffic_without_tolerance():
    judge = SequentialJudge(SplitSpec.parse("100/0"))
    v = judge.update({"v1": 5000, "v2": 3})
    assert v.state is VerdictState.FAIL
    assert "v2 should get no traffic but answered 3 of the requests" in v.reason
    v = SequentialJudge(SplitSpec.parse("100/0")).update({"v1": 2000, "v2": 0})
    assert v.state is VerdictState.PASS
    v = FixedJudge(SplitSpec.parse("0/100")).judge({"v1": 1, "v2": 9999})
    assert v.state is VerdictState.FAIL


def test_unknown_app_ids_and_errors_are_guarded():
    judge = SequentialJudge(SplitSpec.parse("85/15"))
    v = judge.update({"v1": 850, "v2": 150}, unknown=200)
    assert v.state is VerdictState.FAIL and "unknown APP_IDs" in v.reason
    v = SequentialJudge(SplitSpec.parse("85/15")).update({"v1": 850, "v2": 150}, errors=300)
    assert v.state is VerdictState.FAIL and "errors" in v.reason
    # Errors prove the FAIL before the silent subset does; the reason still names it.
    v = SequentialJudge(SplitSpec.parse("85/15")).update({"v1": 100, "v2": 0}, errors=25)
    assert v.state is VerdictState.FAIL and "v2 has not answered once" in v.reason
    # A few of either is not a failure.
    v = SequentialJudge(SplitSpec.parse("85/15")).update({"v1": 850, "v2": 150}, unknown=1, errors=2)
    assert v.state is VerdictState.RUNNING


def test_running_then_inconclusive():
    judge = SequentialJudge(SplitSpec.parse("85/15"))
    assert judge.update({"v1": 85, "v2": 15}).state is VerdictState.RUNNING
    v = judge.finish({"v1": 170, "v2": 30})
    assert v.state is VerdictState.INCONCLUSIVE and "budget ran out" in v.reason


def test_counts_must_grow():
    judge = SequentialJudge(SplitSpec.parse("85/15"))
    judge.update({"v1": 100, "v2": 20})
    with pytest.raises(ValueError, match="went down"):
        judge.update({"v1": 50, "v2": 20})


def test_one_subset_going_down_is_refused_even_when_the_total_grows():
    # A moved baseline once looked like this (v1 -1, v2 +6) and faked a change of split.
    judge = SequentialJudge(SplitSpec.parse("85/15"))
    judge.update({"v1": 212, "v2": 38})
    with pytest.raises(ValueError, match="went down"):
        judge.update({"v1": 211, "v2": 44})


def test_srm_p_values():
    v = SequentialJudge(SplitSpec.parse("85/15")).update({"v1": 8500, "v2": 1500})
    assert v.srm_p == pytest.approx(1.0) and v.srm_p_anytime == pytest.approx(1.0)
    v = SequentialJudge(SplitSpec.parse("85/15")).update({"v1": 800, "v2": 200})
    assert v.srm_p < 1e-4 and v.srm_p_anytime < 0.01


def test_three_subsets():
    rng = np.random.default_rng(5)
    spec = SplitSpec.parse("70/20/10")
    assert monitored_run(SequentialJudge(spec), [0.7, 0.2, 0.1], rng).state is VerdictState.PASS
    v = monitored_run(SequentialJudge(spec), [0.7, 0.1, 0.2], rng)
    assert v.state is VerdictState.FAIL


def test_fixed_judge_power_at_the_planned_n():
    rng = np.random.default_rng(9)
    spec, cfg = SplitSpec.parse("85/15"), JudgeConfig()
    n = plan_sample_size(spec, cfg, power=0.8).fixed_n
    assert 3_000 < n < 6_000
    judge = FixedJudge(spec, cfg)
    passes = sum(judge.judge({"v1": int(x), "v2": n - int(x)}).state is VerdictState.PASS
                 for x in rng.binomial(n, 0.85, size=300))
    assert 0.72 < passes / 300 < 0.9  # power 0.8 by construction


def test_config_validation():
    # A limit of 0 is valid (none allowed: test_a_zero_limit_allows_none_at_all); below 0 or 100 % is not.
    for kwargs in ({"tolerance": 0}, {"tolerance": 0.6}, {"alpha": 0}, {"alpha": 0.7}, {"max_unknown": -0.01},
                   {"max_errors": 1.0}):
        with pytest.raises(SpecError):
            JudgeConfig(**kwargs)


def test_a_zero_limit_allows_none_at_all():
    # --max-errors 0 / --max-unknown 0: one occurrence is proof, for both judges.
    config = JudgeConfig(max_errors=0, max_unknown=0)
    spec = SplitSpec.parse("85/15")
    seq = SequentialJudge(spec, config)
    assert seq.update({"v1": 850, "v2": 150}).state is not VerdictState.FAIL
    failed = seq.update({"v1": 850, "v2": 150}, errors=1)
    assert failed.state is VerdictState.FAIL and "1 request was errors (none allowed)" in failed.reason
    fixed = FixedJudge(spec, config).judge({"v1": 850, "v2": 150}, unknown=2)
    assert fixed.state is VerdictState.FAIL and "2 responses were unknown APP_IDs" in fixed.reason
