"""The Consul column: the split Consul compiled for the request service-a makes upstream.

``--expect consul`` judges against it; every other expectation shows it beside the traffic
(and the client sidecar's Envoy must agree with it, see :mod:`loadgen.canary.envoy_view`).

The upstream is the one service-a's sidecar registration names (or ``--upstream``); the
request is the one service-a makes: ``GET /hello_b`` (or ``--path``) carrying the canary's
headers that service-a propagates (its default PROPAGATE_HEADERS: ``x-*``, ``traceparent``,
``tracestate``, ``b3``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

from loadgen.errors import UsageError
from loadgen.mesh.chain import ChainTarget, CompiledSplit, Request, compile_split
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.subsets import SubsetMap
from loadgen.stats import SplitSpec

__all__ = ["CLIENT_SERVICE", "UPSTREAM_PATH", "ConsulView", "chain_request", "client_upstream", "consul_view"]

CLIENT_SERVICE = "service-a"  # the reference client; its sidecar's upstream is the chain to read
UPSTREAM_PATH = "/hello_b"  # what the reference service-a calls upstream
PROPAGATED = ("x-*", "traceparent", "tracestate", "b3")  # service-a's default PROPAGATE_HEADERS
OTHER = "other"  # the zero-weight bucket that gives a one-target chain a second subset to judge


@dataclass(frozen=True)
class ConsulView:
    """The compiled split, named the way the judge names subsets."""

    compiled: CompiledSplit
    labels: dict[str, str]  # target id -> subset name
    spec: SplitSpec  # every subset the chain's services define, at the chain's shares
    mapping: SubsetMap  # APP_ID -> subset name, from the resolver subsets' filters in the catalog

    def share(self, name: str) -> float:
        return self.spec.weight(name) if name in self.spec.names else 0.0

    def path(self, name: str) -> str:
        """How the chain sends traffic to subset ``name``, for people."""
        ids = [tid for tid, label in self.labels.items() if label == name]
        return " + ".join(self.compiled.describe(tid) for tid in ids if tid in self.compiled.shares) or "no route"

    def cluster(self, name: str) -> str | None:
        """The Envoy cluster of subset ``name`` (None for a subset no route reaches)."""
        target = self.target(name)
        return target.cluster if target else None

    def target(self, name: str) -> ChainTarget | None:
        return next((t for t in self.compiled.targets if self.labels.get(t.id) == name), None)

    def to_json(self) -> dict[str, Any]:
        c = self.compiled
        return {
            "upstream": c.upstream, "request": c.request.describe(), "route": c.route, "protocol": c.protocol,
            "shares": {name: round(w, 6) for name, w in zip(self.spec.names, self.spec.weights, strict=True)},
            "paths": {name: self.path(name) for name in self.spec.names},
            "clusters": {name: self.cluster(name) for name in self.spec.names},
            "failover": {self.labels.get(t, t): list(fs) for t, fs in c.failover.items()},
            "notes": list(c.notes),
        }


def propagated(headers: Mapping[str, str]) -> dict[str, str]:
    """The canary's headers that reach the upstream call (service-a's default rule)."""
    return {k: v for k, v in headers.items() if any(fnmatch(k.lower(), p) for p in PROPAGATED)}


def chain_request(headers: Mapping[str, str], path: str | None = None) -> Request:
    return Request(path=path or UPSTREAM_PATH, method="GET", headers=propagated(headers))


def client_upstream(consul: ConsulClient, client: str = CLIENT_SERVICE) -> str:
    """The upstream that ``client``'s sidecar registration names (its only one, or the one
    on service-a's SIDECAR_URL port 9000)."""
    upstreams = []
    for entry in consul.catalog_service(f"{client}-sidecar-proxy"):
        for up in (entry.get("ServiceProxy") or {}).get("Upstreams") or []:
            if (up.get("DestinationType") or "service") == "service" and up.get("DestinationName"):
                upstreams.append((str(up["DestinationName"]), up.get("LocalBindPort")))
    names = sorted({name for name, _ in upstreams})
    if not names:
        raise UsageError(f"Consul at {consul.address} knows no sidecar of {client} with an upstream: "
                         "give the chain to read with --upstream NAME")
    if len(names) > 1:
        on_9000 = [name for name, port in upstreams if port == 9000]
        if len(set(on_9000)) == 1:
            return on_9000[0]
        raise UsageError(f"{client}'s sidecar has upstreams {', '.join(names)}: say which one the canary's "
                         "requests take with --upstream NAME")
    return names[0]


