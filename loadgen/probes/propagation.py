"""PropagationProbe: how long a service-splitter weight change takes to move real traffic.

Steady keep-alive traffic goes to service-a's sidecar (127.0.0.1:9000/hello_b, routed by the
splitter); every answer's APP_ID gives its subset. New weights are written (the clock starts
when Consul's PUT returned) and three instants are measured:

* **envoy**: when service-a's sidecar showed the new weighted clusters (admin /config_dump);
* **change (estimated)**: the maximum-likelihood change point of the subset stream, between the
  old and the new categorical distribution -- the best estimate of when traffic followed;
* **detected**: when an online CUSUM detector (threshold h = log 10^4) raised its alarm; detection
  delay = detected - change. With that h a stream at the old weights runs ~10^4 requests between
  false alarms (tests/unit/test_probes_pure.py checks it); the delay is what that costs, about
  h / KL(new || old) requests (~27 for 85/15 -> 50/50).

Then the original weights are written back and the same is measured for the way back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from loadgen.errors import UsageError
from loadgen.load.engine import LoadPlan
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.subsets import SubsetMap, live_splitter, subset_map
from loadgen.probes.target import TargetOptions, probe_target
from loadgen.probes.watch import LOCAL_UPSTREAM, EnvoyWatcher, Observation, ProbeTraffic, split_is
from loadgen.stats import SplitSpec

CUSUM_H = math.log(10_000)
FLOOR = 1e-4  # a subset expected at 0 may still answer rarely; keep log-likelihoods finite
WINDOW_BEFORE_S = 1.0
PHASE_MAX_S = 30.0


def change_point(labels: list[str], before: dict[str, float], after: dict[str, float]) -> int | None:
    """Index of the maximum-likelihood switch from ``before`` to ``after`` (None if no labels)."""
    if not labels:
        return None
    gain = [math.log(max(after.get(x, 0.0), FLOOR)) - math.log(max(before.get(x, 0.0), FLOOR)) for x in labels]
    # LL(tau) = sum_{i<tau} log before + sum_{i>=tau} log after = const + sum_{i>=tau} gain_i
    best, best_tau, suffix = 0.0, len(labels), 0.0
    for tau in range(len(labels) - 1, -1, -1):
        suffix += gain[tau]
        if suffix > best:
            best, best_tau = suffix, tau
    return best_tau if best_tau < len(labels) else None


def cusum_alarm(labels: list[str], before: dict[str, float], after: dict[str, float], h: float = CUSUM_H) -> int | None:
    s = 0.0
    for i, x in enumerate(labels):
        s = max(0.0, s + math.log(max(after.get(x, 0.0), FLOOR)) - math.log(max(before.get(x, 0.0), FLOOR)))
        if s > h:
            return i
    return None


@dataclass
class ChangeResult:
    to: str  # the weights written
    write_index: int
    envoy_ms: float | None
    change_ms: float | None
    detected_ms: float | None
    detection_delay_ms: float | None
    share_before: dict[str, float]
    share_after: dict[str, float]
    requests: int
    timeline: list[tuple[float, str]]  # (ms since the write, subset) of every answer in the window

    def to_json(self) -> dict[str, Any]:
        """The change as ``--json`` writes it: every field but the timeline (the plots show that)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timeline"}


@dataclass
class PropagationResult:
    """Everything one ``loadgen propagation`` measured: the change, and its restore unless --keep."""

    rate: float  # probe requests per second: the timing's resolution is 1/rate
    changes: list[ChangeResult]
    plotted_subset: str  # the subset whose share the plots follow (the first of the new weights)
    plots: list[Path] = field(default_factory=list)

    @property
    def resolution_ms(self) -> float:
        return round(1000 / self.rate, 2)

    def to_json(self) -> dict[str, Any]:
        return {"resolution_ms": self.resolution_ms, "plots": [str(p) for p in self.plots],
                "changes": [c.to_json() for c in self.changes]}


def measure_propagation(weights: str, given: TargetOptions, rate: float, keep: bool,
                        say: Callable[[str], None]) -> PropagationResult:
    """Write service-b's ``weights`` (like 50/50 or v1=50,v2=50), time it, and restore it unless ``keep``.

    On the local mesh at stage splitter (borrowed, put back afterwards) or the deployment ``given``.
    """
    with probe_target("splitter", given, "service-a", say) as target, \
            target.consul() as consul:
        mapping = subset_map(consul)
        original = live_splitter(consul)
        new = SplitSpec.parse(weights, names=list(mapping.subsets) if "=" not in weights else None)
        if new.as_dict() == SplitSpec.from_splitter(original).as_dict():
            raise UsageError(f"service-b is already split {new.as_percent()}; give different weights")
        unknown = [name for name in new.names if mapping.subsets and name not in mapping.subsets]
        if unknown:  # a splitter leg to a subset the resolver does not define: checked before the write
            raise UsageError(f"--splitter names {', '.join(unknown)}, which service-b's resolver does not define "
                             f"(its subsets: {', '.join(mapping.subsets)})")
        probe = PropagationProbe(consul, next(iter(target.sidecar_admin.values())), mapping, rate=rate, say=say,
                                 upstream=target.url)
        return PropagationResult(rate, probe.run(original, new, keep), plotted_subset=new.names[0])


