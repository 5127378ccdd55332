"""Rate plans: when each request of an open-loop run is meant to start.

``RateSchedule.parse`` accepts:

* ``200`` -- a constant 200 requests/s;
* ``100..500`` -- a linear ramp from 100/s to 500/s over the run's duration;
* ``100:10s,200:10s,400:20s`` -- steps, each a rate held for a time (the run's duration
  is then the steps' total unless a shorter one is given).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from loadgen.errors import UsageError

# The most requests per second any command sends (``run``, ``canary``, ``shift``): one
# generator process does a few thousand a second, and a rate far above what any machine can
# send only makes the schedule's arithmetic meaningless (at 1e30/s one request's time
# differs from the next one's by less than a float can tell).
MAX_RATE = 100_000.0

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise UsageError(f"{text!r} is not a duration like 30s, 2m or 90")
    seconds = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2) or "s"]
    if seconds <= 0:
        raise UsageError(f"duration {text!r} must be more than 0")
    return seconds


def _rate(text: str, whole: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{text!r} in --rate {whole!r} is not a number of requests per second") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"--rate {whole!r}: rates must be more than 0, got {text}")
    if value > MAX_RATE:
        raise UsageError(f"--rate {whole!r}: {text.strip()} is more than the most loadgen sends, "
                         f"{MAX_RATE:,.0f} requests per second")
    return value


@dataclass(frozen=True)
class Segment:
    start_rate: float
    end_rate: float
    seconds: float | None  # None: until the run's duration

    def count_until(self, t: float) -> float:
        """Requests due in [0, t) of this segment."""
        if self.seconds is None or self.start_rate == self.end_rate:
            return self.start_rate * t
        slope = (self.end_rate - self.start_rate) / self.seconds
        return self.start_rate * t + slope * t * t / 2

    def time_of(self, k: float, length: float) -> float:
        """When the k-th request (0-based, fractional ok) of this segment is due."""
        if self.seconds is None or self.start_rate == self.end_rate:
            return k / self.start_rate
        slope = (self.end_rate - self.start_rate) / length
        # r0 t + slope t^2 / 2 = k
        disc = self.start_rate**2 + 2 * slope * k
        if disc < 0:  # a falling ramp ends before its k-th request would be due
            return math.inf
        return (-self.start_rate + math.sqrt(disc)) / slope


@dataclass(frozen=True)
class RateSchedule:
    segments: tuple[Segment, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> RateSchedule:
        raw = text.strip()
        if ".." in raw:
            a, _, b = raw.partition("..")
            return cls((Segment(_rate(a, text), _rate(b, text), None),), text)
        if ":" in raw or "," in raw:
            segs = []
            for part in raw.split(","):
                rate, sep, dur = part.partition(":")
                if not sep:
                    raise UsageError(f"--rate {text!r}: each step is RATE:DURATION, like 100:10s")
                r = _rate(rate, text)
                segs.append(Segment(r, r, parse_duration(dur)))
            return cls(tuple(segs), text)
        r = _rate(raw, text)
        return cls((Segment(r, r, None),), text)

    @property
    def total_seconds(self) -> float | None:
        if any(s.seconds is None for s in self.segments):
            return None
        return sum(s.seconds for s in self.segments if s.seconds is not None)

    @property
    def peak_rate(self) -> float:
        return max(max(s.start_rate, s.end_rate) for s in self.segments)

    def offsets(self, duration: float) -> Iterator[float]:
        """Intended start offsets (seconds from the run's start), in order, below ``duration``."""
        base = 0.0
        for seg in self.segments:
            length = duration - base if seg.seconds is None else seg.seconds
            if length <= 0:
                return
            ramp = Segment(seg.start_rate, seg.end_rate, length) if seg.seconds is None else seg
            k = 0
            while True:
                t = ramp.time_of(k, length)
                if t >= length or base + t >= duration:
                    break
                yield base + t
                k += 1
            base += length
            if base >= duration:
                return
