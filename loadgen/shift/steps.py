"""The weights of each step of a progressive shift, from what the user typed: pure.

Two forms:

* ``--subset v2 --steps 25,50,100``: the named subset gets each step's share; the other
  subsets keep their relative proportions of the starting split (from 85/15: 75/25, 50/50,
  0/100). When every other subset is at 0, they share what is left equally.
* ``--steps 90/10,50/50,0/100`` or ``v1=90,v2=10;...``: whole splits, in the order of the
  starting split's subsets (or named).

Weights are percentages with Consul's resolution (two decimals); each step adds up to exactly
100. The named subset's share must go up at every step (a shift moves traffic one way); whole
splits must differ from the previous one. Anything else is a :class:`UsageError` (exit 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadgen.errors import UsageError
from loadgen.shown import shown
from loadgen.stats.spec import SpecError, SplitSpec

__all__ = ["ShiftStep", "check_steps", "plan_steps"]

RESOLUTION = 100  # Consul keeps splitter weights to two decimals


@dataclass(frozen=True)
class ShiftStep:
    """One step: the whole split to write, in percent per subset (ordered as the start)."""

    index: int  # 1-based
    weights: dict[str, float]

    @property
    def spec(self) -> SplitSpec:
        return SplitSpec(tuple(self.weights), tuple(w / 100 for w in self.weights.values()))

    def label(self) -> str:
        return "/".join(_pct(w) for w in self.weights.values())

    def env(self) -> dict[str, str]:
        """What --apply-cmd gets: LOADGEN_WEIGHTS=v1=75,v2=25 and LOADGEN_WEIGHT_<SUBSET>=75."""
        out = {"LOADGEN_WEIGHTS": ",".join(f"{n}={_pct(w)}" for n, w in self.weights.items()),
               "LOADGEN_STEP": str(self.index)}
        for name, w in self.weights.items():
            out["LOADGEN_WEIGHT_" + "".join(c if c.isalnum() else "_" for c in name).upper()] = _pct(w)
        return out


def plan_steps(steps: str, start: Mapping[str, float], subset: str | None = None) -> list[ShiftStep]:
    """The steps from ``start`` (percent per subset, in the splitter's order)."""
    names = list(start)
    if len(names) < 2:
        raise UsageError(f"a shift needs at least two subsets to move traffic between; the start has {names}")
    if subset is not None:
        return _shares([p.strip() for p in steps.split(",")], start, subset)
    if "/" not in steps and "=" not in steps:
        raise UsageError("--steps with shares like 5,25,50,100 needs --subset NAME (the subset that gets them); "
                         "or give whole splits like 90/10,50/50,0/100")
    # "90/10,50/50" separates steps by commas; "v1=90,v2=10;v1=50,v2=50" by semicolons.
    return _splits([p.strip() for p in steps.split(";" if "=" in steps else ",")], names, start)


def _shares(parts: list[str], start: Mapping[str, float], subset: str) -> list[ShiftStep]:
    if subset not in start:
        raise UsageError(f"--subset {subset!r} is not in the splitter (its subsets: {', '.join(start)})")
    shares = []
    for p in parts:
        try:
            value = float(p.rstrip("%"))
        except ValueError:
            raise UsageError(f"--steps: {p!r} is not a share in percent (like 5,25,50,100)") from None
        if not 0 < value <= 100:
            raise UsageError(f"--steps: {p!r} must be more than 0 and at most 100 (percent of traffic to {subset})")
        shares.append(value)
    previous, after = start[subset], f"{subset}'s {_pct(start[subset])} % now"
    for value in shares:
        if value <= previous:
            raise UsageError(f"--steps must go up: {_pct(value)} comes after {after}")
        previous, after = value, _pct(value)
    others = {n: w for n, w in start.items() if n != subset}
    out = []
    for i, share in enumerate(shares, start=1):
        rest = 100.0 - share
        total = sum(others.values())
        raw = {n: (rest * w / total if total > 0 else rest / len(others)) for n, w in others.items()}
        weights = _rounded({**raw, subset: share}, keep=subset)
        out.append(ShiftStep(i, {n: weights[n] for n in start}))
    return out


def _splits(parts: list[str], names: Sequence[str], start: Mapping[str, float]) -> list[ShiftStep]:
    out: list[ShiftStep] = []
    previous = dict(start)
    for i, p in enumerate(parts, start=1):
        try:
            spec = SplitSpec.parse(p, names=names)
        except SpecError as exc:
            raise UsageError(f"--steps: step {i} {p!r}: {exc}") from None
        if set(spec.names) != set(names):
            raise UsageError(f"--steps: step {i} {p!r} names {', '.join(spec.names)}; the splitter's subsets are "
                             f"{', '.join(names)}")
        weights = _rounded({n: spec.weight(n) * 100 for n in names})
        if weights == {n: round(previous[n], 2) for n in names}:
            raise UsageError(f"--steps: step {i} {p!r} is the split already in force before it")
        out.append(ShiftStep(i, weights))
        previous = weights
    return out


def _rounded(weights: dict[str, float], keep: str | None = None) -> dict[str, float]:
    """Two decimals each, adding up to exactly 100: the remainder goes to the largest weight that
    is not ``keep`` (the named subset gets exactly its share)."""
    units = {n: round(w * RESOLUTION) for n, w in weights.items()}
    gap = 100 * RESOLUTION - sum(units.values())
    if gap:
        adjustable = [n for n in units if n != keep] or list(units)
        largest = max(adjustable, key=lambda n: units[n])
        units[largest] += gap
    return {n: u / RESOLUTION for n, u in units.items()}


def _pct(w: float) -> str:
    return f"{w:.2f}".rstrip("0").rstrip(".")


def check_steps(steps: str, subset: str | None) -> None:
    """What of ``--steps`` can be checked before the splitter is read: each share a number above 0
    and at most 100, going up (with ``subset``), or each whole split a split (without). The rest
    (the subsets' names, the first step against the split in force) is checked by
    :func:`plan_steps` once the starting point is known, still before anything is written."""
    if not steps.strip():
        raise UsageError("--steps is empty: give shares like 25,50,100 (with --subset) or splits like 90/10,50/50")
    if subset is not None:
        if not subset.strip():
            raise UsageError("--subset is empty: give the subset the --steps shares go to, like v2")
        start = {"": 0.0, subset: 0.0}  # a stand-in start: only the shares themselves are checked here
        _shares([p.strip() for p in steps.split(",")], start, subset)
        return
    if "/" not in steps and "=" not in steps:
        raise UsageError("--steps with shares like 5,25,50,100 needs --subset NAME (the subset that gets them); "
                         "or give whole splits like 90/10,50/50,0/100")
    for i, p in enumerate((p.strip() for p in steps.split(";" if "=" in steps else ",")), start=1):
        try:
            SplitSpec.parse(p)
        except SpecError as exc:
            raise UsageError(f"--steps: step {i} {shown(p)}: {exc}") from None
