"""The service-splitter a shift moves, written only with check-and-set.

:func:`read_start` takes the splitter as it is (or, when there is none, the resolver's default
subset at 100 %) as the starting point and the **rollback point**. :class:`SplitterWriter`
writes each step as a whole entry with ``?cas=<ModifyIndex>`` of the entry it last saw, so a
change by anyone else in between is detected (:class:`ConcurrentChange`) instead of being
overwritten; rolling back restores the entry found (or deletes the one the shift created),
again with CAS, so it never undoes someone else's later write.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import ExitCode, LoadgenError, UsageError
from loadgen.mesh.consul_api import ConsulClient

__all__ = ["ConcurrentChange", "SplitterWriter", "StartPoint", "read_start"]

SPLITTER = "service-splitter"
RESOLVER = "service-resolver"
SERVER_FIELDS = ("CreateIndex", "ModifyIndex", "Hash")


class ConcurrentChange(LoadgenError):
    """Someone else wrote the splitter while the shift ran (its CAS failed)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.FAIL)


@dataclass(frozen=True)
class StartPoint:
    """The splitter before the shift: the weights (percent, in its order) and the entry itself."""

    service: str
    weights: dict[str, float]
    entry: dict[str, Any] | None  # None: no splitter (the shift creates one; rollback deletes it)
    modify_index: int  # the entry's; 0 when there is none
    subsets: tuple[str, ...]  # the resolver's

    def describe(self) -> str:
        split = "/".join(f"{w:g}" for w in self.weights.values())
        names = "/".join(self.weights)
        return (f"service-splitter {self.service} {names} {split}" if self.entry is not None
                else f"no service-splitter for {self.service}: resolver default subset "
                     f"{next(n for n, w in self.weights.items() if w == 100)} takes 100 %")


def read_start(consul: ConsulClient, service: str) -> StartPoint:
    """The starting point; one line (exit 2) when there is nothing a shift can move."""
    resolver = consul.get_config(RESOLVER, service) or {}
    subsets = tuple(sorted((resolver.get("Subsets") or {}), key=_natural))
    entry = consul.get_config(SPLITTER, service)
    if entry is None:
        if len(subsets) < 2:
            raise UsageError(f"{service} has no service-splitter and its service-resolver defines "
                             f"{len(subsets) or 'no'} subset{'s' if len(subsets) != 1 else ''}: a shift needs at "
                             "least two subsets to move traffic between")
        default = resolver.get("DefaultSubset") or ""
        if default not in subsets:
            raise UsageError(f"{service} has no service-splitter and its resolver has no DefaultSubset among "
                             f"{', '.join(subsets)}: cannot tell which subset takes the traffic now")
        ordered = (default, *(s for s in subsets if s != default))
        return StartPoint(service, {s: 100.0 if s == default else 0.0 for s in ordered}, None, 0, subsets)
    weights: dict[str, float] = {}
    for split in entry.get("Splits") or []:
        other = split.get("Service")
        if other and other != service:
            raise UsageError(f"the service-splitter {service} sends part of its traffic to service {other}: a shift "
                             f"moves weight between subsets of {service} only")
        subset = split.get("ServiceSubset") or ""
        if not subset:
            raise UsageError(f"the service-splitter {service} has a leg with no ServiceSubset: a shift moves "
                             "weight between named subsets")
        if subset in weights:
            raise UsageError(f"the service-splitter {service} names subset {subset} twice")
        if subset not in subsets:
            raise UsageError(f"the service-splitter {service} sends traffic to subset {subset}, which its "
                             f"service-resolver does not define ({', '.join(subsets) or 'no subsets'})")
        weights[subset] = float(split.get("Weight", 0))
    if len(weights) < 2:
        raise UsageError(f"the service-splitter {service} has {len(weights)} leg(s): a shift needs two or more")
    return StartPoint(service, weights, _as_written(entry), int(entry.get("ModifyIndex", 0)), subsets)


