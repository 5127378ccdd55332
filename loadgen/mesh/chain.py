"""The split Consul compiled for one request: its discovery chain, walked like Envoy will.

``GET /v1/discovery-chain/<upstream>`` returns the chain Consul compiled from the upstream's
service-defaults, service-router, service-splitter and service-resolver entries -- the
same structure Consul turns into the client sidecar's Envoy routes and clusters. This
module is pure: :func:`compile_split` takes that JSON and a :class:`Request` (path,
method, headers as the client sidecar sees them), picks the route Consul's router would
pick, and multiplies weights through the splitter down to resolver targets.

Consul flattens nested splitters when it compiles (a split to a virtual service with its
own splitter becomes several splits with the product weights), so the chain alone cannot
say which splitter a weight came from. ``splitter_of`` (the raw service-splitter entries,
optional) lets :func:`compile_split` name the path, e.g. "25 % via splitter service-b 50 %
> splitter service-b-canary 50 %"; when the entries disagree with the chain (someone wrote
one in between) the chain wins and the path says only what the chain knows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from loadgen.errors import UsageError

__all__ = ["ChainTarget", "CompiledSplit", "Leg", "Request", "compile_split"]


@dataclass(frozen=True)
class Request:
    """The request the client sidecar routes: path (with query), method, headers."""

    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        """A header's value, case-insensitive; Envoy's pseudo-headers (``:method``, ``:path``,
        ``:authority``) too, since its routes match a method as ``:method``."""
        wanted = name.lower()
        if wanted == ":method":
            return self.method
        if wanted == ":path":
            return self.path
        if wanted == ":authority":
            wanted = "host"
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    @property
    def bare_path(self) -> str:
        return urlsplit(self.path).path or "/"

    @property
    def query(self) -> dict[str, str]:
        """Query parameters as Envoy matches them: not percent-decoded, the first of a repeated one."""
        out: dict[str, str] = {}
        for part in urlsplit(self.path).query.split("&"):
            name, _, value = part.partition("=")
            if name:
                out.setdefault(name, value)
        return out

    def describe(self) -> str:
        heads = "".join(f", {k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.path}{heads}"


@dataclass(frozen=True)
class ChainTarget:
    """A resolver target: where a share of the traffic ends (one Envoy cluster)."""

    id: str  # the chain's target id, "v1.service-b.default.default.dc1"
    service: str
    subset: str  # "" when the target is the whole service
    namespace: str
    partition: str
    datacenter: str
    cluster: str  # the Envoy cluster Consul names after it (the target's Name, else its SNI)
    filter: str = ""  # the resolver subset's filter expression ("" selects every instance)
    peer: str = ""

    @classmethod
    def from_chain(cls, target: Mapping[str, Any]) -> ChainTarget:
        return cls(
            id=str(target.get("ID", "")), service=str(target.get("Service", "")),
            subset=str(target.get("ServiceSubset") or ""), namespace=str(target.get("Namespace") or "default"),
            partition=str(target.get("Partition") or "default"), datacenter=str(target.get("Datacenter") or ""),
            cluster=str(target.get("Name") or target.get("SNI") or ""),
            filter=str((target.get("Subset") or {}).get("Filter") or ""), peer=str(target.get("Peer") or ""),
        )


@dataclass(frozen=True)
class Leg:
    """One way traffic reaches a target: its share of the route and the splits on the way."""

    share: float  # fraction of the route's requests
    via: tuple[str, ...]  # e.g. ("splitter service-b", "splitter service-b-canary")
    steps: tuple[float, ...] = ()  # each splitter's own weight on the way, when known

    def describe(self) -> str:
        """``25 % via splitter service-b 50 % > splitter service-b-canary 50 %``; a single
        step needs no weight of its own (it is the share)."""
        if not self.via:
            return f"{self.share * 100:.4g} % direct"
        hops = list(self.via)
        if len(hops) > 1 and len(self.steps) == len(hops):
            hops = [f"{hop} {w * 100:.4g} %" for hop, w in zip(hops, self.steps, strict=True)]
        return f"{self.share * 100:.4g} % via {' > '.join(hops)}"


@dataclass(frozen=True)
class CompiledSplit:
    """Where Consul's chain sends one request: each target's share and how it got there."""

    upstream: str  # the chain's service name
    route: str  # which route of the router matched, for people
    request: Request
    targets: tuple[ChainTarget, ...]  # targets with a share, in the chain's order
    shares: dict[str, float]  # target id -> fraction of the route's requests (sums to 1)
    legs: dict[str, tuple[Leg, ...]]
    failover: dict[str, tuple[str, ...]]  # target id -> failover target ids (reported, not expected)
    protocol: str = "tcp"
    notes: tuple[str, ...] = ()

    def target(self, target_id: str) -> ChainTarget:
        return next(t for t in self.targets if t.id == target_id)

    def describe(self, target_id: str) -> str:
        return " + ".join(leg.describe() for leg in self.legs.get(target_id, ()))


SplitterLookup = Callable[[str], Mapping[str, Any] | None]


def compile_split(chain_json: Mapping[str, Any], request: Request,
                  splitter_of: SplitterLookup | None = None) -> CompiledSplit:
    """The targets ``request`` reaches through the compiled chain, with their shares.

    Raises UsageError when no route of the chain matches the request (Consul's router then
    has no default either -- only possible with a catch-all removed by hand)."""
    chain = chain_json.get("Chain", chain_json)
    nodes: Mapping[str, Any] = chain.get("Nodes") or {}
    targets = {tid: ChainTarget.from_chain(t) for tid, t in (chain.get("Targets") or {}).items()}
    upstream = str(chain.get("ServiceName", ""))
    start = str(chain.get("StartNode", ""))
    route_text = "no router (every request)"
    node_name = start
    node = nodes.get(start) or {}
    destination: Mapping[str, Any] = {"Service": upstream}
    if node.get("Type") == "router":
        node_name, route_text, destination = _pick_route(node, request, upstream)
        node = nodes.get(node_name) or {}
    shares: dict[str, float] = {}
    legs: dict[str, list[Leg]] = {}
    notes: list[str] = []
    if node.get("Type") == "splitter":
        top = _node_service(node_name)
        for target_id, leg in _split_legs(node, nodes, targets, top, splitter_of, notes):
            shares[target_id] = shares.get(target_id, 0.0) + leg.share
            legs.setdefault(target_id, []).append(leg)
    elif node.get("Type") == "resolver":
        target_id = str((node.get("Resolver") or {}).get("Target", ""))
        shares[target_id] = 1.0
        legs[target_id] = [Leg(1.0, _resolver_via(destination, targets.get(target_id)))]
    else:
        raise UsageError(f"Consul's discovery chain for {upstream} has a node {node_name!r} of unknown type "
                         f"{node.get('Type')!r}; loadgen cannot tell where its traffic goes")
    failover = _failover(nodes, shares)
    ordered = tuple(targets[tid] for tid in targets if tid in shares)
    missing = [tid for tid in shares if tid not in targets]
    if missing:
        raise UsageError(f"Consul's discovery chain for {upstream} names target {missing[0]} but does not "
                         "describe it")
    return CompiledSplit(upstream=upstream, route=route_text, request=request, targets=ordered, shares=shares,
                         legs={k: tuple(v) for k, v in legs.items()}, failover=failover,
                         protocol=str(chain.get("Protocol", "tcp")), notes=tuple(notes))


# -- the router -----------------------------------------------------------------------------

def _pick_route(router: Mapping[str, Any], request: Request,
                upstream: str) -> tuple[str, str, Mapping[str, Any]]:
    routes = router.get("Routes") or []
    for i, route in enumerate(routes, 1):
        definition = route.get("Definition") or {}
        http = (definition.get("Match") or {}).get("HTTP") or {}
        if _http_matches(http, request):
            last = i == len(routes) and http == {"PathPrefix": "/"}
            what = "the default route (PathPrefix /)" if last else f"route {i} of service-router {upstream} " \
                f"({_describe_match(http)})"
            return str(route.get("NextNode", "")), what, definition.get("Destination") or {}
    raise UsageError(f"no route of service-router {upstream} matches {request.describe()}: Consul's compiled chain "
                     "has no catch-all, so this request gets no upstream at all; give the request service-a makes "
                     "(--path, --header)")


def _http_matches(http: Mapping[str, Any], request: Request) -> bool:
    """Consul's ServiceRouteHTTPMatch, as its Envoy routes evaluate it (every field must hold)."""
    path = request.bare_path
    if "PathExact" in http and http["PathExact"] and path != http["PathExact"]:
        return False
    if http.get("PathPrefix") and not path.startswith(http["PathPrefix"]):
        return False
    if http.get("PathRegex") and not _full_match(http["PathRegex"], path):
        return False
    methods = [str(m).upper() for m in http.get("Methods") or []]
    if methods and request.method.upper() not in methods:
        return False
    if not all(_header_matches(h, request) for h in http.get("Header") or []):
        return False
    query = request.query
    return all(_query_matches(q, query) for q in http.get("QueryParam") or [])


