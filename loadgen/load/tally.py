"""Tally: what every consumer of samples keeps, in bounded memory -- one type for all of them.

``loadgen run`` (one process or each worker), ``loadgen canary`` and the Locust plugin all
turn samples into the same three things: HDR latency histograms (a :class:`LatencyBook`),
answers per APP_ID, and failures per kind. A tally encodes to plain JSON-able data and
merges exactly (counts add, histograms add), so N worker processes -- loadgen's own or
Locust's -- report their tallies and the parent sums them, with no averaging of percentiles.

Like Vegeta's ``Metrics.Add(result)``: one ``add(sample)``, whoever the consumer is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from loadgen.load.histograms import LatencyBook
from loadgen.load.sample import Sample

__all__ = ["Tally", "error_kind"]


def error_kind(sample: Sample) -> str:
    """The name a failed sample is counted under: its transport error, else its HTTP status."""
    return sample.error or f"http_{sample.status}"


class Tally:
    """Latency histograms, answers per APP_ID and failures per kind, from a stream of samples."""

    def __init__(self) -> None:
        self.book = LatencyBook()
        self.app_ids: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def add(self, sample: Sample) -> None:
        self.book.record(sample)
        if sample.ok:
            assert sample.app_id is not None  # Sample.ok implies it
            self.app_ids[sample.app_id] += 1
        else:
            self.errors[error_kind(sample)] += 1

    @property
    def answered(self) -> int:
        """Usable answers (each with an APP_ID)."""
        return sum(self.app_ids.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def sent(self) -> int:
        """Requests answered or failed so far (every sample counts once)."""
        return self.answered + self.error_count

    def latency_summary(self) -> dict[str, float | int]:
        """The corrected latency of every request, or {} when nothing was measured."""
        summary = self.book.summary()
        return summary if summary.get("count") else {}

    # -- exact merging across processes ----------------------------------------------------
    def encode(self) -> dict[str, Any]:
        """Plain data (JSON- and pickle-able) that :meth:`merge` adds back exactly."""
        return {"app_ids": dict(self.app_ids), "errors": dict(self.errors), "book": self.book.encode()}

    def merge(self, encoded: dict[str, Any]) -> None:
        self.app_ids.update(encoded["app_ids"])
        self.errors.update(encoded["errors"])
        self.book.merge(encoded["book"])

    @classmethod
    def merged(cls, parts: Iterable[dict[str, Any]]) -> Tally:
        tally = cls()
        for part in parts:
            tally.merge(part)
        return tally
