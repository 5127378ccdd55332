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
deny is replaced by an allow (which also holds under ACL default-deny) and the same is timed for
the allow; the entry found before the probe is put back after it. Any request on a new connection that
succeeds after every sidecar shows the deny is a security violation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.errors import UnreachableError
from loadgen.load.engine import LoadPlan
from loadgen.mesh.consul_api import ConsulClient
from loadgen.probes.intention_phase import PhaseResult, analyse, outcome
from loadgen.probes.intention_report import IntentionCycle, ProtocolResult
from loadgen.probes.target import TargetOptions, probe_target
from loadgen.probes.watch import LOCAL_UPSTREAM, EnvoyWatcher, Observation, ProbeTraffic, rbac_for

SETTLE_S = 1.0  # quiet time required before a phase starts
PHASE_MAX_S = 20.0  # give up on a phase after this long
TAIL_S = 1.5  # keep watching after the change looked complete, to catch stragglers
# The local mesh's stage for each --protocol: service-b's protocol decides L4 or L7 RBAC.
STAGE_FOR_PROTOCOL = {"tcp": "basic", "http": "l7-router"}


def protocols_to_probe(protocol: str, given: TargetOptions) -> list[str]:
    """--protocol tcp/http/both on the local mesh; a given deployment has whatever it has ("target")."""
    if given.url is not None:
        return ["target"]
    return ["tcp", "http"] if protocol == "both" else [protocol]


def measure_intentions(protocol: str, given: TargetOptions, repeats: int, rate: float, pooled_rate: float,
                       say: Callable[[str], None]) -> ProtocolResult:
    """Time ``repeats`` deny/allow cycles on one protocol's target (the local mesh is put back after)."""
    stage = STAGE_FOR_PROTOCOL.get(protocol, "basic")
    with probe_target(stage, given, "service-b", say) as target, target.consul() as consul:
        probe = IntentionProbe(consul, target.sidecar_admin, rate_new=rate, rate_pooled=pooled_rate, say=say,
                               upstream=target.url)
        return ProtocolResult(protocol, probe.run(repeats))


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
    allow_entry: dict[str, Any] = field(default_factory=lambda: {
        "Kind": "service-intentions", "Name": "service-b", "Sources": [{"Name": "service-a", "Action": "allow"}]})

    def run(self, repeats: int) -> list[IntentionCycle]:
        plans = {
            "new": LoadPlan(url=self.upstream, rate=self.rate_new, max_time=3600, timeout=2.0, new_connection=True,
                            max_in_flight=256),
            "pooled": LoadPlan(url=self.upstream, rate=self.rate_pooled, max_time=3600, timeout=2.0,
                               max_in_flight=self.pooled_connections),
        }
        traffic = ProbeTraffic(plans)
        watcher = EnvoyWatcher(self.sidecar_admin, rbac_for("service-a", True))
        results: list[IntentionCycle] = []
        # What was there is put back at the end (a user's entry, the secure mesh's allow). The
        # probe starts from an explicit allow, which also holds under ACL default-deny.
        original = self.consul.get_config("service-intentions", "service-b")
        self.consul.write_config(self.allow_entry)
        traffic.start()
        watcher.start()
        try:
            for i in range(repeats):
                deny = self._phase("deny", traffic, watcher)
                allow = self._phase("allow", traffic, watcher)
                results.append(IntentionCycle(deny, allow))
                self.say(f"repeat {i + 1}/{repeats}: deny bit after {_ms_or_never(deny.all_ms.get('new'))} "
                         f"(envoy {_ms_or_never(deny.all_sidecars_ms)}), "
                         f"allow healed after {_ms_or_never(allow.all_ms.get('new'))}")
        finally:
            if original is None:
                self.consul.delete_config("service-intentions", "service-b")
            else:
                self.consul.write_config({k: v for k, v in original.items() if not k.endswith("Index")})
            watcher.stop()
            traffic.stop()
        return results

    def _phase(self, action: str, traffic: ProbeTraffic, watcher: EnvoyWatcher) -> PhaseResult:
        wanted = "denied" if action == "deny" else "ok"
        old = "ok" if action == "deny" else "denied"
        self._settle(traffic, old)
        watcher.arm(rbac_for("service-a", action == "deny"))
        index = self.consul.write_config(self.entry if action == "deny" else self.allow_entry)
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



def _ms_or_never(ms: float | None) -> str:
    """A progress line's instant: "never" when it did not happen within the phase."""
    return "never" if ms is None else f"{ms:.0f} ms"
