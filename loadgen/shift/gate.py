"""The latency and error gate of one shift step: pure.

Per subset that carries traffic at the step: its p99 (corrected HDR latency of the answers it
gave, measured in the step's own window) against ``--max-p99``; its error share against
``--max-errors`` (the client sidecar's 5xx per subset cluster when Envoy was read, so errors are
put on the subset that made them; otherwise the run's failed requests over all subsets); and
the shifted subset's p99 against the largest p99 of the others (``--max-p99-ratio``). A p99 from
fewer than :data:`MIN_FOR_P99` answers is not judged (said as a note): the tail of a handful of
requests is noise, and a longer ``--hold`` gives it enough.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import UsageError

__all__ = ["MIN_FOR_P99", "GateResult", "LatencyGate", "SubsetHealth", "parse_gate"]

MIN_FOR_P99 = 100


@dataclass(frozen=True)
class SubsetHealth:
    """What one subset did in a step's window."""

    answers: int  # answers that named this subset (APP_IDs mapped to it)
    p99_ms: float | None
    errors: int | None = None  # 5xx its cluster returned (None: the sidecar was not read)
    requests: int | None = None  # requests its cluster saw (with ``errors``)

    def to_json(self) -> dict[str, Any]:
        return {"answers": self.answers, "p99_ms": self.p99_ms, "errors": self.errors, "requests": self.requests}


@dataclass
class GateResult:
    problems: list[str] = field(default_factory=list)  # each breaks the gate
    notes: list[str] = field(default_factory=list)  # what was not judged, and why

    @property
    def held(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"held": self.held, "problems": self.problems, "notes": self.notes}


@dataclass(frozen=True)
class LatencyGate:
    max_p99_ms: float | None = None
    max_errors: float | None = None  # a share, 0.01 for 1 %
    max_p99_ratio: float | None = None

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.max_p99_ms, self.max_errors, self.max_p99_ratio))

    def check(self, subsets: Mapping[str, SubsetHealth], weights: Mapping[str, float], shifted: str | None,
              failed: int = 0, requests: int = 0) -> GateResult:
        """``weights``: the step's (percent); ``failed``/``requests``: the whole run's, for the error
        share when no subset has Envoy's counts."""
        result = GateResult()
        live = [n for n, w in weights.items() if w > 0]
        for name in live:
            health = subsets.get(name) or SubsetHealth(0, None)
            self._p99(name, health, result)
            self._errors(name, health, result)
        if self.max_errors is not None and not any((subsets.get(n) or SubsetHealth(0, None)).requests
                                                   for n in live):
            share = failed / requests if requests else 0.0
            if share > self.max_errors:
                result.problems.append(f"errors {share:.2%} of {requests:,} requests, over --max-errors "
                                       f"{self.max_errors:.2%} (the sidecar's per-subset counts were not read)")
        if self.max_p99_ratio is not None and shifted in live:
            self._ratio(shifted, subsets, live, result)
        return result

    def _p99(self, name: str, health: SubsetHealth, result: GateResult) -> None:
        if self.max_p99_ms is None:
            return
        if health.p99_ms is None or health.answers < MIN_FOR_P99:
            result.notes.append(f"{name}: {health.answers} answers, too few to judge a p99 (needs {MIN_FOR_P99})")
        elif health.p99_ms > self.max_p99_ms:
            result.problems.append(f"{name} p99 {health.p99_ms:.1f} ms over --max-p99 {self.max_p99_ms:g} ms "
                                   f"({health.answers:,} answers)")

    def _errors(self, name: str, health: SubsetHealth, result: GateResult) -> None:
        if self.max_errors is None or not health.requests:
            return
        share = (health.errors or 0) / health.requests
        if share > self.max_errors:
            result.problems.append(f"{name} answered {health.errors:,} of {health.requests:,} requests with a 5xx "
                                   f"({share:.2%}), over --max-errors {self.max_errors:.2%}")

    def _ratio(self, shifted: str, subsets: Mapping[str, SubsetHealth], live: list[str],
               result: GateResult) -> None:
        assert self.max_p99_ratio is not None
        mine = subsets.get(shifted)
        others = [(n, subsets[n]) for n in live if n != shifted and n in subsets
                  and subsets[n].p99_ms is not None and subsets[n].answers >= MIN_FOR_P99]
        if mine is None or mine.p99_ms is None or mine.answers < MIN_FOR_P99:
            result.notes.append(f"{shifted}: too few answers for its p99 against the others' (needs {MIN_FOR_P99})")
            return
        if not others:
            result.notes.append(f"no other subset gave {MIN_FOR_P99} answers to compare {shifted}'s p99 with")
            return
        name, worst = max(others, key=lambda item: item[1].p99_ms or 0.0)
        assert worst.p99_ms is not None
        ratio = mine.p99_ms / worst.p99_ms if worst.p99_ms > 0 else float("inf")
        if ratio > self.max_p99_ratio:
            result.problems.append(f"{shifted} p99 {mine.p99_ms:.1f} ms is {ratio:.2f} x {name}'s {worst.p99_ms:.1f} "
                                   f"ms, over --max-p99-ratio {self.max_p99_ratio:g}")


def parse_gate(max_p99: str | None, max_errors: str | None, max_p99_ratio: str | float | None) -> LatencyGate:
    """The gate from ``--max-p99``, ``--max-errors`` and ``--max-p99-ratio`` as typed, each checked so
    that it can trip: a latency finite and above 0, an error share 0 to 100 % (0: no 5xx at all), a
    ratio finite and at least 1. nan or inf would make a gate that never trips (every comparison with
    nan is false; nothing is above inf). Raises UsageError naming the option."""
    return LatencyGate(max_p99_ms=_ms(max_p99, "--max-p99"), max_errors=_share(max_errors, "--max-errors"),
                       max_p99_ratio=_ratio(max_p99_ratio, "--max-p99-ratio"))


def _share(text: str | None, option: str) -> float | None:
    """``1%`` or ``0.5`` (percent) -> a share."""
    if text is None:
        return None
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        raise UsageError(f"{option} {text!r}: give a percentage like 1% or 0.5") from None
    if not 0 <= value <= 100:  # nan fails this too
        raise UsageError(f"{option} {text!r} must be between 0 and 100 %")
    return value / 100


def _ms(text: str | None, option: str) -> float | None:
    """``50ms``, ``0.2s`` or a plain number of milliseconds."""
    if text is None:
        return None
    raw = text.strip().lower()
    try:
        value = float(raw[:-2]) if raw.endswith("ms") else float(raw[:-1]) * 1000 if raw.endswith("s") \
            else float(raw)
    except ValueError:
        raise UsageError(f"{option} {text!r}: give a latency like 50ms or 0.2s") from None
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{option} {text!r} must be a finite latency more than 0, like 50ms")
    return value


def _ratio(value: str | float | None, option: str) -> float | None:
    if value is None:
        return None
    try:
        ratio = float(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: give a ratio like 1.2") from None
    if not (math.isfinite(ratio) and ratio >= 1):
        raise UsageError(f"{option} {value!r} must be a finite ratio of at least 1, like 1.2")
    return ratio
