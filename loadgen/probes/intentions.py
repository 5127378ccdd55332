"""IntentionProbe: how long a deny of service-a -> service-b takes to bite, and an allow to heal.

Probe traffic goes straight to service-a's sidecar upstream listener (local mesh: 127.0.0.1:9000/hello_b),
so service-a's own connection handling does not blur what Envoy does. Two streams at once:

* ``new``: a fresh TCP connection per request (Envoy checks intentions when a connection is
  set up, so this is what a deny is meant to stop);
* ``pooled``: a few long-lived keep-alive connections (which, with protocol tcp, Envoy does not
  re-check: consul issues 5277 and 6454).

One repeat: traffic is steady and allowed; the deny is written (clock starts when Consul's PUT
returned); we look for the first denied request and the instant from which every new-connection
request is denied, and when each service-b sidecar's RBAC rule appeared (Envoy admin). Then the
deny is removed and the same is timed for the allow. Any request on a new connection that
succeeds after every sidecar shows the deny is a security violation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadgen.errors import UnreachableError
from loadgen.load.engine import LoadPlan
from loadgen.mesh.consul_api import ConsulClient
from loadgen.probes.watch import LOCAL_UPSTREAM, EnvoyWatcher, Observation, ProbeTraffic, rbac_for

SETTLE_S = 1.0  # quiet time required before a phase starts
PHASE_MAX_S = 20.0  # give up on a phase after this long
TAIL_S = 1.5  # keep watching after the change looked complete, to catch stragglers


def outcome(o: Observation) -> str:
    s = o.sample
    if s.ok:
        return "ok"
    if s.status == 403 or s.error in ("reset", "bad_response") or (s.error or "").startswith("http_403"):
        return "denied"
    return "error"


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


def _ms(t: float | None, t0: float) -> float | None:
    return None if t is None else round((t - t0) * 1000, 2)


def analyse(action: str, t0: float, index: int, obs: list[Observation], envoy: dict[str, float],
            sidecars: list[str]) -> PhaseResult:
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
    applied = max(envoy.values()) if envoy and len(envoy) == len(sidecars) else None
    violations = pooled_violations = 0
    pooled_after = window = None
    if action == "deny" and applied is not None:
        leaked = [o.sent for o in obs if o.stream == "new" and o.sent > applied and outcome(o) == "ok"]
        violations = len(leaked)
        window = _ms(max(leaked), applied) if leaked else None
        pooled_ok = [o.sent for o in obs if o.stream == "pooled" and o.sent > applied and outcome(o) == "ok"]
        pooled_violations = len(pooled_ok)
        pooled_after = _ms(max(pooled_ok), applied) if pooled_ok else 0.0
    timeline = [(round((o.sent - t0) * 1000, 2), o.stream, outcome(o)) for o in sorted(obs, key=lambda o: o.sent)]
    return PhaseResult(
        action=action, write_index=index, first_ms={k: _ms(v, t0) for k, v in first.items()},
        all_ms={k: _ms(v, t0) for k, v in all_from.items()},
        envoy_ms={k: _ms(envoy.get(k), t0) for k in sidecars}, pooled_after_ms=pooled_after,
        violations=violations, violation_window_ms=window, pooled_violations=pooled_violations, requests=counts,
        timeline=timeline,
    )


@dataclass
class IntentionProbe:
    consul: ConsulClient
    sidecar_admin: dict[str, str]  # service-b sidecars: name -> Envoy admin host:port
    upstream: str = LOCAL_UPSTREAM
    rate_new: float = 500.0
    rate_pooled: float = 200.0
    pooled_connections: int = 4
    say: Callable[[str], None] = print
    entry: dict[str, Any] = field(default_factory=lambda: {
        "Kind": "service-intentions", "Name": "service-b", "Sources": [{"Name": "service-a", "Action": "deny"}]})

    def run(self, repeats: int) -> list[tuple[PhaseResult, PhaseResult]]:
        plans = {
            "new": LoadPlan(url=self.upstream, rate=self.rate_new, max_time=3600, timeout=2.0, new_connection=True,
                            max_in_flight=256),
            "pooled": LoadPlan(url=self.upstream, rate=self.rate_pooled, max_time=3600, timeout=2.0,
                               max_in_flight=self.pooled_connections),
        }
        traffic = ProbeTraffic(plans)
        watcher = EnvoyWatcher(self.sidecar_admin, rbac_for("service-a", True))
        results = []
        self.consul.delete_config("service-intentions", "service-b")
        traffic.start()
        watcher.start()
        try:
            for i in range(repeats):
                deny = self._phase("deny", traffic, watcher)
                allow = self._phase("allow", traffic, watcher)
                results.append((deny, allow))
                self.say(f"repeat {i + 1}/{repeats}: deny bit after {_fmt(deny.all_ms.get('new'))} "
                         f"(envoy {_fmt(_max(deny.envoy_ms))}), allow healed after {_fmt(allow.all_ms.get('new'))}")
        finally:
            self.consul.delete_config("service-intentions", "service-b")
            watcher.stop()
            traffic.stop()
        return results

    def _phase(self, action: str, traffic: ProbeTraffic, watcher: EnvoyWatcher) -> PhaseResult:
        wanted = "denied" if action == "deny" else "ok"
        old = "ok" if action == "deny" else "denied"
        self._settle(traffic, old)
        watcher.arm(rbac_for("service-a", action == "deny"))
        if action == "deny":
            index = self.consul.write_config(self.entry)
        else:
            self.consul.delete_config("service-intentions", "service-b")
            index = 0
        t0 = time.perf_counter()  # Consul has committed the write: the clock starts
        deadline = t0 + PHASE_MAX_S
        while time.perf_counter() < deadline:
            time.sleep(0.1)
            recent = [o for o in traffic.since(time.perf_counter() - 0.3) if o.stream == "new"]
            if len(watcher.changed_at) == len(self.sidecar_admin) and recent and all(
                outcome(o) == wanted for o in recent
            ):
                break
        time.sleep(TAIL_S)
        return analyse(action, t0, index, traffic.since(t0), dict(watcher.changed_at), list(self.sidecar_admin))

    def _settle(self, traffic: ProbeTraffic, expected: str) -> None:
        """Wait until every new-connection request of the last SETTLE_S had ``expected``.

        Not settling is something the deployment does, not a bug here, and nothing was measured,
        so it is no verdict (FAIL is kept for a violation the probe proved): UnreachableError (4),
        the code for "the target or mesh does not behave as a working mesh would". Before a deny
        it means requests through the upstream do not succeed (nothing listens, service-b is
        down, or another intention already denies service-a); before the allow, that the deny
        never stopped new connections (the URL does not pass the intention's sidecars).
        """
        deadline = time.perf_counter() + PHASE_MAX_S
        recent: list[Observation] = []
        while time.perf_counter() < deadline:
            time.sleep(0.1)
            recent = [o for o in traffic.since(time.perf_counter() - SETTLE_S) if o.stream == "new"]
            if len(recent) > 10 and all(outcome(o) == expected for o in recent):
                return
        seen = ", ".join(f"{sum(outcome(o) == k for o in recent)} {k}" for k in ("ok", "denied", "error"))
        if expected == "ok":
            raise UnreachableError(
                f"requests to {self.upstream} did not steadily succeed within {PHASE_MAX_S:g} s, so a deny "
                f"cannot be timed (new connections in the last {SETTLE_S:g} s: {seen}); is service-b "
                "reachable there, with no other intention denying service-a?")
        raise UnreachableError(
            f"the deny did not stop new connections to {self.upstream} within {PHASE_MAX_S:g} s, so the allow "
            f"cannot be timed (new connections in the last {SETTLE_S:g} s: {seen}); does that URL pass "
            "service-b's sidecars?")


def _max(d: dict[str, float | None]) -> float | None:
    vals = [v for v in d.values() if v is not None]
    return max(vals) if vals else None


def _fmt(ms: float | None) -> str:
    return "never" if ms is None else f"{ms:.0f} ms"


def distribution(values: list[float | None]) -> dict[str, float | int | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0}
    arr = np.asarray(vals)
    return {"n": len(vals), "min": round(float(arr.min()), 1), "median": round(float(np.median(arr)), 1),
            "p95": round(float(np.percentile(arr, 95)), 1), "max": round(float(arr.max()), 1),
            "missing": len(values) - len(vals)}
