"""The canary's latency and error comparisons as the canary core runs them: options, the
per-subset tally fed with samples, and the combined state."""

import pytest

from loadgen.canary.check import SplitCheck
from loadgen.canary.expectation import Expectation
from loadgen.canary.worse import WorseCheck, WorseOptions, WorseTally
from loadgen.errors import UsageError
from loadgen.load.sample import Sample
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import JudgeConfig
from loadgen.stats.spec import SplitSpec
from loadgen.stats.verdict import VerdictState

SPEC = SplitSpec.parse("85/15")


def _ok(ms: float) -> Sample:
    return Sample(t=0.0, status=200, app_id="x", latency_ms=ms, error=None)


def _failed(status: int | None = 500) -> Sample:
    return Sample(t=0.0, status=status, app_id=None, latency_ms=None, error="timeout" if status is None else "http_500")


def test_options_default_to_the_heaviest_subset_and_a_10_percent_margin():
    assert WorseOptions.parse(SPEC, None, None, None, None) is None
    o = WorseOptions.parse(SPEC, "p99", None, None, None)
    assert o.baseline == "v1" and o.latency_level == 0.99 and o.latency_margin.relative == pytest.approx(0.1)
    o = WorseOptions.parse(SPEC, None, None, "0.5", "v2")
    assert o.baseline == "v2" and o.error_margin == pytest.approx(0.005) and not o.latency


@pytest.mark.parametrize(("args", "needle"), [
    ((None, "10%", None, None), "--latency-margin compares"),
    ((None, None, None, "v1"), "--baseline compares"),
    (("p99", None, None, "v3"), "--baseline 'v3' is not a subset"),
    (("p100", None, None, None), "is not a quantile"),
    (("p99", "ten", None, None), "is not a latency margin"),
    ((None, None, "nan", None), "--error-margin 'nan'"),
    ((None, None, "0", None), "--error-margin '0'"),
    ((None, None, "150", None), "--error-margin '150'"),
])
def test_bad_comparison_options_are_one_line(args, needle):
    with pytest.raises(UsageError, match=needle):
        WorseOptions.parse(SPEC, *args)
    with pytest.raises(UsageError, match="at 0 %"):
        WorseOptions.parse(SplitSpec.parse("100/0"), "p99", None, None, None)


def test_the_tally_attributes_what_it_can_and_keeps_the_rest_apart():
    tally = WorseTally(["v1", "v2"])
    tally.add(_ok(10), "v1")
    tally.add(_failed(500), "v2")  # service-b's injected 500 still names its instance
    tally.add(_failed(None), None)  # a timeout: nobody knows which subset it went to
    tally.add(_ok(10), "v3")  # an answer from outside the spec: the split verdict's business
    assert tally.requests == {"v1": 1, "v2": 1} and tally.errors == {"v1": 0, "v2": 1}
    assert tally.unattributed == 1 and tally.bins["v2"].failed == 1 and tally.bins["v1"].n == 1


def _feed(tally: WorseTally, v1_ms: float, v2_ms: float, n: int, v2_error_every: int = 0) -> None:
    for i in range(n):
        if i % 7 == 0:
            if v2_error_every and (i // 7) % v2_error_every == 0:
                tally.add(_failed(500), "v2")
            else:
                tally.add(_ok(v2_ms * (1 + (i % 13) / 100)), "v2")
        else:
            tally.add(_ok(v1_ms * (1 + (i % 13) / 100)), "v1")


def test_a_slow_canary_fails_on_latency_and_a_failing_one_on_errors():
    options = WorseOptions.parse(SPEC, "p99", "10%", "0.5", None)
    check = WorseCheck(options, ["v1", "v2"], latency_alpha=0.0125, error_alpha=0.0125)
    slow = WorseTally(["v1", "v2"])
    _feed(slow, 10, 20, 7_000)
    result = check.look(slow)
    assert result.state is VerdictState.FAIL and result.reason.startswith("v2's p99 is at least")
    assert result.to_json()["latency"][0]["verdict"] == "FAIL"
    failing = WorseTally(["v1", "v2"])
    _feed(failing, 10, 10, 7_000, v2_error_every=10)  # 10 % of v2's requests fail
    result = WorseCheck(options, ["v1", "v2"], latency_alpha=0.0125, error_alpha=0.0125).look(failing)
    # A failure is a latency of +inf, never a fast answer: the latency part fails first.
    assert result.state is VerdictState.FAIL and result.reason.startswith("v2's p99 is at least ∞")
    assert result.errors[0].state is VerdictState.FAIL and "v2 fails at least" in result.errors[0].reason


def test_untrusted_latencies_are_never_judged():
    options = WorseOptions.parse(SPEC, "p99", "10%", None, None)
    check = WorseCheck(options, ["v1", "v2"], latency_alpha=0.025, error_alpha=0.0)
    slow = WorseTally(["v1", "v2"])
    _feed(slow, 10, 20, 7_000)
    result = check.look(slow, untrusted_latency="the generator fell 2.0 s behind its schedule")
    assert result.state is VerdictState.RUNNING
    result = check.look(slow, final=True, untrusted_latency="the generator fell 2.0 s behind its schedule")
    assert result.state is VerdictState.INCONCLUSIVE and result.reason.startswith("latency not judged: the generator")
    assert [c["verdict"] for c in result.to_json()["latency"]] == ["INCONCLUSIVE"]


def test_samples_sent_late_are_never_judged_until_they_are_few():
    options = WorseOptions.parse(SPEC, "p99", "10%", None, None)
    check = WorseCheck(options, ["v1", "v2"], latency_alpha=0.025, error_alpha=0.0)
    slow = WorseTally(["v1", "v2"])
    late = Sample(t=0.0, status=200, app_id="x", latency_ms=10.0, error=None, sent_late_ms=40.0)
    for _ in range(400):  # 400 of 7,400 = 5.4 % sent late: over the 5 % limit
        slow.add(late, "v1")
    _feed(slow, 10, 20, 7_000)
    result = check.look(slow)
    assert result.state is VerdictState.RUNNING and "5.4% of the judged requests were sent more than 10 ms late" \
        in result.reason, result.reason
    final = check.look(slow, final=True)
    assert final.state is VerdictState.INCONCLUSIVE and final.reason.startswith("latency not judged:")
    _feed(slow, 10, 20, 1_000)  # 400 of 8,400 = 4.8 %: judged again
    assert WorseCheck(options, ["v1", "v2"], 0.025, 0.0).look(slow).state is VerdictState.FAIL


def _check(latency: str | None = "p99", error_margin: str | None = None) -> SplitCheck:
    expectation = Expectation(SPEC, SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "--map"))
    worse = WorseOptions.parse(SPEC, latency, None, error_margin, None)
    return SplitCheck(expectation, JudgeConfig(tolerance=0.05, alpha=0.05), worse=worse)


