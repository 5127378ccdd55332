"""How far each subset's true share may be from its weight: the band the judge proves a share inside.

A fixed +-2 points swallows a 1 % canary whole (0-3 % includes "no traffic at all"), so the
band follows the weight:

* absolute tolerance ``t`` points (``--tolerance 2``): each subset gets +- min(t, w / 2), so
  85/15 keeps +-2 points and 99/1 gets +-0.5;
* relative tolerance ``r`` (``--tolerance 20%``): each subset gets +- r * w (r at most 50 %).

Either way a subset expected above 0 has a band that excludes 0, so a dead canary can never
PASS. With two subsets one share decides both, so both get the narrower of their two bands
(99/1: +-0.5 for v1 as well as v2). A subset expected at 0 must get no traffic at all; its
band, shown for the record, is [0, the narrowest half-width of the others].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from loadgen.shown import shown
from loadgen.stats.spec import SpecError


@dataclass(frozen=True)
class Tolerance:
    """``value`` is points as a fraction (0.02) when absolute, or a fraction of each weight when relative."""

    value: float = 0.02
    relative: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise SpecError(f"tolerance must be a number, got {self.value}")
        if self.relative and not 0 < self.value <= 0.5:
            raise SpecError(f"a relative tolerance must be above 0 and at most 50 % of each weight, got "
                             f"{self.value * 100:g} %")
        if not self.relative and not 0 < self.value < 0.5:
            raise SpecError(f"tolerance must be between 0 and 50 percentage points, got {self.value * 100:g}")

    @classmethod
    def parse(cls, text: str | float) -> Tolerance:
        """``2`` or ``2.5`` -> points; ``20%`` -> 20 % of each weight."""
        raw = str(text).strip()
        relative = raw.endswith("%")
        number = raw.removesuffix("%").strip()
        try:
            value = float(number)
        except ValueError:
            raise SpecError(f"cannot read tolerance {shown(raw)}: give points like 2, or a share of each weight "
                             "like 20%") from None
        return cls(value / 100, relative)

    def describe(self) -> str:
        if self.relative:
            return f"+-{self.value * 100:.4g} % of each weight"
        return f"+-{self.value * 100:.4g} points (at most half of each weight)"

    def own_half_width(self, weight: float) -> float:
        """The half-width a subset expected at ``weight`` (> 0) would get on its own."""
        return self.value * weight if self.relative else min(self.value, weight / 2)


def half_widths(weights: Sequence[float], tolerance: Tolerance) -> tuple[float, ...]:
    """One half-width per subset (fractions)."""
    positive = [tolerance.own_half_width(w) for w in weights if w > 0]
    narrowest = min(positive)
    if len(weights) == 2:
        return (narrowest, narrowest)
    return tuple(tolerance.own_half_width(w) if w > 0 else narrowest for w in weights)


def format_band(band: tuple[float, float]) -> str:
    """``0.5-1.5 %``, ``83-87 %``, ``99.85-99.95 %``: as many digits as the band has, no more."""
    return f"{band[0] * 100:.4g}-{band[1] * 100:.4g} %"


def band_of(weight: float, half_width: float) -> tuple[float, float]:
    """The interval a subset's true share must be proved inside, clipped to [0, 1]."""
    if weight == 0:
        return 0.0, half_width
    return max(0.0, weight - half_width), min(1.0, weight + half_width)