def with_weights(start: StartPoint, weights: Mapping[str, float]) -> dict[str, Any]:
    """The whole entry to write for ``weights``: the start's with only the legs' weights changed
    (a new entry with one leg per subset when there was none)."""
    if start.entry is None:
        return {"Kind": SPLITTER, "Name": start.service,
                "Splits": [{"Weight": _number(weights[s]), "ServiceSubset": s} for s in weights]}
    entry = copy.deepcopy(start.entry)
    for split in entry["Splits"]:
        split["Weight"] = _number(weights[split["ServiceSubset"]])
    return entry


@dataclass
class SplitterWriter:
    """Writes steps and the rollback with CAS, and remembers what it wrote."""

    consul: ConsulClient
    start: StartPoint
    index: int = 0  # ModifyIndex of the entry as this writer last wrote (or found) it
    writes: list[dict[str, Any]] = field(default_factory=list)  # what was written, in order

    def __post_init__(self) -> None:
        self.index = self.start.modify_index

    @property
    def changed(self) -> bool:
        return bool(self.writes)

    def write(self, weights: Mapping[str, float]) -> int:
        """Write one step; returns the entry's new ModifyIndex. ConcurrentChange when the entry is
        no longer the one this writer last saw."""
        entry = with_weights(self.start, weights)
        if not self.consul.write_config_cas(entry, self.index):
            raise ConcurrentChange(self._changed_by_someone("before writing " + _label(weights)))
        self.index = self._index_of(weights)
        self.writes.append({"weights": dict(weights), "modify_index": self.index})
        return self.index

    def adopt(self, weights: Mapping[str, float]) -> int:
        """Take the entry as written by someone else on our behalf (--apply-cmd): its index becomes
        the one the rollback checks against."""
        self.index = self._index_of(weights)
        self.writes.append({"weights": dict(weights), "modify_index": self.index, "by": "apply-cmd"})
        return self.index

    def rollback(self) -> int | None:
        """Put the start back (CAS on what this writer last wrote): the new ModifyIndex, or None
        when the start had no splitter and the one created was deleted."""
        if self.start.entry is None:
            if not self.consul.delete_config_cas(SPLITTER, self.start.service, self.index):
                raise ConcurrentChange(self._changed_by_someone("before the rollback"))
            self.index = 0
            return None
        if not self.consul.write_config_cas(copy.deepcopy(self.start.entry), self.index):
            raise ConcurrentChange(self._changed_by_someone("before the rollback"))
        self.index = self._index_of(self.start.weights)
        return self.index

    def check(self, when: str) -> None:
        """ConcurrentChange when the splitter is no longer the one this writer last wrote or found."""
        entry = self.current()
        now = 0 if entry is None else int(entry.get("ModifyIndex", 0))
        if now != self.index:
            raise ConcurrentChange(self._changed_by_someone(when))

    def current(self) -> dict[str, Any] | None:
        return self.consul.get_config(SPLITTER, self.start.service)

    def _index_of(self, weights: Mapping[str, float]) -> int:
        entry = self.current()
        if entry is None:
            raise ConcurrentChange(f"the service-splitter {self.start.service} is gone right after it was written: "
                                   "someone else deleted it")
        found = {s.get("ServiceSubset"): float(s.get("Weight", 0)) for s in entry.get("Splits") or []}
        if any(abs(found.get(k, -1) - float(v)) > 0.005 for k, v in weights.items()):
            raise ConcurrentChange(f"the service-splitter {self.start.service} reads {_label(found)} right after "
                                   f"{_label(weights)} was written: someone else wrote it in between")
        return int(entry.get("ModifyIndex", 0))

    def _changed_by_someone(self, when: str) -> str:
        entry = self.current()
        if entry is None:
            now = "deleted"
        else:
            legs = {s.get("ServiceSubset"): s.get("Weight") for s in entry.get("Splits") or []}
            now = f"at ModifyIndex {entry.get('ModifyIndex')} ({_label(legs)})"
        return (f"someone else changed the service-splitter {self.start.service} {when}: the shift last saw "
                f"ModifyIndex {self.index}, Consul has it {now}")


def _as_written(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in entry.items() if k not in SERVER_FIELDS}


def _number(w: float) -> float | int:
    return int(w) if float(w).is_integer() else round(float(w), 2)


def _label(weights: Mapping[Any, Any]) -> str:
    return ",".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}" for k, v in weights.items())


def _natural(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
