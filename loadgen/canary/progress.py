"""What a running canary shows after each look (the live status line reads it)."""

from __future__ import annotations

from dataclasses import dataclass

from loadgen.stats import Verdict

__all__ = ["Snapshot"]


@dataclass
class Snapshot:
    verdict: Verdict
    sent: int
    elapsed: float
    errors: int
