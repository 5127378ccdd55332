"""PermissionProbe: L7 intention permissions (service-a -> service-b), verified per request class.

On the local mesh at stage l7-router (service-b at protocol http, so Envoy's HTTP RBAC filter
decides per request), each :class:`RequestClass` is a steady stream sent straight to service-a's
sidecar upstream listener (127.0.0.1:9000), as the deny/allow probe does. One repeat:

* ``restrict``: the permissions entry (consul/intentions/service-b-permissions.hcl, merged into
  the service-intentions entry found, replacing only service-a's source) is written; the clock
  starts when Consul's PUT returned. Per denied class: the first request Envoy's RBAC refused and
  the instant from which every one was. A denied-class request that reaches service-b after
  every service-b sidecar's Envoy showed the new RBAC rules is a **leak**: Envoy keeps serving
  connections opened before the change with the old filter chain until it closes them (the
  phase's ``drain_closes`` counts those closes). A leak later than the grace after the sidecars
  showed the rules, or of a class that never went steadily denied, is a **violation**; an
  allowed-class request refused at any time is **wrongly denied**.
* ``lift``: the entry found before is put back exactly (or deleted when there was none), and
  the same is timed for the denied classes reaching service-b again.

Whatever happens, the entry found is put back at the end: loadgen never leaves a change in Consul.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from loadgen.errors import UnreachableError, UsageError
from loadgen.load.engine import LoadPlan
from loadgen.mesh import envoy_admin
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.stages import load_config_entry
from loadgen.paths import consul_dir
from loadgen.probes.permission_report import (
    DEFAULT_CLASSES,
    DENIED,
    REACHED,
    PermissionCycle,
    PermissionPhase,
    PermissionsReport,
    RequestClass,
    analyse_permission_phase,
    answer_kind,
)
from loadgen.probes.target import TargetOptions, probe_target
from loadgen.probes.watch import EnvoyWatcher, ProbeTraffic
from loadgen.safe_text import describe_exception

PERMISSIONS_FILE = "intentions/service-b-permissions.hcl"  # under consul/
STAGE = "l7-router"  # service-b at protocol http: L7 RBAC
SETTLE_S = 1.0  # quiet time required before a phase starts
PHASE_MAX_S = 20.0  # give up waiting for a phase's change after this long
TAIL_S = 1.5  # keep watching after the change looked complete, to catch stragglers
KIND = "service-intentions"
SERVER_FIELDS = ("CreateIndex", "ModifyIndex", "Hash")  # Consul's bookkeeping, not the user's entry
# Connections of service-b's sidecars closed because their filter chain (with the old RBAC rules)
# was draining: the evidence that a leak came on a connection opened before the change.
DRAIN_CLOSES = "http.public_listener.downstream_cx_drain_close"
DEFAULT_GRACE_S = 2.0


def load_permissions_entry(path: Path | None = None) -> dict[str, Any]:
    """The permissions entry to write, checked: a service-intentions whose sources carry Permissions."""
    path = path or consul_dir() / PERMISSIONS_FILE
    body = load_config_entry(path).body
    sources = body.get("Sources")
    if body.get("Kind") != KIND or not isinstance(sources, list) or not sources or not all(
            isinstance(s, dict) and s.get("Name") and s.get("Permissions") for s in sources):
        raise UsageError(f"{path} is not a service-intentions entry whose every source has Permissions")
    return body


def as_written(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry read from Consul, as it can be written back (without Consul's raft indexes)."""
    return {k: copy.deepcopy(v) for k, v in entry.items() if k not in SERVER_FIELDS}


def with_permissions(found: dict[str, Any] | None, permissions: dict[str, Any]) -> dict[str, Any]:
    """``permissions`` merged into the entry ``found``: its sources replace those of the same name only."""
    if found is None:
        return copy.deepcopy(permissions)
    merged = as_written(found)
    names = {s["Name"] for s in permissions["Sources"]}
    kept = [s for s in merged.get("Sources") or [] if s.get("Name") not in names]
    merged["Sources"] = kept + copy.deepcopy(permissions["Sources"])
    return merged


