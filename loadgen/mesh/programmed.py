"""What the client sidecar's Envoy was programmed with, for one request, and what it counted.

:func:`programmed_route` walks a ``/config_dump`` the way Envoy routes a request: the
upstream listener's HTTP connection manager, its RDS route config (with the
``version_info`` Envoy holds), the virtual host, then the first route whose match holds
(prefix / path / safe_regex / path_separated_prefix, headers, query parameters). Its
action's clusters and weights (normalised to fractions) are what the data plane does,
whatever Consul says now. :class:`EnvoyAdmin` is the only I/O: the dump and the
per-cluster ``upstream_rq_*`` counters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from loadgen.errors import LoadgenError, UnreachableError
from loadgen.mesh.chain import Request
from loadgen.mesh.envoy_admin import _http_connection_managers, _section, listeners
from loadgen.safe_text import describe_exception

__all__ = ["ClusterCounters", "EnvoyAdmin", "ProgrammedRoute", "UnevaluableRoute", "programmed_route"]


class UnevaluableRoute(LoadgenError):
    """The sidecar's route uses a matcher loadgen does not evaluate (its Envoy column is left out)."""


@dataclass(frozen=True)
class ProgrammedRoute:
    """The route Envoy picks for a request: its clusters' shares and where it came from."""

    weights: dict[str, float]  # Envoy cluster -> fraction of the route's requests
    route_config: str
    version: str  # the route config's version_info (Consul's hash of what it sent)
    match: str  # the route's match, for people
    listener: str

    def describe(self) -> str:
        return f"{self.match} (listener {self.listener})"


@dataclass(frozen=True)
class ClusterCounters:
    """One cluster's upstream request counters (cumulative since Envoy started)."""

    rq_total: int = 0
    rq_2xx: int = 0
    rq_5xx: int = 0

    def delta(self, before: ClusterCounters) -> ClusterCounters:
        """What was counted since ``before``; all of it when a counter went down (Envoy restarted
        in between and counts from zero again)."""
        if self.rq_total < before.rq_total or self.rq_2xx < before.rq_2xx or self.rq_5xx < before.rq_5xx:
            return self
        return ClusterCounters(self.rq_total - before.rq_total, self.rq_2xx - before.rq_2xx,
                               self.rq_5xx - before.rq_5xx)


def programmed_route(dump: Mapping[str, Any], request: Request, upstream: str | None = None
                     ) -> ProgrammedRoute | None:
    """The route of the upstream listener (the one named after ``upstream``, else the only
    HTTP one) that ``request`` matches; None when no HTTP listener routes it (an L4
    tcp_proxy upstream, or no route matches)."""
    routes = {rc.get("name", ""): (rc, str(item.get("version_info", "")))
              for item in _section(dump, "RoutesConfigDump").get("dynamic_route_configs", [])
              if (rc := item.get("route_config") or {})}
    for listener, hcm in _upstream_managers(dump, upstream):
        if "route_config" in hcm:
            rc, version = hcm["route_config"], ""
        else:
            name = (hcm.get("rds") or {}).get("route_config_name", "")
            if name not in routes:
                continue
            rc, version = routes[name]
        host = request.header("host") or ""
        for vh in _virtual_hosts(rc, host):
            for route in vh.get("routes", []):
                if _matches(route.get("match") or {}, request):
                    weights = _weights(route.get("route") or {})
                    if weights is None:
                        return None
                    return ProgrammedRoute(weights, str(rc.get("name", "")), version,
                                           _describe(route.get("match") or {}), listener)
    return None


