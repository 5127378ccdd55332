"""Start-ordered counts merged across processes (Locust's workers): the judged prefix is the
requests started before every source's complete mark, never what happened to answer first."""

from __future__ import annotations

import random
from collections import Counter

from loadgen.load.prefix_buckets import MergedPrefix, PrefixBuckets
from loadgen.load.sample import Sample
from loadgen.load.send_order import SendOrder


def _ok(app_id: str) -> Sample:
    return Sample(t=0.0, status=200, app_id=app_id, latency_ms=1.0, error=None)


def test_only_buckets_below_every_sources_mark_are_judged():
    a, b = PrefixBuckets(bucket_s=1.0), PrefixBuckets(bucket_s=1.0)
    for t in (0.1, 1.1, 2.1):
        a.add(t, _ok("1"))
        b.add(t, _ok("2"))
    b.add(0.5, Sample(t=0.5, status=503, app_id=None, latency_ms=1.0, error=None))
    a.advance(3.0)  # a: complete below bucket 3
    b.advance(1.5)  # b lags: complete below bucket 1
    merged = MergedPrefix()
    merged.merge("a", a.report())
    merged.merge("b", b.report())
    counts, below = merged.judged()
    assert below == 1 and dict(counts.app_ids) == {"1": 1, "2": 1} and counts.errors == 1
    b.advance(2.5)
    merged.merge("b", b.report())  # only the new complete bucket travels
    counts, below = merged.judged()
    assert below == 2 and dict(counts.app_ids) == {"1": 2, "2": 2}
    counts, _ = merged.judged(final=True)  # the last look takes everything received
    assert dict(counts.app_ids) == {"1": 3, "2": 2}


def test_reports_carry_each_bucket_once():
    p = PrefixBuckets(bucket_s=1.0)
    p.add(0.2, _ok("1"))
    p.advance(1.0)
    first = p.report()
    p.add(1.2, _ok("1"))
    p.advance(1.9)  # bucket 1 still open
    second = p.report()
    assert list(first["buckets"]) == ["0"] and second["buckets"] == {}
    p.advance(2.0)
    assert list(p.report()["buckets"]) == ["1"]


def test_the_judged_prefix_is_exactly_the_requests_started_before_the_mark():
    """Two processes send 85/15 with v1 400 ms slower. Stopped mid-run, the merged judged counts are
    exactly those of the requests *started* before the mark -- whichever have answered by then."""
    rng = random.Random(7)
    buckets = {name: PrefixBuckets(bucket_s=0.25) for name in ("w1", "w2")}
    orders = {name: SendOrder(lambda s, b=b: b.add(s.t, s)) for name, b in buckets.items()}
    sends = []
    for i in range(3000):
        app = "1" if rng.random() < 0.85 else "2"
        sends.append(("w1" if i % 2 else "w2", i / 300, app, i / 300 + (0.4 if app == "1" else 0.001)))
    stop_at = 6.1  # mid-run: the last 0.4 s of v1's requests are still in flight
    timeline = sorted([(t, 0, k) for k, (_, t, _, _) in enumerate(sends) if t < stop_at]
                      + [(done, 1, k) for k, (_, _, _, done) in enumerate(sends) if done < stop_at])
    tickets: dict[int, int] = {}
    for _, kind, k in timeline:
        name, t, app, _ = sends[k]
        if kind == 0:
            tickets[k] = orders[name].sent(t)
        else:
            orders[name].done(tickets[k], Sample(t=t, status=200, app_id=app, latency_ms=1.0, error=None))
    merged = MergedPrefix()
    for name, b in buckets.items():
        b.advance(orders[name].complete_until(stop_at))
        merged.merge(name, b.report())
    counts, below = merged.judged()
    mark = below * 0.25
    expected = Counter(app for _, t, app, _ in sends if t < mark)
    answered = Counter(app for _, _, app, done in sends if done < stop_at)
    assert 5.0 < mark <= 5.75 and counts.app_ids == expected
    # what completion order would have judged: the faster v2 over-represented
    assert answered["2"] / sum(answered.values()) > expected["2"] / sum(expected.values())
