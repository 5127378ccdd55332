"""SplitSpec: the split a user expects, parsed from what they type or from a service-splitter.

Accepted forms (weights are percentages and must add up to 100):

* ``85/15``, ``70/20/10`` -- positional; subsets are named ``v1``, ``v2``, ... unless the
  caller supplies names (e.g. the resolver's subsets in order);
* ``v1=85,v2=15`` -- named;
* a ``service-splitter`` config entry (``Splits`` with ``Weight`` and ``ServiceSubset``).

Anything else raises :class:`SpecError` with a message saying what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadgen.errors import UsageError
from loadgen.shown import shown

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
EXPECTED_FORMS = "expected weights in percent adding up to 100, like 85/15, 70/20/10 or v1=85,v2=15"


class SpecError(UsageError):
    """A split or mapping the user typed cannot be understood (exit code 2)."""


@dataclass(frozen=True)
class SplitSpec:
    """Ordered subset names and their expected shares (fractions that add up to 1)."""

    names: tuple[str, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.names) != len(self.weights):
            raise SpecError("a split needs one weight per subset")
        if len(self.names) < 2:
            raise SpecError(f"a split needs at least 2 subsets; {EXPECTED_FORMS}")
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise SpecError(f"subset {dup[0]!r} is named twice; {EXPECTED_FORMS}")
        for name, w in zip(self.names, self.weights, strict=True):
            if not math.isfinite(w) or w < 0 or w > 1:
                raise SpecError(f"weight of {name} must be between 0 and 100, got {w * 100:g}")
        total = sum(self.weights)
        if abs(total - 1.0) > 1e-9:
            raise SpecError(f"weights add up to {total * 100:g}, not 100; {EXPECTED_FORMS}")

    @property
    def k(self) -> int:
        return len(self.names)

    def weight(self, name: str) -> float:
        return self.weights[self.names.index(name)]

    def as_percent(self) -> str:
        """``v1=85,v2=15`` -- the canonical text form."""
        return ",".join(f"{n}={_pct(w)}" for n, w in zip(self.names, self.weights, strict=True))

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.weights, strict=True))

    # -- constructors ---------------------------------------------------------------
    @classmethod
    def parse(cls, text: str, names: Sequence[str] | None = None) -> SplitSpec:
        """Parse ``85/15`` (positional; ``names`` or v1, v2, ...) or ``v1=85,v2=15``."""
        raw = text.strip()
        if not raw:
            raise SpecError(f"empty split; {EXPECTED_FORMS}")
        if "=" in raw:
            pairs = [p.strip() for p in raw.split(",")]
            parsed: list[tuple[str, float]] = []
            for pair in pairs:
                name, sep, value = pair.partition("=")
                name = name.strip()
                if not sep or not _NAME.match(name):
                    raise SpecError(f"cannot read {shown(pair)} in {shown(text)}; {EXPECTED_FORMS}")
                parsed.append((name, _percent(value, text)))
            return cls(tuple(n for n, _ in parsed), tuple(w / 100 for _, w in parsed))
        parts = raw.split("/")
        weights = [_percent(p, text) for p in parts]
        if len(weights) < 2:
            raise SpecError(f"{shown(text)} names one weight only; {EXPECTED_FORMS}")
        if names is None:
            names = [f"v{i + 1}" for i in range(len(weights))]
        elif len(names) != len(weights):
            raise SpecError(
                f"{shown(text)} has {len(weights)} weights but the service has {len(names)} subsets "
                f"({', '.join(names)}); name them, like {'=..,'.join(names)}=.."
            )
        return cls(tuple(names), tuple(w / 100 for w in weights))

    @classmethod
    def from_splitter(cls, entry: Mapping[str, Any]) -> SplitSpec:
        """The split a ``service-splitter`` config entry asks for."""
        if entry.get("Kind") not in (None, "service-splitter"):
            raise SpecError(f"expected a service-splitter config entry, got {entry.get('Kind')}")
        splits = entry.get("Splits") or []
        if not splits:
            raise SpecError("the service-splitter has no Splits")
        names, weights = [], []
        for split in splits:
            subset = split.get("ServiceSubset") or split.get("Service") or entry.get("Name", "")
            names.append(str(subset))
            weights.append(float(split.get("Weight", 0)) / 100)
        return cls(tuple(names), tuple(weights))


def _percent(value: str, text: str) -> float:
    value = value.strip().removesuffix("%")
    where = f" in {shown(text)}"
    try:
        pct = float(value)
    except ValueError:
        raise SpecError(f"{shown(value)}{where} is not a number; {EXPECTED_FORMS}") from None
    if not math.isfinite(pct) or pct < 0 or pct > 100:
        raise SpecError(f"weight {shown(value).strip(chr(39))}{where} is not between 0 and 100; {EXPECTED_FORMS}")
    return pct


def _pct(w: float) -> str:
    return f"{w * 100:.4g}"


def parse_app_id_map(text: str) -> dict[str, str]:
    """``1=v1,2=v2`` -> {"1": "v1", "2": "v2"} (APP_ID -> subset)."""
    mapping: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",")):
        app_id, sep, subset = (s.strip() for s in pair.partition("="))
        if not sep or not app_id or not _NAME.match(subset or "-"):
            raise SpecError(f"cannot read {shown(pair)} in --map {shown(text)}; expected APP_ID=SUBSET pairs like "
                            "1=v1,2=v2")
        if app_id in mapping:
            raise SpecError(f"APP_ID {app_id} is mapped twice in --map {shown(text)}")
        mapping[app_id] = subset
    return mapping
