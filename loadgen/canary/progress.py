"""What a running canary shows after each look (the live status line reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from loadgen.stats import Verdict

if TYPE_CHECKING:
    from loadgen.canary.worse import WorseResult

__all__ = ["Snapshot"]


@dataclass
class Snapshot:
    verdict: Verdict
    sent: int
    elapsed: float
    errors: int
    comparisons: WorseResult | None = None  # the look's latency/error comparisons, when asked for