def rbac_rules(dump: dict[str, Any]) -> str:
    """The inbound listener's RBAC rules as one canonical string ("[]" when it has none)."""
    found: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            config = node.get("typed_config")
            if "rbac" in str(node.get("name", "")).lower() and isinstance(config, dict):
                found.append(config.get("rules"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(envoy_admin.public_listener(dump))
    return json.dumps(found, sort_keys=True)


def measure_permissions(given: TargetOptions, repeats: int, rate: float, say: Callable[[str], None],
                        grace_s: float = DEFAULT_GRACE_S) -> PermissionsReport:
    """Time ``repeats`` restrict/lift cycles on the local mesh at l7-router (put back afterwards)."""
    if given.url is not None:
        raise UsageError("--permissions runs on the local mesh only (stage l7-router); drop --target")
    permissions = load_permissions_entry()  # a malformed file stops us before the mesh is touched
    with probe_target(STAGE, given, "service-b", say) as target, target.consul() as consul:
        split = urlsplit(target.url)
        probe = PermissionProbe(consul, target.sidecar_admin, f"{split.scheme}://{split.netloc}", permissions,
                                rate_per_class=rate / len(DEFAULT_CLASSES), grace_s=grace_s, say=say)
        return probe.run(repeats)


@dataclass
class PermissionProbe:
    consul: ConsulClient
    sidecar_admin: dict[str, str]  # service-b sidecars: name -> Envoy admin host:port
    base_url: str  # service-a's sidecar upstream listener, e.g. http://127.0.0.1:9000
    permissions: dict[str, Any]
    classes: tuple[RequestClass, ...] = DEFAULT_CLASSES
    rate_per_class: float = 125.0
    grace_s: float = DEFAULT_GRACE_S  # leaks this soon after the sidecars showed the rules: draining, not violations
    say: Callable[[str], None] = print

    def run(self, repeats: int) -> PermissionsReport:
        name = self.permissions["Name"]
        found = self.consul.get_config(KIND, name)
        report = PermissionsReport(entry=f"consul/{PERMISSIONS_FILE}", rate_per_class=self.rate_per_class,
                                   classes=self.classes, grace_s=self.grace_s,
                                   found="none" if found is None else f"{len(found.get('Sources') or [])} source(s)")
        restrict = with_permissions(found, self.permissions)
        # Each phase is bounded, so the traffic is too: this is only a backstop.
        bound = repeats * 2 * (2 * PHASE_MAX_S + TAIL_S) + 60
        traffic = ProbeTraffic({c.name: self._plan(c, bound) for c in self.classes})
        watcher = EnvoyWatcher(self.sidecar_admin, lambda dump: False)
        traffic.start()
        watcher.start()
        try:
            self._settle(traffic, "lift")  # every class reaches service-b before anything is written
            baselines = {self._rules_now(a) for a in self.sidecar_admin.values()}
            for i in range(repeats):
                r = self._phase("restrict", traffic, watcher, lambda d: rbac_rules(d) not in baselines,
                                lambda: self.consul.write_config(restrict))
                if r.never_bit:  # nothing to lift, and no later repeat can tell more
                    report.cycles.append(PermissionCycle(r, None))
                    report.stopped = (f"repeat {i + 1}: {', '.join(r.never_bit)} still reached service-b at the "
                                      f"end of the {PHASE_MAX_S:g} s phase")
                    self.say(report.stopped)
                    break
                lift = self._phase("lift", traffic, watcher, lambda d: rbac_rules(d) in baselines,
                                   lambda: self._put_back(found))
                report.cycles.append(PermissionCycle(r, lift))
                self.say(f"repeat {i + 1}/{repeats}: " + "; ".join(
                    f"{c.name} denied after {_ms(r.classes[c.name].all_ms)}, "
                    f"reached again after {_ms(lift.classes[c.name].all_ms)}"
                    for c in self.classes if c.expect == "denied"))
        finally:
            self._put_back(found)
            watcher.stop()
            traffic.stop()
        return report

    def _plan(self, cls: RequestClass, max_time: float) -> LoadPlan:
        # Keep-alive connections: the HTTP RBAC filter decides per request, not per connection.
        return LoadPlan(url=self.base_url + cls.path, rate=self.rate_per_class, max_time=max_time, timeout=2.0,
                        method=cls.method, headers=dict(cls.headers), max_in_flight=8)

    def _put_back(self, found: dict[str, Any] | None) -> int:
        name = self.permissions["Name"]
        if found is None:
            self.consul.delete_config(KIND, name)
            return 0
        return self.consul.write_config(as_written(found))

    def _rules_now(self, address: str) -> str:
        with httpx.Client(timeout=5.0) as client:
            try:
                return rbac_rules(client.get(f"http://{address}/config_dump").json())
            except (httpx.HTTPError, ValueError) as exc:
                raise UnreachableError(f"cannot read service-b's sidecar config at {address}: "
                                       f"{describe_exception(exc)}") from None

    def _wanted(self, cls: RequestClass, action: str) -> str:
        """A class's outcome once ``action`` is in force."""
        return DENIED if cls.expect == "denied" and action == "restrict" else REACHED

    def _phase(self, action: str, traffic: ProbeTraffic, watcher: EnvoyWatcher,
               shown: Callable[[dict[str, Any]], bool], write: Callable[[], int]) -> PermissionPhase:
        self._settle(traffic, "lift" if action == "restrict" else "restrict")
        watcher.arm(shown)
        closes_before = self._drain_closes()
        index = write()
        t0 = time.perf_counter()  # Consul has committed the write: the clock starts
        deadline = t0 + PHASE_MAX_S
        while time.perf_counter() < deadline:
            time.sleep(0.1)
            if len(watcher.changed_at) == len(self.sidecar_admin) and self._steady(traffic, action, 0.3, 1):
                break
        time.sleep(TAIL_S)
        closes_after = self._drain_closes()
        closes = None if closes_before is None or closes_after is None else closes_after - closes_before
        return analyse_permission_phase(action, t0, index, traffic.since(t0), dict(watcher.changed_at),
                                        list(self.sidecar_admin), self.classes, self.grace_s, closes)

    def _drain_closes(self) -> int | None:
        counts = [envoy_admin.counter(a, DRAIN_CLOSES) for a in self.sidecar_admin.values()]
        return None if None in counts else sum(c for c in counts if c is not None)

    def _steady(self, traffic: ProbeTraffic, action: str, seconds: float, least: int) -> bool:
        """Every class's requests of the last ``seconds`` had the outcome ``action`` gives it."""
        recent = traffic.since(time.perf_counter() - seconds)
        for cls in self.classes:
            mine = [o for o in recent if o.stream == cls.name]
            if len(mine) < least or any(answer_kind(o.sample) != self._wanted(cls, action) for o in mine):
                return False
        return True

    def _settle(self, traffic: ProbeTraffic, state: str) -> None:
        """Wait until every class steadily answers as ``state`` says ("lift": all reach service-b).

        Not settling is the deployment's doing and nothing was measured: UnreachableError (4), as
        in the deny/allow probe.
        """
        deadline = time.perf_counter() + PHASE_MAX_S
        while time.perf_counter() < deadline:
            time.sleep(0.1)
            if self._steady(traffic, state, SETTLE_S, 5):
                return
        recent = traffic.since(time.perf_counter() - SETTLE_S)
        seen = "; ".join(f"{c.name}: " + ", ".join(
            f"{sum(answer_kind(o.sample) == k for o in recent if o.stream == c.name)} {k}"
            for k in ("reached", "denied", "error")) for c in self.classes)
        if state == "lift":
            raise UnreachableError(
                f"requests to {self.base_url} did not steadily reach service-b within {PHASE_MAX_S:g} s, so "
                f"permissions cannot be timed (last {SETTLE_S:g} s: {seen}); is service-b up, at protocol http, "
                "with no other intention denying service-a?")
        raise UnreachableError(
            f"the permissions did not steadily apply within {PHASE_MAX_S:g} s (last {SETTLE_S:g} s: {seen})")


def _ms(ms: float | None) -> str:
    return "never" if ms is None else f"{ms:.0f} ms"

