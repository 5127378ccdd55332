"""The shared pieces behind every consumer of samples: Tally, the Judge interface, the canary core."""

from __future__ import annotations

import random

import pytest

from loadgen.canary import CanaryOptions, Expectation, SplitCheck, replay
from loadgen.errors import ExitCode, exit_code
from loadgen.load.sample import Sample, SampleWriter
from loadgen.load.tally import Tally, error_kind
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import FixedJudge, Judge, JudgeConfig, SequentialJudge, SplitSpec, VerdictState, make_judge


def _samples(n: int, seed: int = 1, p_v2: float = 0.15) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = i / 500
        r = rng.random()
        if r < 0.02:
            out.append(Sample(t=t, status=503, app_id=None, latency_ms=3.0, error=None, service_ms=2.0))
        elif r < 0.03:
            out.append(Sample(t=t, status=None, app_id=None, latency_ms=None, error="reset"))
        else:
            app = "2" if rng.random() < p_v2 else "1"
            out.append(Sample(t=t, status=200, app_id=app, latency_ms=1 + rng.random() * 9, error=None,
                              service_ms=1.0))
    return out


def test_tally_counts_every_sample_once():
    samples = _samples(2000)
    tally = Tally()
    for s in samples:
        tally.add(s)
    assert tally.sent == len(samples)
    assert tally.app_ids["1"] + tally.app_ids["2"] == sum(s.ok for s in samples) == tally.answered
    assert tally.errors["http_503"] == sum(s.status == 503 for s in samples)
    assert tally.errors["reset"] == sum(s.error == "reset" for s in samples)
    assert error_kind(Sample(t=0, status=404, app_id=None, latency_ms=1, error=None)) == "http_404"
    assert tally.latency_summary()["count"] == sum(s.latency_ms is not None for s in samples)
    assert Tally().latency_summary() == {}


def test_tally_merge_is_exact():
    """Three processes' tallies, encoded and merged, equal one tally of all the samples."""
    samples = _samples(3000, seed=7)
    whole, parts = Tally(), [Tally(), Tally(), Tally()]
    for i, s in enumerate(samples):
        whole.add(s)
        parts[i % 3].add(s)
    merged = Tally.merged(p.encode() for p in parts)
    assert merged.app_ids == whole.app_ids and merged.errors == whole.errors
    assert merged.book.summary() == whole.book.summary()
    assert merged.book.summary("corrected", "app_id=2") == whole.book.summary("corrected", "app_id=2")
    assert merged.book.timeseries() == whole.book.timeseries()


def test_both_judges_implement_one_interface():
    spec = SplitSpec.parse("85/15")
    for method, cls in (("sequential", SequentialJudge), ("fixed", FixedJudge)):
        judge = make_judge(spec, JudgeConfig(), method)
        assert isinstance(judge, cls) and isinstance(judge, Judge) and judge.method == method
    with pytest.raises(ValueError):
        make_judge(spec, JudgeConfig(), "bayes")


def test_fixed_judge_update_is_running_until_decided_and_finish_is_its_one_look():
    spec = SplitSpec.parse("85/15")
    judge = FixedJudge(spec)
    assert judge.update({"v1": 8, "v2": 2}).state is VerdictState.RUNNING
    assert judge.finish({"v1": 8, "v2": 2}).state is VerdictState.INCONCLUSIVE
    assert judge.update({"v1": 850_000, "v2": 150_000}).state is VerdictState.PASS
    assert judge.finish({"v1": 850_000, "v2": 150_000}) == judge.judge({"v1": 850_000, "v2": 150_000})


@pytest.mark.parametrize(("state", "code"), [(VerdictState.PASS, ExitCode.OK), (VerdictState.FAIL, ExitCode.FAIL),
                                             (VerdictState.INCONCLUSIVE, ExitCode.INCONCLUSIVE),
                                             (VerdictState.RUNNING, ExitCode.INCONCLUSIVE)])
def test_one_exit_code_per_verdict(state, code):
    assert exit_code(state) is code


def test_expectation_classifies_unknown_and_unmapped():
    mapping = SubsetMap(("v1", "v2", "v3"), {"1": "v1", "2": "v2", "3": "v3"}, "test")
    exp = Expectation(SplitSpec.parse("v1=90,v2=10"), mapping)
    counts, unknown = exp.classify({"1": 5, "2": 3, "3": 2, "9": 1})
    assert counts == {"v1": 5, "v2": 3} and unknown == 3  # v3 is not in the spec; 9 maps to nothing
    assert exp.subset_of("3") is None and exp.subset_of("2") == "v2"
    lone = Expectation(SplitSpec.parse("v1=90,v2=10"), SubsetMap(("v1",), {"1": "v1"}, "test"))
    assert lone.unmapped_subsets == ["v2"]


def test_split_check_judges_what_a_hand_count_gives():
    """The core's verdict equals the judge's on counts made by hand, warm-up left out."""
    mapping = SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "test")
    spec = SplitSpec.parse("85/15", names=["v1", "v2"])
    check = SplitCheck(Expectation(spec, mapping), JudgeConfig(), warmup=0.5)
    samples = _samples(4000, seed=3)
    for s in samples:
        check.add(s)
    judged = [s for s in samples if s.t >= 0.5]
    counts = {"v1": sum(s.ok and s.app_id == "1" for s in judged), "v2": sum(s.ok and s.app_id == "2" for s in judged)}
    errors = sum(not s.ok for s in judged)
    verdict = check.look(8.0, final=True)
    assert verdict == SequentialJudge(spec).finish(counts, 0, errors, 8.0)
    assert check.warm.sent == sum(s.t < 0.5 for s in samples)
    result = check.result(verdict, target="t", requests=len(samples), duration_s=8.0, stopped_by="test")
    assert sum(result.app_id_counts.values()) + sum(result.errors.values()) == len(samples)
    assert set(result.by_app_id) == {"1", "2"} and result.warmup["requests"] == check.warm.sent
    assert result.exit_code is exit_code(verdict.state)


def test_replay_writes_the_schema_locust_writes(tmp_path):
    """A replay's JSON has every key of the one CanaryResult schema (Locust's is checked live)."""
    path = tmp_path / "r.jsonl"
    writer = SampleWriter(path)
    for s in _samples(3000, seed=5):
        writer.write(s, {"1": "v1", "2": "v2"}.get(s.app_id or ""))
    writer.close()
    doc = replay(CanaryOptions(expect="85/15", replay=path)).to_json()
    for key in ("verdict", "judge", "plan", "mapping", "by_app_id", "source", "workers", "requests",
                "app_id_counts", "errors", "latency_ms", "warnings", "exit_code"):
        assert key in doc
    assert doc["source"] == "loadgen canary" and doc["workers"] is None