def consul_view(consul: ConsulClient, upstream: str, request: Request) -> ConsulView:
    """Read the compiled chain and the catalog; raise UsageError when they cannot say what
    the split is (no such upstream, no route for the request)."""
    if not consul.catalog_service(upstream) and not consul.get_config("service-router", upstream) \
            and not consul.get_config("service-splitter", upstream) \
            and not consul.get_config("service-resolver", upstream):
        raise UsageError(f"Consul at {consul.address} knows no service {upstream!r} (no instance and no "
                         "router, splitter or resolver): check --upstream")
    splitters: dict[str, Mapping[str, Any] | None] = {}

    def splitter_of(service: str) -> Mapping[str, Any] | None:
        if service not in splitters:
            splitters[service] = consul.get_config("service-splitter", service)
        return splitters[service]

    compiled = compile_split(consul.discovery_chain(upstream), request, splitter_of)
    return _name_subsets(consul, compiled)


def _name_subsets(consul: ConsulClient, compiled: CompiledSplit) -> ConsulView:
    """Name the chain's targets and add the other subsets their resolvers define (at 0 %), so
    a DefaultSubset v2 with no splitter is judged as 0/100, not as 100 % of one thing."""
    keys: list[tuple[str, str, str]] = [(t.service, t.subset, t.datacenter) for t in compiled.targets]
    filters = {(t.service, t.subset, t.datacenter): t.filter for t in compiled.targets}
    home_dc = compiled.targets[0].datacenter if compiled.targets else ""
    for service in dict.fromkeys(t.service for t in compiled.targets):
        if any(not t.subset for t in compiled.targets if t.service == service):
            continue  # a whole-service target already holds every instance
        subsets = (consul.get_config("service-resolver", service) or {}).get("Subsets") or {}
        for name in sorted(subsets):
            key = (service, name, home_dc)
            if key not in filters:
                keys.append(key)
                filters[key] = str(subsets[name].get("Filter") or "")
    label = _labeller(keys, home_dc)
    keys.sort(key=lambda k: _natural(label(k)))  # v1, v2, ..., v10: the order positional weights name
    ids = {(t.service, t.subset, t.datacenter): t.id for t in compiled.targets}
    labels = {ids.get(k, "/".join(k)): label(k) for k in keys}
    names = [label(k) for k in keys]
    weights = [compiled.shares.get(ids.get(k, ""), 0.0) for k in keys]
    app_ids: dict[str, str] = {}
    for key in keys:
        service, _, _ = key
        for entry in consul.health_service(service, filters[key] or None):
            app_id = (entry.get("Service", {}).get("Meta") or {}).get("app_id")
            if app_id is not None:
                app_ids.setdefault(str(app_id), label(key))
    if len(names) == 1:
        names.append(OTHER)
        weights.append(0.0)
    total = sum(weights)
    spec = SplitSpec(tuple(names), tuple(w / total for w in weights))
    source = f"resolver subsets of {', '.join(dict.fromkeys(k[0] for k in keys))} in Consul's catalog"
    return ConsulView(compiled, labels, spec, SubsetMap(tuple(names), app_ids, source))


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _labeller(keys: list[tuple[str, str, str]], home_dc: str) -> Callable[[tuple[str, str, str]], str]:
    one_service = len({k[0] for k in keys}) == 1

    def label(key: tuple[str, str, str]) -> str:
        service, subset, dc = key
        name = (subset or service) if one_service else (f"{subset}.{service}" if subset else service)
        return name if dc in ("", home_dc) else f"{name}.{dc}"

    return label