@dataclass
class PropagationProbe:
    consul: ConsulClient
    service_a_admin: str  # host:port of service-a's sidecar's Envoy admin
    mapping: SubsetMap
    upstream: str = LOCAL_UPSTREAM
    rate: float = 500.0
    connections: int = 8
    say: Callable[[str], None] = print

    def run(self, original: dict[str, Any], new: SplitSpec, keep: bool) -> list[ChangeResult]:
        old = SplitSpec.from_splitter(original)
        traffic = ProbeTraffic({"pooled": LoadPlan(url=self.upstream, rate=self.rate, max_time=3600, timeout=2.0,
                                                   max_in_flight=self.connections)})
        watcher = EnvoyWatcher({"service-a": self.service_a_admin}, split_is("service-b", None))
        results: list[ChangeResult] = []
        traffic.start()
        watcher.start()
        try:
            time.sleep(WINDOW_BEFORE_S + 0.5)
            results.append(self._change(traffic, watcher, old, new, original))
            if not keep:
                results.append(self._change(traffic, watcher, new, old, original))
        finally:
            if not keep:
                self.consul.write_config(original)
            watcher.stop()
            traffic.stop()
        return results

    def _change(self, traffic: ProbeTraffic, watcher: EnvoyWatcher, old: SplitSpec, new: SplitSpec,
                template: dict[str, Any]) -> ChangeResult:
        entry = {**template, "Splits": [{"Weight": round(w * 100, 2), "ServiceSubset": n}
                                        for n, w in zip(new.names, new.weights, strict=True)]}
        for key in ("CreateIndex", "ModifyIndex"):
            entry.pop(key, None)
        watcher.arm(split_is("service-b", {n: round(w * 10000) for n, w in zip(new.names, new.weights, strict=True)}))
        index = self.consul.write_config(entry)
        t0 = time.perf_counter()
        deadline = t0 + PHASE_MAX_S
        before, after = old.as_dict(), new.as_dict()
        alarm_at = None
        while time.perf_counter() < deadline:
            time.sleep(0.2)
            obs = self._labelled(traffic.since(t0))
            alarm = cusum_alarm([x for _, x in obs], before, after)
            if alarm is not None and watcher.changed_at:
                alarm_at = obs[alarm][0]
                break
        time.sleep(1.0)  # a tail after the alarm, so the change point has data on both sides
        window = self._labelled(traffic.since(t0 - WINDOW_BEFORE_S))
        labels = [x for _, x in window]
        tau = change_point(labels, before, after)
        change_at = window[tau][0] if tau is not None else None
        post = [x for t, x in window if change_at is not None and t >= change_at]
        pre = [x for t, x in window if change_at is None or t < change_at]
        envoy = watcher.changed_at.get("service-a")

        def ms_since_write(t: float | None) -> float | None:
            return None if t is None else round((t - t0) * 1000, 1)

        self.say(f"{old.as_percent()} -> {new.as_percent()}: envoy {ms_since_write(envoy)} ms, traffic changed at "
                 f"{ms_since_write(change_at)} ms, detected at {ms_since_write(alarm_at)} ms")
        return ChangeResult(
            to=new.as_percent(), write_index=index, envoy_ms=ms_since_write(envoy),
            change_ms=ms_since_write(change_at), detected_ms=ms_since_write(alarm_at),
            detection_delay_ms=None if alarm_at is None or change_at is None
            else round((alarm_at - change_at) * 1000, 1),
            share_before=_shares(pre), share_after=_shares(post), requests=len(window),
            timeline=[(round((t - t0) * 1000, 2), x) for t, x in window],
        )

    def _labelled(self, obs: list[Observation]) -> list[tuple[float, str]]:
        out = []
        for o in sorted(obs, key=lambda o: o.sent):
            subset = self.mapping.subset_of(o.sample.app_id) if o.sample.ok else None
            if subset is not None:
                out.append((o.sent, subset))
        return out


def _shares(labels: list[str]) -> dict[str, float]:
    n = len(labels)
    return {s: round(labels.count(s) / n, 4) for s in sorted(set(labels))} if n else {}
