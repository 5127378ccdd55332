"""One timed phase of the intentions probe (a deny or an allow), worked out from what was seen.

Pure: observations, the write's instant and each sidecar's instant in, a :class:`PhaseResult`
out. No clock and no network, so tests/unit/test_probes_pure.py drives it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadgen.probes.watch import Observation


def outcome(o: Observation) -> str:
    """"ok", "denied" (how Envoy's RBAC refuses: a 403 with http, a reset with tcp) or "error"."""
    s = o.sample
    if s.ok:
        return "ok"
    if s.status == 403 or s.error in ("reset", "bad_response") or (s.error or "").startswith("http_403"):
        return "denied"
    return "error"


def when_all_sidecars_showed(envoy_ms: dict[str, float | None]) -> float | None:
    """The instant the last sidecar showed the change; None unless every sidecar did.

    The one figure behind "envoy" in the progress line, the table, the plots' "all sidecars show
    it" and the JSON's ``envoy_all_sidecars``: a sidecar that never showed it means never.
    """
    shown = [v for v in envoy_ms.values() if v is not None]
    return max(shown) if shown and len(shown) == len(envoy_ms) else None


@dataclass
class PhaseResult:
    action: str  # "deny" or "allow"
    write_index: int
    first_ms: dict[str, float | None]  # per stream: first request with the new outcome
    all_ms: dict[str, float | None]  # per stream: from when every request had the new outcome
    envoy_ms: dict[str, float | None]  # per sidecar: when its config showed the change
    pooled_after_ms: float | None  # pooled stream: how long old-outcome requests kept coming after envoy
    violations: int  # new-connection successes after every sidecar showed the deny
    violation_window_ms: float | None  # how long after that the last of them was sent
    pooled_violations: int
    requests: dict[str, int]
    timeline: list[tuple[float, str, str]] = field(default_factory=list)  # (ms since write, stream, outcome)

    @property
    def all_sidecars_ms(self) -> float | None:
        """When every sidecar showed the change (see :func:`when_all_sidecars_showed`)."""
        return when_all_sidecars_showed(self.envoy_ms)

    def to_json(self) -> dict[str, Any]:
        """The phase as ``--json`` writes it (no timeline: that is what the plots show)."""
        return {"write_index": self.write_index, "first_ms": self.first_ms, "all_ms": self.all_ms,
                "envoy_ms": self.envoy_ms, "pooled_kept_flowing_ms": self.pooled_after_ms,
                "violations": self.violations, "violation_window_ms": self.violation_window_ms,
                "pooled_violations": self.pooled_violations, "requests": self.requests}


def _ms_since(t: float | None, t0: float) -> float | None:
    return None if t is None else round((t - t0) * 1000, 2)


def analyse(action: str, t0: float, index: int, obs: list[Observation], envoy: dict[str, float],
            sidecars: list[str]) -> PhaseResult:
    """The phase's instants, in ms after ``t0`` (when Consul committed the write)."""
    wanted = "denied" if action == "deny" else "ok"
    first: dict[str, float | None] = {}
    all_from: dict[str, float | None] = {}
    counts: dict[str, int] = {}
    for stream in sorted({o.stream for o in obs}):
        mine = sorted((o for o in obs if o.stream == stream), key=lambda o: o.sent)
        counts[stream] = len(mine)
        hits = [o for o in mine if outcome(o) == wanted]
        first[stream] = hits[0].sent if hits else None
        misses = [o for o in mine if outcome(o) != wanted]
        if hits and (not misses or misses[-1].sent < mine[-1].sent):
            last_miss = misses[-1].sent if misses else t0
            after = [o.sent for o in mine if o.sent > last_miss]
            all_from[stream] = after[0] if after else None
        else:
            all_from[stream] = None
    # perf_counter instant every sidecar showed it (the same rule as when_all_sidecars_showed).
    all_shown_at = max(envoy.values()) if envoy and len(envoy) == len(sidecars) else None
    violations = pooled_violations = 0
    pooled_after = window = None
    if action == "deny" and all_shown_at is not None:
        leaked = [o.sent for o in obs if o.stream == "new" and o.sent > all_shown_at and outcome(o) == "ok"]
        violations = len(leaked)
        window = _ms_since(max(leaked), all_shown_at) if leaked else None
        pooled_ok = [o.sent for o in obs if o.stream == "pooled" and o.sent > all_shown_at and outcome(o) == "ok"]
        pooled_violations = len(pooled_ok)
        pooled_after = _ms_since(max(pooled_ok), all_shown_at) if pooled_ok else 0.0
    timeline = [(round((o.sent - t0) * 1000, 2), o.stream, outcome(o)) for o in sorted(obs, key=lambda o: o.sent)]
    return PhaseResult(
        action=action, write_index=index, first_ms={k: _ms_since(v, t0) for k, v in first.items()},
        all_ms={k: _ms_since(v, t0) for k, v in all_from.items()},
        envoy_ms={k: _ms_since(envoy.get(k), t0) for k in sidecars}, pooled_after_ms=pooled_after,
        violations=violations, violation_window_ms=window, pooled_violations=pooled_violations, requests=counts,
        timeline=timeline,
    )
