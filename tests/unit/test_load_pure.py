"""Rate schedules and histogram merging: pure parts of the load engine."""

import pytest

from loadgen.errors import UsageError
from loadgen.load.engine import RunStats, scheduled_before, shard_count
from loadgen.load.histograms import LatencyBook
from loadgen.load.sample import Sample
from loadgen.load.schedule import RateSchedule, Segment, parse_duration


def test_constant_rate():
    offsets = list(RateSchedule.parse("100").offsets(2.0))
    assert len(offsets) == 200
    assert offsets[:3] == pytest.approx([0.0, 0.01, 0.02])


def test_ramp_doubles_its_rate():
    sched = RateSchedule.parse("100..300")
    offsets = list(sched.offsets(10.0))
    assert len(offsets) == pytest.approx(2000, abs=2)  # mean rate 200/s over 10 s
    first = sum(1 for t in offsets if t < 1.0)
    last = sum(1 for t in offsets if t >= 9.0)
    assert 100 <= first <= 115 and 285 <= last <= 300


def test_steps():
    sched = RateSchedule.parse("100:1s,300:2s")
    assert sched.total_seconds == 3.0 and sched.peak_rate == 300
    offsets = list(sched.offsets(3.0))
    assert len(offsets) == 700
    assert sum(1 for t in offsets if t < 1.0) == 100
    assert list(sched.offsets(0.5)) == offsets[:50]


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "100..0", "100:abc", "100:10s,200", "nan"])
def test_bad_rates(bad):
    with pytest.raises(UsageError):
        list(RateSchedule.parse(bad).offsets(1.0))


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("2m", 120), ("90", 90), ("250ms", 0.25)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["abc", "0", "-1s", "10x"])
def test_bad_durations(bad):
    with pytest.raises(UsageError):
        parse_duration(bad)


def _sample(t, ms, app="1", status=200):
    return Sample(t=t, status=status, app_id=app, latency_ms=ms, error=None if status == 200 else "http_503",
                  service_ms=ms / 2)


def test_histograms_merge_exactly():
    a, b, whole = LatencyBook(), LatencyBook(), LatencyBook()
    for i in range(2000):
        s = _sample(i / 100, 1 + (i % 97) * 0.5, app=str(1 + i % 2), status=200 if i % 50 else 503)
        (a if i % 3 else b).record(s)
        whole.record(s)
    merged = LatencyBook.merged([a.encode(), b.encode()])
    for group in whole.group_names():
        for measure in ("corrected", "service"):
            assert merged.summary(measure, group) == whole.summary(measure, group)
    assert merged.timeseries() == whole.timeseries()
    assert whole.summary()["count"] == 2000
    assert set(whole.group_names()) == {"all", "app_id=1", "app_id=2", "status=2xx", "status=5xx"}


def test_time_series_stays_small_on_long_runs():
    book = LatencyBook()
    for sec in range(300):
        book.record(_sample(sec + 0.5, 2.0))
    live = [r for r in book.seconds.values() if r._hist is not None]
    assert len(live) <= 72  # older seconds are compacted to encoded blobs
    rows = book.timeseries()
    assert len(rows) == 300 and rows[0]["p50_ms"] == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize(
    ("text", "duration"),
    [("100", 2.0), ("7", 1.0), ("333.3", 1.7), ("100..300", 10.0), ("500..100", 4.0), ("500..50", 3.0),
     ("100:1s,300:2s", 3.0), ("100:1s,300:2s", 2.5), ("100:1s,300:2s", 5.0), ("1e4", 0.3)],
)
def test_scheduled_before_agrees_with_walking_the_schedule(text, duration):
    """The engine counts dropped requests from the formula; it must agree with offsets() exactly."""
    sched = RateSchedule.parse(text)
    offsets = list(sched.offsets(duration))
    for until in (0.0, 0.001, duration / 3, duration / 2, duration - 0.01, duration, duration + 1):
        assert scheduled_before(sched, duration, until) == sum(1 for t in offsets if t < until), until


def test_scheduled_before_does_not_walk_a_huge_schedule():
    # Above what --rate accepts (MAX_RATE), built directly: the count must still not walk.
    huge = RateSchedule((Segment(1e9, 1e9, None),), "1e9")
    assert scheduled_before(huge, 2.0, 2.0) == 2_000_000_000
    assert scheduled_before(huge, 2.0, 0.5) == 500_000_000


@pytest.mark.parametrize("total", [0, 1, 2, 7, 10, 1_000_000_001])
@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_shards_share_out_every_request_once(total, n):
    counts = [shard_count(total, k, n) for k in range(n)]
    assert sum(counts) == total
    if total < 100:
        assert counts == [len(range(k, total, n)) for k in range(n)]


def test_dropped_requests_make_the_run_invalid():
    ok = RunStats(sent=1000, completed=1000, late=3, elapsed=2.0)
    assert ok.health()["valid"] and ok.health()["dropped"] == 0
    behind = RunStats(sent=1000, completed=1000, late=3, elapsed=2.0, dropped=1, stopped_by="max_time")
    health = behind.health()
    assert not health["valid"] and health["dropped"] == 1 and behind.due == 1001
    assert health["problems"] == ["1 requests due by the deadline were never sent (0.1% of 1,001; generator too "
                                  "slow for the rate)"]
    assert behind.health(closed_loop=True)["valid"]  # a closed loop has no schedule to fall behind


def test_a_ramp_falling_towards_zero_ends_without_error():
    from loadgen.load.schedule import RateSchedule

    offsets = list(RateSchedule.parse("500..0.01").offsets(3.0))
    # (500 + 0.01) / 2 requests per second on average over 3 s.
    assert abs(len(offsets) - 750) <= 1 and offsets == sorted(offsets) and offsets[-1] < 3.0


def test_a_stop_is_seen_within_a_poll_even_at_a_slow_rate():
    import asyncio
    import time

    from loadgen.load.engine import STOP_POLL_S, LoadPlan, run_load

    # Nothing listens on port 1, but at 0.1/s the first request is due at 0 s and the next at
    # 10 s: the stop asked at 0.3 s must end the run long before that one is due.
    plan = LoadPlan(url="http://127.0.0.1:1/x", rate=0.1, max_time=30, timeout=1)
    asked = time.monotonic() + 0.3
    began = time.monotonic()
    stats = asyncio.run(run_load(plan, lambda s: None, lambda: time.monotonic() > asked))
    assert stats.stopped_by == "stop" and stats.sent == 1
    assert time.monotonic() - began < 0.3 + plan.timeout + 20 * STOP_POLL_S
