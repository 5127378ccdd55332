"""Watching the data plane and the control plane at once, on one clock.

:class:`ProbeTraffic` runs several load streams (e.g. fresh connections and pooled ones) in a
background thread's event loop and keeps every sample with the absolute ``perf_counter``
instant its request was sent, so it can be compared with the instant a config write returned.
:class:`EnvoyWatcher` polls sidecars' admin APIs in another thread and records when each one's
config first satisfied a predicate (e.g. "has an RBAC rule for service-a").
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from loadgen.load.engine import LoadPlan, run_load
from loadgen.load.sample import Sample
from loadgen.mesh import envoy_admin


@dataclass(frozen=True)
class Observation:
    stream: str
    sent: float  # perf_counter instant the request was sent
    sample: Sample


@dataclass
class ProbeTraffic:
    """Background load streams; every completed request becomes an :class:`Observation`."""

    plans: dict[str, LoadPlan]
    observations: list[Observation] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    error: BaseException | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="probe-traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced to the caller by stop()
            self.error = exc

    async def _main(self) -> None:
        start = time.perf_counter() + 0.05

        def sink(name: str) -> Callable[[Sample], None]:
            def on_sample(s: Sample) -> None:
                sent = start + s.t + s.sent_late_ms / 1000
                with self._lock:
                    self.observations.append(Observation(name, sent, s))

            return on_sample

        await asyncio.gather(*(
            run_load(_with_start(plan, start), sink(name), self._stop.is_set) for name, plan in self.plans.items()
        ))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.error is not None:
            raise self.error

    def since(self, t0: float) -> list[Observation]:
        with self._lock:
            return [o for o in self.observations if o.sent >= t0]


def _with_start(plan: LoadPlan, start: float) -> LoadPlan:
    return replace(plan, start_at=start)


# Where probe traffic enters the data plane on the local mesh: service-a's sidecar upstream
# listener, so service-a's own connection handling does not blur what Envoy does.
LOCAL_UPSTREAM = "http://127.0.0.1:9000/hello_b"

XDS_COUNTERS = r"(lds|cds|rds\.[^ ]*)\.update_success$"  # listeners, clusters, route configs


@dataclass
class EnvoyWatcher:
    """Watches each sidecar's Envoy admin API and notes when ``predicate`` first held (after arm())."""

    admins: dict[str, str]  # sidecar name -> its Envoy admin address, host:port
    predicate: Callable[[dict[str, Any]], bool]
    interval: float = 0.01
    changed_at: dict[str, float] = field(default_factory=dict)
    _armed_at: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def arm(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Start looking for ``predicate`` from now on (forgetting earlier changes)."""
        self.predicate = predicate
        self.changed_at = {}
        self._armed_at = time.perf_counter()

    def start(self) -> None:
        for name, address in self.admins.items():
            t = threading.Thread(target=self._poll, args=(name, address), daemon=True, name=f"watch-{name}")
            t.start()
            self._threads.append(t)

    def _poll(self, name: str, address: str) -> None:
        # A /config_dump is ~100 KB of JSON; parsing it every 20 ms would hold the GIL long
        # enough to stall the probe traffic in the same process. So poll Envoy's tiny xDS
        # update counters, and fetch the dump only when one of them moved.
        seen: str | None = None
        checked_for: float | None = None
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.is_set():
                armed = self._armed_at
                if armed is not None and name not in self.changed_at:
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        counters = client.get(f"http://{address}/stats", params={"filter": XDS_COUNTERS}).text
                        if counters != seen or checked_for != armed:
                            seen, checked_for = counters, armed
                            dump = client.get(f"http://{address}/config_dump").json()
                            if self.predicate(dump):
                                # An upper bound: the change landed since the previous poll and
                                # before this dump came back.
                                self.changed_at[name] = time.perf_counter()
                time.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)


def rbac_for(source: str, denied: bool) -> Callable[[dict[str, Any]], bool]:
    """A sidecar whose RBAC refuses (``denied``) or admits ``source``, whatever Consul's default
    policy: a DENY rule naming it (default allow) or an ALLOW rule that does not (default deny)."""
    return lambda dump: envoy_admin.rbac_allows(dump, source) != denied


def split_is(service: str, weights: dict[str, int] | None) -> Callable[[dict[str, Any]], bool]:
    return lambda dump: envoy_admin.weighted_split(dump, service) == weights