def _header_matches(rule: Mapping[str, Any], request: Request) -> bool:
    value = request.header(str(rule.get("Name", "")))
    if value is None:
        # Consul renders Present as Envoy's present_match and the rest as value matchers; on an
        # absent header Envoy's present_match holds only inverted ("must be absent") and a value
        # matcher never holds, inverted or not.
        return bool(rule.get("Present")) and bool(rule.get("Invert"))
    if rule.get("Present"):
        hit = True
    elif rule.get("Exact"):
        hit = _cmp(value, rule["Exact"], rule, lambda v, w: v == w)
    elif rule.get("Prefix"):
        hit = _cmp(value, rule["Prefix"], rule, str.startswith)
    elif rule.get("Suffix"):
        hit = _cmp(value, rule["Suffix"], rule, str.endswith)
    elif rule.get("Contains"):
        hit = _cmp(value, rule["Contains"], rule, lambda v, w: w in v)
    elif rule.get("Regex"):
        hit = _full_match(rule["Regex"], value)
    else:
        hit = True  # Name only: Consul renders it as a present match
    return hit != bool(rule.get("Invert"))


def _cmp(value: str, wanted: str, rule: Mapping[str, Any], test: Callable[[str, str], bool]) -> bool:
    if rule.get("IgnoreCase"):
        return test(value.lower(), str(wanted).lower())
    return test(value, str(wanted))


