"""Rate schedules and histogram merging: pure parts of the load engine."""

import pytest

from loadgen.errors import UsageError
from loadgen.load.histograms import LatencyBook
from loadgen.load.sample import Sample
from loadgen.load.schedule import RateSchedule, parse_duration


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
    assert sched.expected_requests(10.0) == pytest.approx(2000, abs=1)


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
