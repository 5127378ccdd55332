"""What ``loadgen intentions`` found: typed results, their summary and their ``--json`` form.

The command prints these and writes :meth:`IntentionsReport.to_json`; nothing here measures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.probes.intention_phase import PhaseResult
from loadgen.report.junit import TestCase, TestSuite, render


@dataclass(frozen=True)
class Distribution:
    """One figure over the repeats, in ms; ``n`` counts the repeats where it happened at all."""

    n: int
    min: float | None = None
    median: float | None = None
    p95: float | None = None
    max: float | None = None
    missing: int = 0  # repeats where it never happened (e.g. pooled connections that kept flowing)

    @classmethod
    def of(cls, values: list[float | None]) -> Distribution:
        import numpy as np  # here, not at the top: `loadgen intentions --help` must not pay for it

        vals = [v for v in values if v is not None]
        if not vals:
            return cls(n=0)
        arr = np.asarray(vals)
        return cls(n=len(vals), min=round(float(arr.min()), 1), median=round(float(np.median(arr)), 1),
                   p95=round(float(np.percentile(arr, 95)), 1), max=round(float(arr.max()), 1),
                   missing=len(values) - len(vals))

    def to_json(self) -> dict[str, float | int | None]:
        if self.n == 0:
            return {"n": 0}
        return {"n": self.n, "min": self.min, "median": self.median, "p95": self.p95, "max": self.max,
                "missing": self.missing}


# The figures summarised over the repeats, by their JSON key, in the JSON's order.
FIGURES: dict[str, Callable[[PhaseResult], float | None]] = {
    "first_new_connection": lambda p: p.first_ms.get("new"),
    "all_new_connections": lambda p: p.all_ms.get("new"),
    "envoy_all_sidecars": lambda p: p.all_sidecars_ms,
    "first_pooled": lambda p: p.first_ms.get("pooled"),
    "all_pooled": lambda p: p.all_ms.get("pooled"),
}


@dataclass
class IntentionCycle:
    """One repeat: the deny written and timed, then removed and the allow timed."""

    deny: PhaseResult
    allow: PhaseResult

    def violations(self, strict: bool) -> int:
        """New-connection requests that passed a deny in force (with ``strict`` pooled ones too)."""
        return self.deny.violations + (self.deny.pooled_violations if strict else 0)

    def to_json(self) -> dict[str, Any]:
        return {"deny": self.deny.to_json(), "allow": self.allow.to_json()}


@dataclass
class ProtocolResult:
    """Every repeat on one protocol ("tcp", "http", or "target" for a given deployment)."""

    protocol: str
    cycles: list[IntentionCycle]
    plots: list[Path] = field(default_factory=list)

    def distributions(self, action: str) -> dict[str, Distribution]:
        """Each of :data:`FIGURES` over the repeats' ``action`` ("deny" or "allow") phases."""
        phases = [getattr(c, action) for c in self.cycles]
        return {key: Distribution.of([figure(p) for p in phases]) for key, figure in FIGURES.items()}

    def violations(self, strict: bool) -> int:
        return sum(c.violations(strict) for c in self.cycles)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repeats": [c.to_json() for c in self.cycles]}
        for action in ("deny", "allow"):
            out[f"{action}_distribution_ms"] = {k: d.to_json() for k, d in self.distributions(action).items()}
        out["plots"] = [str(p) for p in self.plots]
        return out


@dataclass
class IntentionsReport:
    """Everything one ``loadgen intentions`` measured."""

    rate: float  # new-connection requests per second: the timing's resolution is 1/rate
    strict: bool  # pooled-connection successes after the deny count as violations too
    protocols: dict[str, ProtocolResult] = field(default_factory=dict)

    @property
    def resolution_ms(self) -> float:
        return round(1000 / self.rate, 2)

    @property
    def violations(self) -> int:
        return sum(r.violations(self.strict) for r in self.protocols.values())

    def to_json(self) -> dict[str, Any]:
        return {"resolution_ms": self.resolution_ms,
                "protocols": {name: r.to_json() for name, r in self.protocols.items()},
                "violations": self.violations}

    def junit(self) -> str:
        """One testcase per protocol and repeat: failed when requests passed the deny in force
        (the exit code's violations), with the deny's and the allow's timings as its output."""
        suite = "loadgen intentions"
        cases = []
        for proto, result in self.protocols.items():
            for i, cycle in enumerate(result.cycles, start=1):
                d, a = cycle.deny, cycle.allow
                text = (f"ms after the write: deny shown by every sidecar {_ms(d.all_sidecars_ms)}, first denied "
                        f"{_ms(d.first_ms.get('new'))}, all new denied {_ms(d.all_ms.get('new'))}; allow shown "
                        f"{_ms(a.all_sidecars_ms)}, all new reached again {_ms(a.all_ms.get('new'))}")
                bad = cycle.violations(self.strict)
                name = f"{proto} repeat {i}"
                cases.append(TestCase(name, suite, failure=f"{bad} request(s) reached service-b after every sidecar "
                                                          "showed the deny", failure_type="Violation",
                                      failure_text=text) if bad else TestCase(name, suite, system_out=text))
        return render(TestSuite(suite, cases, properties={"resolution_ms": f"{self.resolution_ms:g}",
                                                          "strict": str(self.strict).lower()}))


def _ms(v: float | None) -> str:
    return "never" if v is None else f"{v:.0f}"
