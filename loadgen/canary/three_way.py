"""Configured, programmed, observed: what Consul compiled, what the client sidecar's Envoy
was given, and what traffic did -- side by side per subset.

The Envoy side is read twice, before the first request and after the last: the route the
canary's request matches in the client sidecar (weighted clusters and the config version
Envoy holds) and that sidecar's per-cluster upstream counters, whose deltas are a second,
application-independent observation of the split. A sidecar whose route differs from
Consul's chain at the end of the run is a *stale proxy*: the verdict is FAIL whatever the
traffic did, since the next config push (or restart) changes the split under the user.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from loadgen.canary.consul_view import ConsulView, chain_request, consul_view
from loadgen.errors import LoadgenError
from loadgen.mesh.chain import Request
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.programmed import ClusterCounters, EnvoyAdmin, ProgrammedRoute, UnevaluableRoute, programmed_route
from loadgen.safe_text import describe_exception
from loadgen.stats import Verdict, VerdictState
from loadgen.stats.agreement import homogeneity_p

__all__ = ["EnvoyReading", "ThreeWay", "three_way_for"]

WEIGHT_SLACK = 5e-4  # Envoy holds weights as integers out of 10000 (Consul scales 66.67 % to 6667)


@dataclass(frozen=True)
class EnvoyReading:
    """One look at the client sidecar: its route for the request and its cluster counters."""

    admin: str
    route: ProgrammedRoute | None  # None: no HTTP route for the request (an L4 tcp_proxy upstream)
    counters: dict[str, ClusterCounters]

    @property
    def version(self) -> str:
        return self.route.version if self.route else ""


@dataclass
class ThreeWay:
    """The three columns of one canary run, and the stale-proxy check between the first two."""

    view: ConsulView | None
    admin: EnvoyAdmin | None
    request: Request
    reread: Callable[[], ConsulView] | None = None  # Consul's view again at the end of the run
    start: EnvoyReading | None = None
    end: EnvoyReading | None = None
    end_view: ConsulView | None = None
    notes: list[str] = field(default_factory=list)
    read_at: float = float("-inf")  # refresh(): when the sidecar was last read

    # -- reading -------------------------------------------------------------------------
    @property
    def clusters(self) -> dict[str, str]:
        """Envoy cluster -> subset name, for every subset Consul's chain reaches."""
        view = self.end_view or self.view
        if view is None:
            return {}
        return {c: name for name in view.spec.names if (c := view.cluster(name))}

    def read(self) -> EnvoyReading | None:
        if self.admin is None:
            return None
        dump = self.admin.config_dump()
        view = self.end_view or self.view
        try:
            route = programmed_route(dump, self.request, view.compiled.upstream if view else None)
        except UnevaluableRoute as exc:
            if exc.message not in self.notes:
                self.notes.append(exc.message)
            route = None
        clusters = set(self.clusters) | set(route.weights if route else ())
        return EnvoyReading(self.admin.address, route, self.admin.cluster_stats(sorted(clusters)))

    def before(self) -> None:
        """Read the sidecar before the first request (an unreachable admin is the user's error)."""
        self.start = self.read()

    def after(self) -> None:
        """Read Consul and the sidecar again once the run is over. Never raises: a failure is a
        note, and the run's samples are reported as collected."""
        if self.reread is not None and self.view is not None:
            try:
                self.end_view = self.reread()
            except (LoadgenError, httpx.HTTPError, OSError) as exc:
                self.notes.append(f"Consul's chain could not be read again after the run ({_why(exc)})")
        try:
            self.end = self.read()
        except (LoadgenError, httpx.HTTPError, OSError) as exc:
            self.notes.append(f"the client sidecar's Envoy could not be read after the run ({_why(exc)})")
        view_now = self.end_view or self.view
        if self.view is not None and view_now is not self.view and view_now is not None \
                and _shares(self.view) != _shares(view_now):
            self.notes.append(f"Consul's compiled split changed during the run: {_text(_shares(self.view))} -> "
                              f"{_text(_shares(view_now))}")

    # -- comparing -----------------------------------------------------------------------
    def envoy_shares(self, reading: EnvoyReading | None = None) -> dict[str, float] | None:
        """The programmed weights per subset name (clusters Consul does not know keep their name)."""
        reading = reading or self.end or self.start
        if reading is None or reading.route is None:
            return None
        clusters = self.clusters
        out: dict[str, float] = {}
        for cluster, w in reading.route.weights.items():
            name = clusters.get(cluster, cluster)
            out[name] = out.get(name, 0.0) + w
        return out

    def stale(self) -> str | None:
        """Why the sidecar's route is not Consul's (None when they agree or cannot be compared)."""
        view = self.end_view or self.view
        reading = self.end or self.start
        envoy = self.envoy_shares(reading)
        if view is None or reading is None or envoy is None:
            return None
        consul = {n: w for n, w in _shares(view).items() if w > 0}
        names = set(consul) | set(envoy)
        if all(abs(consul.get(n, 0.0) - envoy.get(n, 0.0)) <= WEIGHT_SLACK for n in names):
            return None
        assert reading.route is not None
        return (f"stale proxy: the client sidecar (Envoy admin {reading.admin}, route config "
                f"{reading.route.route_config!r} version {reading.route.version or '?'}) routes "
                f"{_text(envoy)} but Consul compiled {_text(consul)} for {view.compiled.request.describe()}")

    def counter_deltas(self) -> dict[str, int] | None:
        """Requests each subset's cluster saw during the run (all traffic through the sidecar)."""
        deltas = self.cluster_deltas()
        return None if deltas is None else {name: d.rq_total for name, d in deltas.items()}

    def cluster_deltas(self) -> dict[str, ClusterCounters] | None:
        """Each subset's cluster counters over the run (requests, 2xx, 5xx)."""
        if self.start is None or self.end is None:
            return None
        clusters = self.clusters
        out: dict[str, ClusterCounters] = {}
        for cluster, after in self.end.counters.items():
            before = self.start.counters.get(cluster)
            delta = after.delta(before) if before is not None else after
            name = clusters.get(cluster, cluster)
            have = out.get(name, ClusterCounters())
            out[name] = ClusterCounters(have.rq_total + delta.rq_total, have.rq_2xx + delta.rq_2xx,
                                        have.rq_5xx + delta.rq_5xx)
        return out

    def agreement(self, traffic: Mapping[str, int], alpha: float) -> str | None:
        """A warning when the counters' split and the APP_IDs' differ by more than chance."""
        counters = self.counter_deltas()
        if not counters:
            return None
        p = homogeneity_p(traffic, counters)
        if p is None or p >= alpha:
            return None
        return (f"the client sidecar's counters ({_counts(counters)}) and the APP_IDs ({_counts(traffic)}) disagree "
                f"more than chance (chi-square p = {p:.2g}): other traffic through the sidecar, retries, or "
                "APP_IDs mapped to the wrong subset")

    def refresh(self, max_age: float, now: float) -> None:
        """Read the sidecar again when the last reading is older than ``max_age`` seconds (the
        Locust tab's columns); a failed read keeps the last one."""
        if self.admin is None or now - self.read_at < max_age:
            return
        self.read_at = now
        with contextlib.suppress(LoadgenError):
            self.end = self.read()

    def counters_now(self) -> dict[str, ClusterCounters]:
        """The sidecar's counters for Consul's clusters, now (``--subset-from envoy``'s looks)."""
        assert self.admin is not None
        return self.admin.cluster_stats(sorted(self.clusters))

    def answers(self, before: Mapping[str, ClusterCounters], after: Mapping[str, ClusterCounters]) -> dict[str, int]:
        """Requests the sidecar routed to each subset between two readings: ``--subset-from envoy``'s
        counts. ``upstream_rq_total`` counts a request when the sidecar hands it to a cluster's
        connection, not when it is answered, so a reading holds every request routed so far in the
        order they were routed, whichever subset answers faster (answered counts such as 2xx would
        over-represent the faster subset among the newest requests, and under-count a failing one)."""
        clusters = self.clusters
        out: dict[str, int] = {}
        for cluster, now in after.items():
            name = clusters.get(cluster)
            if name is None:
                continue
            then = before.get(cluster)
            out[name] = out.get(name, 0) + (now.delta(then) if then is not None else now).rq_total
        return out

    def judge(self, verdict: Verdict, traffic: Mapping[str, int] | None, alpha: float) -> tuple[Verdict, list[str]]:
        """The verdict with the sidecar taken into account: FAIL for a stale proxy (the traffic's
        own verdict kept in the reason), and notes on what else was seen."""
        notes = list(self.notes)
        if traffic is not None and (warning := self.agreement(traffic, alpha)):
            notes.append(warning)
        for target, backups in (self.view.compiled.failover.items() if self.view else ()):
            name = self.view.labels.get(target, target) if self.view else target
            notes.append(f"failover of {name} (reported, not expected): {', '.join(backups)}")
        stale = self.stale()
        if stale is None:
            return verdict, notes
        reason = f"{stale}; the traffic alone: {verdict.state.value} ({verdict.reason})"
        return dataclasses.replace(verdict, state=VerdictState.FAIL, reason=reason), notes

    def to_json(self, verdict: Verdict | None = None) -> dict[str, Any]:
        view = self.end_view or self.view
        traffic = {s.name: s for s in verdict.subsets} if verdict else {}
        envoy = self.envoy_shares()
        deltas = self.cluster_deltas()
        counters = None if deltas is None else {name: d.rq_total for name, d in deltas.items()}
        total = sum(counters.values()) if counters else 0
        names = list(dict.fromkeys([*(view.spec.names if view else ()), *traffic, *(envoy or {})]))
        rows = {}
        for name in names:
            s = traffic.get(name)
            rows[name] = {
                "consul": round(view.share(name), 6) if view else None,
                "consul_path": view.path(name) if view else None,
                "envoy": round(envoy.get(name, 0.0), 6) if envoy is not None else None,
                "traffic": None if s is None else {"share": round(s.share, 6), "lower": round(s.lower, 6),
                                                   "upper": round(s.upper, 6), "count": s.count},
                "envoy_counters": None if deltas is None or counters is None else {
                    "requests": counters.get(name, 0),
                    "5xx": deltas[name].rq_5xx if name in deltas else 0,
                    "share": round(counters.get(name, 0) / total, 6) if total else None},
            }
        reading = self.end or self.start
        return {
            "consul": view.to_json() if view else None,
            "envoy": None if reading is None else {
                "admin": reading.admin, "version": reading.version,
                "route_config": reading.route.route_config if reading.route else None,
                "route": reading.route.describe() if reading.route else None,
                "version_before": self.start.version if self.start else None},
            "stale": self.stale(),
            "subsets": rows,
            "notes": self.notes,
        }


def _shares(view: ConsulView) -> dict[str, float]:
    return dict(zip(view.spec.names, view.spec.weights, strict=True))


def _text(shares: Mapping[str, float]) -> str:
    return " / ".join(f"{n} {w * 100:.4g} %" for n, w in shares.items() if w > 0) or "nothing"


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {c:,}" for n, c in counts.items())


def three_way_for(view: ConsulView | None, consul: ConsulClient | None, envoy_admin: str | None,
                  headers: Mapping[str, str], path: str | None = None) -> ThreeWay:
    """The three columns of a live run: the Consul view re-read at the end through ``consul``."""
    request = view.compiled.request if view else chain_request(headers, path)
    reread = None
    if view is not None and consul is not None:
        settings, timeout = consul.settings, consul.timeout

        def reread() -> ConsulView:
            # A client of its own: the caller's may be closed by the end of the run (Locust's is).
            with ConsulClient(timeout=timeout, settings=settings) as again:
                return consul_view(again, view.compiled.upstream, view.compiled.request)
    admin = EnvoyAdmin(envoy_admin) if envoy_admin else None
    return ThreeWay(view, admin, request, reread)


def _why(exc: Exception) -> str:
    return exc.message if isinstance(exc, LoadgenError) else describe_exception(exc)
