"""How the generator itself did (the ``generator`` part of summary.json, and the canary's).

A plain typed record: the engine's :class:`RunStats` makes one, the run adds how many worker
processes there were, and ``to_json`` gives the dict written to disk. A field left ``None`` is
not written -- the canary's health has no ``workers``, and summary.json files of older runs
lack some fields (``loadgen report`` reads them as None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["TARGET_HELD_SLOTS", "GeneratorHealth", "WorkerLoad"]

# Why requests started late or were dropped when the target, not the generator, held every
# connection (the engine's RunStats.waited_for_target): said in the problems, and the canary's
# warning names the target instead of the generator on seeing it.
TARGET_HELD_SLOTS = "every connection was waiting on the target's answers: the target is not answering, or too slowly"


@dataclass(frozen=True)
class WorkerLoad:
    """One worker process's share of a ``--workers`` run (unrounded, as it reported it)."""

    sent: int
    late: int
    dropped: int
    cpu_share: float
    elapsed: float

    def to_json(self) -> dict[str, Any]:
        return {"sent": self.sent, "late": self.late, "dropped": self.dropped, "cpu_share": self.cpu_share,
                "elapsed": self.elapsed}


@dataclass(frozen=True)
class GeneratorHealth:
    valid: bool | None = None  # False: the numbers are not trustworthy (see problems)
    problems: list[str] = field(default_factory=list)
    late: int | None = None
    late_share: float | None = None
    max_late_ms: float | None = None
    dropped: int | None = None  # due by the deadline, never sent
    dropped_share: float | None = None
    cpu_share: float | None = None  # of one core; the busiest worker's with --workers
    workers: int | None = None
    per_worker: list[WorkerLoad] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (("valid", self.valid), ("problems", list(self.problems)), ("late", self.late),
                           ("late_share", self.late_share), ("max_late_ms", self.max_late_ms),
                           ("dropped", self.dropped), ("dropped_share", self.dropped_share),
                           ("cpu_share", self.cpu_share), ("workers", self.workers)):
            if value is not None:
                out[key] = value
        if self.per_worker is not None:
            out["per_worker"] = [w.to_json() for w in self.per_worker]
        return out