def _query_matches(rule: Mapping[str, Any], query: Mapping[str, str]) -> bool:
    value = query.get(str(rule.get("Name", "")))
    if value is None:
        return False
    if rule.get("Exact"):
        return value == rule["Exact"]
    if rule.get("Regex"):
        return _full_match(rule["Regex"], value)
    return True  # Present


def _full_match(pattern: str, value: str) -> bool:
    # Envoy uses RE2 with full-match semantics; Python's re agrees on the patterns routes use.
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error as exc:
        raise UsageError(f"cannot evaluate the route regex {pattern!r} ({exc})") from None


def _describe_match(http: Mapping[str, Any]) -> str:
    parts = [f"{k} {http[k]}" for k in ("PathExact", "PathPrefix", "PathRegex") if http.get(k)]
    if http.get("Methods"):
        parts.append("methods " + ",".join(http["Methods"]))
    for h in http.get("Header") or []:
        how = next((f"{k.lower()} {h[k]!r}" for k in ("Exact", "Prefix", "Suffix", "Contains", "Regex") if h.get(k)),
                   "present")
        parts.append(f"header {h.get('Name')} {'not ' if h.get('Invert') else ''}{how}")
    for q in http.get("QueryParam") or []:
        how = next((f"{k.lower()} {q[k]!r}" for k in ("Exact", "Regex") if q.get(k)), "present")
        parts.append(f"query {q.get('Name')} {how}")
    return ", ".join(parts) or "every request"


# -- splitters and resolvers ----------------------------------------------------------------

def _node_service(node_name: str) -> str:
    """``splitter:service-b.default.default`` -> ``service-b``."""
    return node_name.split(":", 1)[-1].split(".", 1)[0]


def _resolver_target(nodes: Mapping[str, Any], node_name: str) -> str:
    node = nodes.get(node_name) or {}
    if node.get("Type") != "resolver":
        raise UsageError(f"Consul's discovery chain has a split to {node_name!r}, which is not a resolver")
    return str((node.get("Resolver") or {}).get("Target", ""))