def _upstream_managers(dump: Mapping[str, Any], upstream: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(listener name, HTTP connection manager) of the outbound listeners, the named one first."""
    found = []
    for listener in listeners(dict(dump)):
        name = str(listener.get("name", ""))
        if name.startswith("public_listener"):
            continue
        for hcm in _http_connection_managers(listener):
            found.append((name, hcm))
    if upstream:
        named = [(n, h) for n, h in found if n.split(":", 1)[0] == upstream]
        yield from named or ([] if len(found) != 1 else found)
        return
    yield from found


def _virtual_hosts(rc: Mapping[str, Any], host: str) -> list[Mapping[str, Any]]:
    """Envoy's domain choice, simplified: an exact host, then a wildcard suffix, then ``*``."""
    hosts = rc.get("virtual_hosts") or []
    bare = host.split(":", 1)[0].lower()
    exact = [vh for vh in hosts if bare and any(d.lower() in (host.lower(), bare) for d in vh.get("domains", []))]
    wild = [vh for vh in hosts
            if bare and any(d.startswith("*.") and bare.endswith(d[1:]) for d in vh.get("domains", []))]
    star = [vh for vh in hosts if "*" in vh.get("domains", [])]
    return (exact or wild or star)[:1]


def _weights(action: Mapping[str, Any]) -> dict[str, float] | None:
    if action.get("cluster"):
        return {str(action["cluster"]): 1.0}
    clusters = (action.get("weighted_clusters") or {}).get("clusters") or []
    total = sum(int(c.get("weight", 0)) for c in clusters)
    if not clusters or total <= 0:
        return None
    out: dict[str, float] = {}
    for c in clusters:
        out[str(c["name"])] = out.get(str(c["name"]), 0.0) + int(c.get("weight", 0)) / total
    return out


# -- Envoy's route match ----------------------------------------------------------------------

_KNOWN_MATCH = {"prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive", "headers",
                "query_parameters"}


def _matches(match: Mapping[str, Any], request: Request) -> bool:
    """Envoy's route match. A matcher loadgen does not evaluate (grpc, runtime_fraction, ...)
    is an error, never a silent mismatch: a wrong route would put the wrong weights beside
    Consul's."""
    unknown = sorted(set(match) - _KNOWN_MATCH)
    if unknown:
        raise UnevaluableRoute(f"the client sidecar's route matches on {', '.join(unknown)}, which loadgen "
                               "cannot evaluate: its Envoy column would be a guess")
    path = request.bare_path
    sensitive = match.get("case_sensitive", True)
    p, m = (path, lambda s: s) if sensitive else (path.lower(), lambda s: s.lower())
    if "prefix" in match and not p.startswith(m(match["prefix"])):
        return False
    if "path" in match and p != m(match["path"]):
        return False
    if "safe_regex" in match and not _full(match["safe_regex"].get("regex", ""), path):
        return False
    if "path_separated_prefix" in match:
        pre = m(match["path_separated_prefix"])
        if not (p == pre or p.startswith(pre.rstrip("/") + "/")):
            return False
    if not all(_header(h, request.header(str(h.get("name", "")))) for h in match.get("headers") or []):
        return False
    query = request.query
    return all(_query(q, query.get(str(q.get("name", "")))) for q in match.get("query_parameters") or [])


def _header(rule: Mapping[str, Any], value: str | None) -> bool:
    present = "present_match" in rule
    invert = bool(rule.get("invert_match"))
    if value is None and rule.get("treat_missing_header_as_empty"):
        value = ""
    if value is None:
        # Envoy on an absent header: a present_match holds when it asks for absence (inverted
        # or not); any value matcher fails, inverted or not (HeaderDataBaseImpl).
        return present and (not rule["present_match"]) != invert
    if present:
        hit = bool(rule["present_match"])
    elif "string_match" in rule:
        hit = _string(rule["string_match"], value)
    else:
        legacy = {"exact_match": "exact", "prefix_match": "prefix", "suffix_match": "suffix",
                  "contains_match": "contains", "safe_regex_match": "safe_regex"}
        spec = {legacy[k]: v for k, v in rule.items() if k in legacy}
        hit = _string(spec, value) if spec else True
    return hit != invert


def _query(rule: Mapping[str, Any], value: str | None) -> bool:
    if value is None:
        return False
    if "string_match" in rule:
        return _string(rule["string_match"], value)
    return bool(rule.get("present_match", True))


def _string(spec: Mapping[str, Any], value: str) -> bool:
    fold = bool(spec.get("ignore_case"))
    v = value.lower() if fold else value

    def w(key: str) -> str:
        return str(spec[key]).lower() if fold else str(spec[key])

    if "exact" in spec:
        return v == w("exact")
    if "prefix" in spec:
        return v.startswith(w("prefix"))
    if "suffix" in spec:
        return v.endswith(w("suffix"))
    if "contains" in spec:
        return w("contains") in v
    if "safe_regex" in spec:
        return _full(spec["safe_regex"].get("regex", ""), value)
    raise UnevaluableRoute(f"the client sidecar's route uses a string matcher loadgen cannot evaluate: {dict(spec)}")


def _full(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return False


def _describe(match: Mapping[str, Any]) -> str:
    parts = [f"{k} {match[k]}" for k in ("prefix", "path", "path_separated_prefix") if k in match]
    if "safe_regex" in match:
        parts.append(f"regex {match['safe_regex'].get('regex')}")
    parts += [f"header {h.get('name')}" for h in match.get("headers") or []]
    parts += [f"query {q.get('name')}" for q in match.get("query_parameters") or []]
    return ", ".join(parts) or "any request"


# -- I/O ------------------------------------------------------------------------------------

class EnvoyAdmin:
    """A sidecar's admin API: ``host:port`` (or ``http://host:port``)."""

    def __init__(self, address: str, timeout: float = 3.0) -> None:
        self.address = address.removeprefix("http://").rstrip("/")
        self._client = httpx.Client(base_url=f"http://{self.address}", timeout=timeout, follow_redirects=False)

    def _get(self, path: str, **params: str) -> Any:
        try:
            resp = self._client.get(path, params=params or None)
            resp.raise_for_status()
            return resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise UnreachableError(f"the client sidecar's Envoy admin at {self.address} did not answer {path} "
                                   f"({describe_exception(exc)}); give the sidecar's admin address with "
                                   "--envoy-admin HOST:PORT") from None

    def config_dump(self) -> dict[str, Any]:
        return self._get("/config_dump")

    def cluster_stats(self, clusters: Iterable[str]) -> dict[str, ClusterCounters]:
        """``upstream_rq_total/2xx/5xx`` of each cluster (zeros for one Envoy has not counted)."""
        names = list(clusters)
        if not names:
            return {}
        wanted = "|".join(re.escape(n) for n in names)
        body = self._get("/stats", format="json", filter=rf"^cluster\.({wanted})\.upstream_rq_(total|2xx|5xx)$")
        values: dict[str, dict[str, int]] = {n: {} for n in names}
        for stat in body.get("stats", []):
            name, value = str(stat.get("name", "")), stat.get("value")
            for cluster in names:
                head = f"cluster.{cluster}.upstream_rq_"
                if name.startswith(head) and isinstance(value, int):
                    values[cluster][name.removeprefix(head)] = value
        return {c: ClusterCounters(v.get("total", 0), v.get("2xx", 0), v.get("5xx", 0)) for c, v in values.items()}

    def close(self) -> None:
        self._client.close()
