"""The canary's latency and error comparisons as the canary core runs them: options, the
per-subset tally fed with samples, and the combined state."""

import pytest

from loadgen.canary.worse import WorseCheck, WorseOptions, WorseTally
from loadgen.errors import UsageError
from loadgen.load.sample import Sample
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
    result = check.look(failing)
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
