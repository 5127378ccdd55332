"""The judge sees answers in send order (load/send_order.py, load/recording_order.py): a subset
that answers slower or faster must not look like a moved split."""

from __future__ import annotations

import json
import random

import pytest

from loadgen.canary import CanaryOptions, Expectation, SplitCheck, replay
from loadgen.load.recording_order import in_send_order, samples_in_send_order
from loadgen.load.sample import Sample
from loadgen.load.send_order import SendOrder
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import JudgeConfig, SplitSpec, Tolerance, VerdictState

MAP = SubsetMap(("v1", "v2"), {"1": "v1", "2": "v2"}, "test")


def _sample(t: float, app_id: str = "1", latency_ms: float = 1.0) -> Sample:
    return Sample(t=t, status=200, app_id=app_id, latency_ms=latency_ms, error=None)


def test_a_sample_waits_for_every_request_sent_before_it():
    got: list[float] = []
    order = SendOrder(lambda s: got.append(s.t))
    a, b, c = order.sent(0.0), order.sent(0.1), order.sent(0.2)
    order.done(c, _sample(0.2))
    order.done(b, _sample(0.1))
    assert got == [] and order.lag().held == 2 and order.lag().in_flight == 1
    assert order.frontier_t == 0.0 and order.lag().lag_s == pytest.approx(0.2)
    order.done(a, _sample(0.0))
    assert got == [0.0, 0.1, 0.2]
    assert order.lag().held == 0 and order.lag().in_flight == 0 and order.frontier_t == 0.2


def test_close_releases_what_a_request_that_never_ended_held_back():
    got: list[float] = []
    order = SendOrder(lambda s: got.append(s.t))
    order.sent(0.0)  # cancelled: never becomes a sample
    b = order.sent(0.1)
    order.done(b, _sample(0.1))
    assert got == []
    order.close()
    assert got == [0.1] and order.released == 1


def test_a_ticket_is_done_once():
    order = SendOrder(lambda s: None)
    t = order.sent(0.0)
    order.done(t, _sample(0.0))
    with pytest.raises(ValueError):
        order.done(t, _sample(0.0))
    with pytest.raises(ValueError):
        order.done(5, _sample(0.0))


def _live_like_run(seed: int, rate: float = 300.0, seconds: float = 20.0, slow_app: str = "1",
                   slow_ms: float = 400.0) -> list[Sample]:
    """Requests sent at ``rate`` for ``seconds``, 85/15 exactly (i.i.d. per request, as a splitter
    picks), one subset ``slow_ms`` slower: the samples in the order they *completed*."""
    rng = random.Random(seed)
    out = []
    for i in range(int(rate * seconds)):
        t = i / rate
        app = "1" if rng.random() < 0.85 else "2"
        latency = (slow_ms if app == slow_app else 0.0) + 1.0 + rng.random() * 4.0
        out.append(_sample(t, app, latency))
    out.sort(key=lambda s: s.t + s.latency_ms / 1000)
    return out


def _judge_in_completion_order(samples: list[Sample], config: JudgeConfig) -> VerdictState:
    """The old live loop: every 0.1 s judge whatever has completed (the regression guarded against)."""
    check = SplitCheck(Expectation(SplitSpec.parse("85/15"), MAP), config)
    look_at, verdict = 0.1, None
    for s in samples:
        done = s.t + s.latency_ms / 1000
        while done >= look_at:
            verdict = check.look(look_at)
            if verdict.decided:
                return verdict.state
            look_at += 0.1
        check.add(s)
    return check.look(look_at, final=True).state


def _write(path, samples: list[Sample]) -> None:
    with path.open("w") as fh:
        for s in samples:
            fh.write(json.dumps(s.to_json(MAP.subset_of(s.app_id))) + "\n")


@pytest.mark.parametrize("slow_app", ["1", "2"])
def test_a_recording_in_completion_order_with_a_slow_subset_passes(tmp_path, slow_app):
    """A run whose split is exactly the expected one but whose subsets answer 400 ms apart, recorded
    in completion order: judged in send order it PASSes; judged the old way (what had completed at
    each look) it FAILed as a moved split."""
    config = JudgeConfig(tolerance=Tolerance.parse("5"))
    samples = _live_like_run(seed=3, slow_app=slow_app)
    path = tmp_path / "completion-order.jsonl"
    _write(path, samples)
    assert not in_send_order(path)
    result = replay(CanaryOptions(expect="85/15", replay=path, config=config))
    assert result.verdict.state is VerdictState.PASS, result.verdict.reason
    assert result.verdict.change is None or not result.verdict.change.detected
    if slow_app == "1":  # a faster canary: the old way failed it every time (issue 23)
        assert _judge_in_completion_order(samples, config) is VerdictState.FAIL


def test_the_old_way_fails_a_faster_canary_on_every_seed():
    """The regression itself, on several seeds: completion order makes a faster v2 a 'changed split'."""
    config = JudgeConfig(tolerance=Tolerance.parse("5"))
    states = [_judge_in_completion_order(_live_like_run(seed=s), config) for s in range(5)]
    assert states.count(VerdictState.FAIL) == 5


def test_samples_in_send_order_sorts_by_t_and_keeps_ties(tmp_path):
    path = tmp_path / "r.jsonl"
    rows = [_sample(0.3, "1"), _sample(0.1, "2"), _sample(0.2, "1"), _sample(0.1, "1")]
    path.write_text("\ufeff" + "\n".join(json.dumps(s.to_json()) for s in rows) + "\n\n")
    got = [(s.t, s.app_id) for s, _ in samples_in_send_order(path)]
    assert got == [(0.1, "2"), (0.1, "1"), (0.2, "1"), (0.3, "1")]
    in_order = tmp_path / "ok.jsonl"
    in_order.write_text("\n".join(json.dumps(s.to_json()) for s in sorted(rows, key=lambda s: s.t)) + "\n")
    assert in_send_order(in_order)
