"""SendOrder: hand completed requests on in the order they were *sent*, never the order they answered.

Why: a verdict's guarantee assumes the order in which the judge sees answers does not depend on
which backend gave them. The splitter picks a backend per request, independently of when the
request was sent, so answers taken in send order are an i.i.d. sequence and any prefix of it --
whenever a look happens -- is covered by the judge's time-uniform confidence sequences. Answers
taken in *completion* order are not: at any moment the newest completed answers over-represent
whichever backend answers faster, so a faster (or slower) canary looks like a moved split.

The engine takes a ticket when it sends a request (:meth:`sent`) and hands the sample in when it
completes, fails or times out (:meth:`done`). A sample is released (passed to ``release``) once
every request sent before it has been released: the consumer always holds the complete prefix of
the requests in send order, up to the earliest one still in flight. How long a sample can be held
back is bounded by the per-request timeout (a request that never answers still ends as a timeout).
:meth:`close` releases whatever is left when the run ends (requests cancelled before they ended
never become samples, so the gaps they leave must not hold the rest back forever).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from loadgen.load.sample import Sample

__all__ = ["PrefixLag", "SendOrder"]


@dataclass(frozen=True)
class PrefixLag:
    """How far the released (judged) prefix trails what was sent, at one moment."""

    held: int  # answered, but held back behind an earlier request still in flight
    in_flight: int  # sent, not answered yet
    lag_s: float  # send time of the newest request minus that of the earliest still in flight (0: none)

    def to_json(self) -> dict[str, float | int]:
        return {"held": self.held, "in_flight": self.in_flight, "lag_s": round(self.lag_s, 4)}


class SendOrder:
    """A reorder buffer keyed by send tickets (0, 1, 2, ... in the order requests were sent)."""

    def __init__(self, release: Callable[[Sample], None]) -> None:
        self._release = release
        self._next_ticket = 0
        self._next_release = 0  # the earliest ticket not released yet
        self._sent_t: deque[float] = deque()  # send time of each ticket from _next_release on
        self._done: dict[int, Sample] = {}  # answered, waiting for an earlier ticket
        self.released = 0
        self.released_t: float | None = None  # send time of the newest released sample

    def sent(self, t: float) -> int:
        """A request is being sent at ``t`` (its intended start, seconds into the run): its ticket."""
        ticket = self._next_ticket
        self._next_ticket += 1
        self._sent_t.append(t)
        return ticket

    def done(self, ticket: int, sample: Sample) -> None:
        """The request with ``ticket`` ended with ``sample``; release every sample now in order."""
        if ticket < self._next_release or ticket >= self._next_ticket or ticket in self._done:
            raise ValueError(f"ticket {ticket} was not handed out or is already done")
        self._done[ticket] = sample
        self._drain()

    def close(self) -> None:
        """The run is over: release what is held, in send order, skipping requests that never ended."""
        for ticket in sorted(self._done):
            self._emit(self._done.pop(ticket))
        self._next_release = self._next_ticket
        self._sent_t.clear()

    @property
    def sent_count(self) -> int:
        return self._next_ticket

    @property
    def frontier_t(self) -> float | None:
        """The send time up to which the prefix is complete: that of the earliest request still in
        flight (every request sent before it has been released), or of the newest released sample
        when nothing is in flight. None before any release."""
        if self._sent_t:
            return self._sent_t[0]
        return self.released_t

    def complete_until(self, now: float) -> float:
        """The send time before which every request has been released: that of the earliest request
        still in flight, or ``now`` (on the same clock as ``t``) when none is."""
        return self._sent_t[0] if self._sent_t else now

    def lag(self) -> PrefixLag:
        pending = self._next_ticket - self._next_release
        held = len(self._done)
        lag_s = (self._sent_t[-1] - self._sent_t[0]) if self._sent_t else 0.0
        return PrefixLag(held=held, in_flight=pending - held, lag_s=max(0.0, lag_s))

    def _drain(self) -> None:
        while self._next_release in self._done:
            sample = self._done.pop(self._next_release)
            self._next_release += 1
            self._sent_t.popleft()
            self._emit(sample)

    def _emit(self, sample: Sample) -> None:
        self.released += 1
        self.released_t = sample.t if self.released_t is None else max(self.released_t, sample.t)
        self._release(sample)