def _resolver_via(destination: Mapping[str, Any], target: ChainTarget | None) -> tuple[str, ...]:
    """How a request that meets no splitter reaches its one target, for people."""
    service = str(destination.get("Service", ""))
    if target is None:
        return (f"resolver {service}",)
    subset = f" subset {target.subset}" if target.subset else ""
    if target.service != service:
        return (f"resolver {service} redirects to {target.service}{subset}",)
    if target.subset and not destination.get("ServiceSubset"):
        return (f"resolver {service} DefaultSubset {target.subset}",)
    return (f"resolver {service}{subset}",)


def _split_legs(node: Mapping[str, Any], nodes: Mapping[str, Any], targets: Mapping[str, ChainTarget], top: str,
                splitter_of: SplitterLookup | None, notes: list[str]) -> list[tuple[str, Leg]]:
    """(target id, leg) for every split of the (flattened) splitter node."""
    # Rounded: Consul's weights have two decimals, so 66.67 is 0.6667 and not 0.6667000000000001.
    flat = [(_resolver_target(nodes, str(s.get("NextNode", ""))), round(float(s.get("Weight", 0)) / 100, 10))
            for s in node.get("Splits") or []]
    named = _named_legs(top, splitter_of, nodes, node, targets) if splitter_of else None
    if named is not None and _same_shares(named, flat):
        return named
    if splitter_of is not None:
        notes.append(f"the service-splitter entries under {top} do not add up to the chain Consul compiled "
                     "(written in between?): the chain is used, without naming nested splitters")
    out = []
    for split, (target_id, share) in zip(node.get("Splits") or [], flat, strict=True):
        inner = float((split.get("Definition") or {}).get("Weight", split.get("Weight", 0)))
        nested = abs(inner - float(split.get("Weight", 0))) > 1e-9
        via = (f"splitter {top}",) + (("a nested splitter",) if nested else ())
        out.append((target_id, Leg(share, via)))
    return out


def _named_legs(top: str, splitter_of: SplitterLookup, nodes: Mapping[str, Any], node: Mapping[str, Any],
                targets: Mapping[str, ChainTarget]) -> list[tuple[str, Leg]] | None:
    """The legs rebuilt from the raw splitter entries, naming each splitter on the way."""
    targets_by_key = {}
    for s in node.get("Splits") or []:
        tid = _resolver_target(nodes, str(s.get("NextNode", "")))
        target = targets.get(tid)
        if target is None:
            return None
        targets_by_key[(target.service, target.subset)] = tid
    out: list[tuple[str, Leg]] = []

    def walk(service: str, share: float, via: tuple[str, ...], steps: tuple[float, ...], depth: int) -> bool:
        entry = splitter_of(service)
        if entry is None or depth > 8:
            return False
        for split in entry.get("Splits") or []:
            weight = float(split.get("Weight", 0)) / 100
            if weight <= 0:
                continue
            to = str(split.get("Service") or service)
            subset = str(split.get("ServiceSubset") or "")
            hop, hop_steps = (*via, f"splitter {service}"), (*steps, weight)
            if not subset and to != service and splitter_of(to) is not None:
                if not walk(to, share * weight, hop, hop_steps, depth + 1):
                    return False
                continue
            tid = targets_by_key.get((to, subset))
            if tid is None and not subset:
                tid = next((t for (svc, _), t in targets_by_key.items() if svc == to), None)
            if tid is None:
                return False
            out.append((tid, Leg(round(share * weight, 10), hop, hop_steps)))
        return True

    return out if walk(top, 1.0, (), (), 0) else None


def _same_shares(named: list[tuple[str, Leg]], flat: list[tuple[str, float]]) -> bool:
    def total(pairs: list[tuple[str, float]]) -> dict[str, float]:
        acc: dict[str, float] = {}
        for tid, share in pairs:
            acc[tid] = acc.get(tid, 0.0) + share
        return acc

    a = total([(t, leg.share) for t, leg in named])
    b = total([(t, s) for t, s in flat if s > 0])
    return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 for k in a)


def _failover(nodes: Mapping[str, Any], shares: Mapping[str, float]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for node in nodes.values():
        resolver = node.get("Resolver") or {}
        target = str(resolver.get("Target", ""))
        fail = (resolver.get("Failover") or {}).get("Targets") or []
        if node.get("Type") == "resolver" and target in shares and fail:
            out[target] = tuple(str(t) for t in fail)
    return out
