"""Issue 25, item 3: no input makes a loop run for ever (or past Ctrl-C / SIGTERM).

A --rate far above what any machine sends is refused (one shared cap, MAX_RATE); counting a
schedule's requests is O(1) whatever the numbers; a replay whose ``t`` jump (epoch seconds, 1e300)
costs the latency book no walk over the seconds between; the open loop yields to the event loop
(where the stop signals are delivered) even when it never has to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from typing import ClassVar

import pytest

from loadgen.errors import UsageError
from loadgen.load.engine import YIELD_EVERY, LoadPlan, RunStats, _open_loop, scheduled_before
from loadgen.load.histograms import LatencyBook
from loadgen.load.sample import Sample
from loadgen.load.schedule import MAX_RATE, RateSchedule, Segment
from loadgen.load.send_order import SendOrder
from tests.unit.cli_in_process import loadgen_in_process


@pytest.mark.parametrize("rate", ["1e30", "1e30:1s", "1..1e30", "100:1s,1e30:1s", f"{MAX_RATE * 2:g}"])
def test_a_rate_above_the_shared_cap_is_refused(rate):
    with pytest.raises(UsageError, match="more than the most loadgen sends"):
        RateSchedule.parse(rate)


def test_run_refuses_a_rate_above_the_cap_before_sending(tmp_path):
    result = loadgen_in_process("run", "--target", "http://127.0.0.1:9/hello_a", "--rate", "1e30",
                                "--duration", "1s", "--out", str(tmp_path), "-q", tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "100,000 requests per second" in result.stderr


def test_the_cap_is_the_same_for_run_and_canary(tmp_path):
    assert RateSchedule.parse(f"{MAX_RATE:g}").peak_rate == MAX_RATE
    result = loadgen_in_process("canary", "--expect", "85/15", "--target", "http://127.0.0.1:9/hello_a",
                                "--rate", f"{MAX_RATE * 1.5:g}", "--plan", tmp_path=tmp_path)
    assert result.returncode == 2 and "100000" in result.stderr.replace(",", "")


class _CountingSegment(Segment):
    """A segment whose time formula counts its calls, and gives up after too many (a walk)."""

    calls: ClassVar[Counter[str]] = Counter()

    def time_of(self, k, length):
        _CountingSegment.calls["time_of"] += 1
        if _CountingSegment.calls["time_of"] > 1000:
            raise AssertionError("scheduled_before walks the schedule")
        return super().time_of(k, length)


@pytest.mark.parametrize("rate,seconds", [(1e30, 1.0), (1e18, 10.0), (5.0, 1e22)])
def test_counting_a_schedule_is_constant_work_whatever_the_numbers(rate, seconds):
    _CountingSegment.calls.clear()
    schedule = RateSchedule((_CountingSegment(rate, rate, seconds),), "built directly")
    count = scheduled_before(schedule, seconds, seconds / 2)
    assert count == pytest.approx(rate * seconds / 2, rel=1e-6)
    assert _CountingSegment.calls["time_of"] <= 40


class _CountingDict(dict):
    lookups = 0

    def __contains__(self, key):
        _CountingDict.lookups += 1
        return super().__contains__(key)

    def get(self, key, default=None):
        _CountingDict.lookups += 1
        return super().get(key, default)


@pytest.mark.parametrize("jump", [1.7e9, 1e300])
def test_a_jump_in_t_costs_the_latency_book_no_walk(jump):
    book = LatencyBook()
    book.seconds = _CountingDict()
    _CountingDict.lookups = 0
    for t in (0.5, 1.5, jump, jump + 1):
        book.record(Sample(t=t, status=200, app_id="1", latency_ms=1.0, error=None))
    assert _CountingDict.lookups < 100
    assert sum(row.sent for row in book.seconds.values()) == 4
    assert book.seconds[0]._hist is None  # the old seconds were compacted all the same


def test_a_replay_whose_t_are_epoch_seconds_is_judged(tmp_path):
    lines = [{"t": 1.7e9 + i * 0.01 + (i % 7) * 3600, "status": 200, "app_id": "1" if i % 2 else "2",
              "latency_ms": 1.0, "error": None} for i in range(200)]
    path = tmp_path / "epoch.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = loadgen_in_process("canary", "--replay", str(path), "--expect", "50/50", "--map", "1=v1,2=v2",
                                "--json", str(tmp_path / "r.json"), tmp_path=tmp_path)
    assert result.returncode == 3, result.stderr  # 200 answers cannot prove 50/50 within 2 points
    assert json.loads((tmp_path / "r.json").read_text())["requests"] == 200


def test_a_t_that_is_no_time_is_refused_with_its_line(tmp_path):
    path = tmp_path / "far.jsonl"
    path.write_text('{"t": 0.5, "status": 200, "app_id": "1", "latency_ms": 1, "error": null}\n'
                    '{"t": 1e300, "status": 200, "app_id": "1", "latency_ms": 1, "error": null}\n')
    result = loadgen_in_process("canary", "--replay", str(path), "--expect", "50/50", "--map", "1=v1,2=v2",
                                tmp_path=tmp_path)
    assert result.returncode == 2 and "far.jsonl:2" in result.stderr and "t must be" in result.stderr


def test_the_open_loop_yields_to_the_event_loop_when_it_never_waits():
    """A generator that never has to sleep (behind its schedule, slots free) still lets the event
    loop run -- where loop.add_signal_handler delivers Ctrl-C and SIGTERM -- every YIELD_EVERY sends."""

    class NeverAnswers:
        async def send(self):
            await asyncio.Event().wait()

        new_connection = False

    async def scenario() -> RunStats:
        loop = asyncio.get_running_loop()
        stopped = []
        loop.call_soon(stopped.append, True)  # a signal handler's callback, queued at the start
        plan = LoadPlan(url="http://127.0.0.1:9/", rate=MAX_RATE, max_time=60.0, max_in_flight=10_000)
        stats = RunStats()
        clock = loop.time
        # Start far in the past: every request is due at once, so the loop never sleeps.
        task = asyncio.ensure_future(_open_loop(plan, NeverAnswers(), clock() - 50.0, clock, stats,
                                                SendOrder(lambda s: None), lambda: bool(stopped)))
        while not task.done() and stats.sent < 5000 and not stopped:
            await asyncio.sleep(0)
        sent_when_seen = stats.sent
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        stats.sent = sent_when_seen
        return stats

    stats = asyncio.run(scenario())
    assert stats.sent <= YIELD_EVERY
