"""Start-ordered counts merged across processes (Locust's workers): the judged prefix is the
requests started before every source's complete mark, never what happened to answer first."""

from __future__ import annotations

import json
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


def test_latencies_merge_across_processes_exactly_as_one_tally_of_every_sample():
    """With comparisons asked, each process's buckets carry per-APP_ID latency bins and the failures
    that named their instance; the merged buckets give exactly the tally the samples give directly."""
    from loadgen.canary.worse import WorseTally

    rng = random.Random(11)
    subset_of = {"1": "v1", "2": "v2"}.get
    direct = WorseTally(["v1", "v2"])
    buckets = {name: PrefixBuckets(bucket_s=0.25, latencies=True) for name in ("w1", "w2")}
    for i in range(4000):
        app = "1" if rng.random() < 0.85 else "2"
        roll = rng.random()
        if roll < 0.02:  # a timeout: nobody knows where it went
            sample = Sample(t=i / 1000, status=None, app_id=None, latency_ms=None, error="timeout")
        elif roll < 0.05:  # service-b's 500, still naming itself
            sample = Sample(t=i / 1000, status=500, app_id=app, latency_ms=3.0, error="http_500")
        else:
            sample = Sample(t=i / 1000, status=200, app_id=app, latency_ms=rng.lognormvariate(1.5, 0.6),
                            error=None)
        buckets["w1" if i % 3 else "w2"].add(sample.t, sample)
        direct.add(sample, subset_of(sample.app_id) if sample.app_id else None)
    merged = MergedPrefix()
    for name, b in buckets.items():
        b.advance(10.0)
        merged.merge(name, json.loads(json.dumps(b.report())))  # as Locust's messages carry it
    counts, _ = merged.judged(final=True)
    rebuilt = WorseTally.from_buckets(["v1", "v2"], counts, subset_of)
    assert rebuilt.requests == direct.requests and rebuilt.errors == direct.errors
    assert rebuilt.unattributed == direct.unattributed > 0 and rebuilt.judged == direct.judged == 4000
    for name in ("v1", "v2"):
        assert (rebuilt.bins[name].counts == direct.bins[name].counts).all()


def test_buckets_without_latencies_carry_no_more_than_before():
    p = PrefixBuckets(bucket_s=1.0)
    p.add(0.2, _ok("1"))
    p.add(0.3, Sample(t=0.3, status=500, app_id="1", latency_ms=1.0, error="http_500"))
    p.advance(1.0)
    assert p.report()["buckets"] == {"0": {"app_ids": {"1": 1}, "errors": 1}}