def _sample(i: int, v2_ms: float, v2_fails: bool = False) -> Sample:
    app_id = "2" if i % 7 == 0 else "1"
    ms = (v2_ms if app_id == "2" else 10.0) * (1 + (i % 13) / 100)
    if app_id == "2" and v2_fails:
        return Sample(t=i / 1000, status=500, app_id="2", latency_ms=ms, error="http_500")
    return Sample(t=i / 1000, status=200, app_id=app_id, latency_ms=ms, error=None)


def test_the_canary_core_fails_a_slow_canary_whose_split_is_right():
    check = _check()
    assert check.config.alpha == 0.025  # half of the run's alpha is the split's (share_alpha)
    for i in range(7_000):
        check.add(_sample(i, v2_ms=20.0))
    verdict = check.look(7.0)
    assert verdict.state is VerdictState.FAIL and verdict.reason.startswith("v2's p99 is at least")
    assert all(s.status == "inside" for s in verdict.subsets)  # the split itself is as expected
    result = check.result(verdict, target="t", requests=7_000, duration_s=7.0, stopped_by="verdict")
    data = result.to_json()
    assert data["comparisons"]["latency"][0]["verdict"] == "FAIL" and data["exit_code"] == 1
    assert 'name="latency p99 v2 vs v1"' in result.junit() and 'type="LatencyWorse"' in result.junit()


def test_the_split_passing_alone_is_not_a_pass_while_the_latency_is_undecided():
    check = _check()
    for i in range(3_000):
        check.add(_sample(i, v2_ms=10.5))
    assert check.look(3.0).state is VerdictState.RUNNING
    final = check.look(3.0, final=True)
    assert final.state is VerdictState.INCONCLUSIVE and final.reason.startswith("the split passed, but v2's p99")


def test_a_failing_canary_fails_on_its_errors_even_with_a_right_split():
    check = _check(latency=None, error_margin="0.5")
    for i in range(7_000):
        check.add(_sample(i, v2_ms=10.0, v2_fails=i % 70 == 0))  # 10 % of v2's requests fail
    verdict = check.look(7.0)
    assert verdict.state is VerdictState.FAIL and "v2 fails at least" in verdict.reason
    assert check.worse_tally.errors["v2"] == 100 and check.worse_tally.unattributed == 0


def test_a_decision_stands_at_later_looks():
    # Stopping at the first decision is what the guarantee covers: a later look (the final one,
    # with the requests that were still in flight) keeps it even if its own intervals would not.
    options = WorseOptions.parse(SPEC, "p99", "10%", None, None)
    check = WorseCheck(options, ["v1", "v2"], latency_alpha=0.025, error_alpha=0.0)
    tally = WorseTally(["v1", "v2"])
    _feed(tally, 10, 20, 7_000)
    assert check.look(tally).state is VerdictState.FAIL
    tally.unattributed += 50_000  # so many unknown failures that nothing could be decided afresh
    assert check.look(tally, final=True).state is VerdictState.FAIL
    # CI saw it: a healthy step's latency PASSed at a look, then the generator dropped 4 of 1,992
    # requests at the stop, and the whole run's health turned the PASS into INCONCLUSIVE. The
    # dropped requests were never among the judged samples; the decision was made on those.
    result = check.look(tally, final=True, untrusted_latency="the generator could not keep the asked rate (4 dropped)")
    assert result.state is VerdictState.FAIL and result.latency[0].state is VerdictState.FAIL


def test_the_request_due_at_the_warmups_end_is_judged_whatever_the_float_rounding():
    # t = (start + 0.1) - start can come out as 0.09999999999999432: still the first judged request,
    # as canary.options.warmup_requests counts it (seen as 201 warm-up requests instead of 200 in CI).
    check = SplitCheck(Expectation(SPEC, SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "--map")),
                       JudgeConfig(), warmup=0.1)
    start = 1234.5678
    check.add(Sample(t=(start + 0.1) - start, status=200, app_id="1", latency_ms=1.0, error=None))
    check.add(Sample(t=0.0999, status=200, app_id="1", latency_ms=1.0, error=None))
    assert check.tally.sent == 1 and check.warm.sent == 1
