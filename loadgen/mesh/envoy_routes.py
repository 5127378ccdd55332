"""What the client sidecar's Envoy was given: the route a request takes, and what it counted.

The canary compares three things: the split Consul compiled (the discovery chain), what the
client sidecar's Envoy was programmed with, and what the traffic did. This module is the
middle one, read from Envoy's admin API:

- :func:`programmed_route` walks a ``/config_dump`` the way Envoy routes one request
  (:class:`RequestShape`): the upstream listener, its HTTP connection manager's RDS route
  config (with the ``version_info`` and ``last_updated`` Envoy holds), the virtual host, then
  the first route whose match holds. Its action's clusters and weights, normalised to
  fractions, are what the data plane does, whatever Consul says now.
- :func:`cluster_counters` reads the ``cluster.<name>.upstream_rq_*`` counters from
  ``/stats`` (JSON or text); :meth:`ClusterCounters.delta` is what a run added.
- :class:`EnvoyAdmin` is the only I/O.

Everything but :class:`EnvoyAdmin` is pure and unit-tested on dumps recorded from a live mesh
(tests/unit/data/README-chains.md).

Matchers loadgen cannot evaluate (``grpc``, ``runtime_fraction``, ``dynamic_metadata``,
``path_match_policy``, a ``custom`` string matcher, a regex Python's ``re`` cannot compile)
raise :class:`UnsupportedRouteError` -- but only when the answer depends on them: a route
whose known conditions already fail is skipped, as Envoy would skip it, and routes after the
one that certainly matches are never looked at. Guessing instead would make the canary compare
against the wrong weights without saying so. Route actions other than ``cluster`` and
``weighted_clusters`` (redirect, direct response, ``cluster_header``) raise the same error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx

from loadgen.errors import ExitCode, LoadgenError, UnreachableError, UsageError
from loadgen.mesh.envoy_admin import _http_connection_managers, _section, listeners

__all__ = [
    "ClusterCounters",
    "EnvoyAdmin",
    "ProgrammedRoute",
    "RequestShape",
    "UnsupportedRouteError",
    "UpstreamListener",
    "cluster_counters",
    "counters_delta",
    "programmed_route",
    "upstream_listeners",
]


class UnsupportedRouteError(LoadgenError):
    """The sidecar's route uses a matcher or action loadgen cannot evaluate.

    Exit code 3 (INCONCLUSIVE): nothing is wrong with the mesh, loadgen just cannot tell what
    Envoy does with the request, so it must not claim a split.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.INCONCLUSIVE)


# -- the request ----------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestShape:
    """The request whose route is wanted: what Envoy's route match looks at.

    ``path`` is the ``:path`` header, query string included (``/hello_b?beta=1``).
    ``headers`` are looked up case-insensitively; the pseudo-headers ``:method``, ``:path``,
    ``:authority`` (``host``) and ``:scheme`` are answered from the fields, as Envoy sees them
    (Consul renders a router's ``Methods`` as a ``:method`` header matcher).
    """

    path: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise UsageError(f"a request path starts with '/': {self.path!r}")
        # Frozen: normalise through object.__setattr__. Header names are case-insensitive in
        # HTTP and Envoy lower-cases them, so one lower-cased, read-only copy serves every lookup.
        lowered = {str(k).lower(): str(v) for k, v in self.headers.items()}
        object.__setattr__(self, "headers", MappingProxyType(lowered))
        object.__setattr__(self, "method", self.method.upper())

    @property
    def bare_path(self) -> str:
        """The path without query string and fragment (what ``path`` and ``safe_regex`` see)."""
        return self.path.split("?", 1)[0].split("#", 1)[0]

    @property
    def query(self) -> dict[str, str]:
        """Query parameters as Envoy 1.36's route matcher sees them (checked on a live Envoy):
        not percent-decoded (``q=a%20b`` matches exact ``a%20b``, not ``a b``), a repeated one
        keeps its first value, and ``?q`` is present with an empty value."""
        out: dict[str, str] = {}
        for part in urlsplit(self.path).query.split("&"):
            if part:
                key, _, value = part.partition("=")
                out.setdefault(key, value)
        return out

    @property
    def host(self) -> str:
        return self.headers.get("host") or self.headers.get(":authority") or ""

    def header(self, name: str) -> str | None:
        key = name.lower()
        pseudo = {":method": self.method, ":path": self.path, ":scheme": "http"}
        if key in pseudo:
            return pseudo[key]
        if key in (":authority", "host"):
            return self.host or None
        return self.headers.get(key)


# -- listeners ------------------------------------------------------------------------------

@dataclass(frozen=True)
class UpstreamListener:
    """One outbound listener of a Consul sidecar (``<upstream>:<address>:<port>``)."""

    name: str
    upstream: str  # Consul's name for the upstream (the listener name's first part)
    address: str
    port: int | None
    hcm: Mapping[str, Any] | None  # its HTTP connection manager; None for L4 (tcp_proxy)

    @property
    def is_http(self) -> bool:
        return self.hcm is not None


def upstream_listeners(dump: Mapping[str, Any]) -> list[UpstreamListener]:
    """The sidecar's active outbound listeners (everything but Consul's ``public_listener``)."""
    out = []
    for listener in listeners(dict(dump)):
        name = str(listener.get("name", ""))
        if name.startswith("public_listener"):
            continue
        sock = (listener.get("address") or {}).get("socket_address") or {}
        port = sock.get("port_value")
        hcms = list(_http_connection_managers(listener))
        out.append(UpstreamListener(name=name, upstream=name.split(":", 1)[0], address=str(sock.get("address", "")),
                                    port=int(port) if port is not None else None, hcm=hcms[0] if hcms else None))
    return out


def _pick_listener(found: list[UpstreamListener], listener: str | int | None) -> UpstreamListener:
    def names() -> str:
        return ", ".join(f.name for f in found) or "none"

    if listener is None:
        http = [f for f in found if f.is_http]
        if len(http) == 1:
            return http[0]
        raise UsageError(f"the client sidecar has {len(http)} HTTP upstream listeners ({names()}); "
                         "name one by upstream or local port")
    key = str(listener)
    for pred in (lambda f: f.name == key,
                 lambda f: f.upstream == key,
                 lambda f: key.isdigit() and f.port == int(key),
                 lambda f: f"{f.address}:{f.port}" == key):
        hits = [f for f in found if pred(f)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise UsageError(f"{key!r} names several upstream listeners of the client sidecar "
                             f"({', '.join(h.name for h in hits)})")
    raise UsageError(f"the client sidecar has no upstream listener {key!r} (it has: {names()})")


# -- the programmed route -------------------------------------------------------------------

@dataclass(frozen=True)
class ProgrammedRoute:
    """The route Envoy picks for a request: its clusters' shares and which config said so."""

    weights: Mapping[str, float]  # Envoy cluster -> fraction of the route's requests (sums to 1)
    entries: tuple[tuple[str, int], ...]  # the action's clusters and weights as Envoy holds them
    listener: str
    route_config: str
    version_info: str  # the route config's version (Consul sends a hash of its content)
    last_updated: str | None  # when Envoy accepted that version (RFC 3339), if the dump says
    virtual_host: str
    route: str  # the route's name, else its match in words
    route_index: int  # position in the virtual host's routes (Envoy takes the first match)

    def describe(self) -> str:
        shares = ", ".join(f"{name} {share:.2%}" for name, share in self.weights.items())
        when = f", updated {self.last_updated}" if self.last_updated else ""
        return (f"route #{self.route_index} ({self.route}) of {self.route_config} version "
                f"{self.version_info[:12] or '?'}{when} on {self.listener}: {shares}")


def programmed_route(dump: Mapping[str, Any], request: RequestShape,
                     listener: str | int | None = None) -> ProgrammedRoute | None:
    """The route the client sidecar gives ``request`` on one upstream listener.

    ``listener`` selects it by full name (``service-a:127.0.0.1:9000``), upstream name
    (``service-a``), local port (``9000``) or ``address:port``; None takes the only HTTP one.
    Returns None when Envoy would not route the request over HTTP: an L4 (tcp_proxy) upstream,
    no virtual host for its Host, or no matching route (Envoy answers 404 itself).
    Raises :class:`UsageError` when the listener is not there (or not unique) and
    :class:`UnsupportedRouteError` when the answer depends on a matcher loadgen cannot evaluate.
    """
    chosen = _pick_listener(upstream_listeners(dump), listener)
    if chosen.hcm is None:
        return None
    rc, version, updated = _route_config(dump, chosen)
    vh = _virtual_host(rc, request.host)
    if vh is None:
        return None
    for index, route in enumerate(vh.get("routes") or []):
        match = route.get("match") or {}
        verdict, unknown = _route_matches(match, request)
        if verdict is False:
            continue
        label = str(route.get("name") or _describe(match))
        if verdict is None:
            raise UnsupportedRouteError(
                f"route #{index} ({label}) of the client sidecar's route config {rc.get('name')!r} uses "
                f"{', '.join(unknown)}, which loadgen cannot evaluate; it cannot tell where Envoy sends {request.path}")
        entries = _action_clusters(route, index, label)
        return ProgrammedRoute(weights=_normalise(entries), entries=entries, listener=chosen.name,
                               route_config=str(rc.get("name", "")), version_info=version, last_updated=updated,
                               virtual_host=str(vh.get("name", "")), route=label, route_index=index)
    return None


def _route_config(dump: Mapping[str, Any], chosen: UpstreamListener) -> tuple[Mapping[str, Any], str, str | None]:
    """(route config, version_info, last_updated) the listener's connection manager uses."""
    hcm = chosen.hcm or {}
    if "route_config" in hcm:  # inlined: its version is the listener's, which we do not track
        return hcm["route_config"], "", None
    name = (hcm.get("rds") or {}).get("route_config_name")
    section = _section(dict(dump), "RoutesConfigDump")
    for item in section.get("dynamic_route_configs", []) + section.get("static_route_configs", []):
        rc = item.get("route_config") or {}
        if rc.get("name") == name:
            return rc, str(item.get("version_info", "")), item.get("last_updated")
    # The listener is active but its RDS config never arrived: Envoy holds no routes for it.
    raise UnsupportedRouteError(f"the client sidecar's listener {chosen.name} names route config {name!r}, "
                                "which is not in its config dump (RDS not received)")


def _virtual_host(rc: Mapping[str, Any], host: str) -> Mapping[str, Any] | None:
    """Envoy's domain choice: exact, then ``*.suffix`` (longest), ``prefix.*`` (longest), ``*``.

    Envoy compares the Host lower-cased and, with ``ignore_port_in_host_matching``, without
    its port; a wildcard never matches an empty remainder.
    """
    host = host.lower()
    if rc.get("ignore_port_in_host_matching") and ":" in host and not host.endswith("]"):
        host = host.rsplit(":", 1)[0]
    exact, suffix, prefix, star = None, (-1, None), (-1, None), None
    for vh in rc.get("virtual_hosts") or []:
        for domain in (str(d).lower() for d in vh.get("domains") or []):
            if domain == "*":
                star = star or vh
            elif domain.startswith("*"):
                if len(host) > len(domain) - 1 and host.endswith(domain[1:]) and len(domain) > suffix[0]:
                    suffix = (len(domain), vh)
            elif domain.endswith("*"):
                if len(host) > len(domain) - 1 and host.startswith(domain[:-1]) and len(domain) > prefix[0]:
                    prefix = (len(domain), vh)
            elif domain == host and exact is None:
                exact = vh
    return exact or suffix[1] or prefix[1] or star


def _action_clusters(route: Mapping[str, Any], index: int, label: str) -> tuple[tuple[str, int], ...]:
    action = route.get("route")
    if action is None:
        kinds = [k for k in ("redirect", "direct_response", "filter_action", "non_forwarding_action") if k in route]
        raise UnsupportedRouteError(f"route #{index} ({label}) of the client sidecar does not forward to a cluster "
                                    f"({', '.join(kinds) or 'no action'})")
    if "cluster" in action:
        return ((str(action["cluster"]), 1),)
    clusters = (action.get("weighted_clusters") or {}).get("clusters")
    if clusters:
        out = []
        for c in clusters:
            if "name" not in c:  # cluster_header: the cluster comes from the request
                raise UnsupportedRouteError(f"route #{index} ({label}) picks a weighted cluster by header")
            # A proto3 uint32 of 0 is left out of the JSON dump: a missing weight is 0.
            out.append((str(c["name"]), int(c.get("weight", 0))))
        if sum(w for _, w in out) <= 0:
            raise UnsupportedRouteError(f"route #{index} ({label}) has weighted clusters that all weigh 0")
        return tuple(out)
    kinds = [k for k in action if k.startswith("cluster")] or ["no cluster"]
    raise UnsupportedRouteError(f"route #{index} ({label}) of the client sidecar picks its cluster by "
                                f"{', '.join(kinds)}, which loadgen cannot evaluate")


def _normalise(entries: tuple[tuple[str, int], ...]) -> dict[str, float]:
    """Fractions of the sum of the weights (``total_weight`` is optional since Envoy 1.2x and
    deprecated, so it is not trusted). A cluster listed twice -- Consul flattens a nested
    splitter that way -- gets both shares; integers are summed before the one division."""
    total = sum(w for _, w in entries)
    summed: dict[str, int] = {}
    for name, weight in entries:
        summed[name] = summed.get(name, 0) + weight
    return {name: weight / total for name, weight in summed.items()}


# -- Envoy's route match --------------------------------------------------------------------
# Three-valued: True / False / None (depends on something loadgen cannot evaluate). Each
# helper returns (verdict, names of the unknown matchers).

_KNOWN_MATCH_KEYS = {"prefix", "path", "safe_regex", "path_separated_prefix", "case_sensitive", "headers",
                     "query_parameters"}
_PATH_SPECIFIERS = ("prefix", "path", "safe_regex", "path_separated_prefix")


def _route_matches(match: Mapping[str, Any], request: RequestShape) -> tuple[bool | None, list[str]]:
    unknown = [f"match.{k}" for k in match if k not in _KNOWN_MATCH_KEYS]
    if not any(k in match for k in _PATH_SPECIFIERS):
        unknown.append("a path specifier other than prefix/path/safe_regex/path_separated_prefix")
    verdicts: list[bool | None] = [_path_matches(match, request)]
    if verdicts[0] is None and "safe_regex" in match:
        unknown.append(f"path regex {(match['safe_regex'] or {}).get('regex')!r} (not valid for Python's re)")
    for rule in match.get("headers") or []:
        v, u = _header_matches(rule, request.header(str(rule.get("name", ""))))
        verdicts.append(v)
        unknown += u
    query = request.query
    for rule in match.get("query_parameters") or []:
        v, u = _query_matches(rule, query.get(str(rule.get("name", ""))))
        verdicts.append(v)
        unknown += u
    if False in verdicts:  # a known condition fails: Envoy skips the route whatever the rest
        return False, []
    if unknown or None in verdicts:
        return None, unknown or ["an unknown matcher"]
    return True, []


def _path_matches(match: Mapping[str, Any], request: RequestShape) -> bool | None:
    # case_sensitive applies to prefix, path and path_separated_prefix, never to a regex.
    fold = not match.get("case_sensitive", True)

    def norm(s: str) -> str:
        return s.lower() if fold else s

    if "prefix" in match:  # without the query string: Envoy 1.36 does not match "/p?x" on "/p?x=1"
        return norm(request.bare_path).startswith(norm(str(match["prefix"])))
    if "path" in match:
        return norm(request.bare_path) == norm(str(match["path"]))
    if "safe_regex" in match:
        return _regex(str((match["safe_regex"] or {}).get("regex", "")), request.bare_path)
    if "path_separated_prefix" in match:
        pre, path = norm(str(match["path_separated_prefix"])), norm(request.bare_path)
        return path == pre or path.startswith(pre + "/")
    return None


_LEGACY_HEADER = {"exact_match": "exact", "prefix_match": "prefix", "suffix_match": "suffix",
                  "contains_match": "contains", "safe_regex_match": "safe_regex"}
_HEADER_META = {"name", "invert_match", "treat_missing_header_as_empty"}


def _header_matches(rule: Mapping[str, Any], value: str | None) -> tuple[bool | None, list[str]]:
    """Envoy's HeaderUtility::matchHeaders for one matcher."""
    kinds = [k for k in rule if k not in _HEADER_META]
    if not kinds:  # no match type at all: Envoy makes it present_match: true
        rule, kinds = {**rule, "present_match": True}, ["present_match"]
    name = rule.get("name")
    invert = bool(rule.get("invert_match"))
    present_kind = kinds == ["present_match"]
    if value is None and rule.get("treat_missing_header_as_empty"):
        value = ""
    if value is None:
        # An absent header (checked on a live Envoy 1.36): only a present_match can hold --
        # present_match: false, or present_match: true inverted. Every value matcher fails,
        # inverted or not (invert exact "1" does not match a request without the header).
        return (present_kind and (not rule["present_match"]) != invert), []
    if len(kinds) != 1:
        return None, [f"header {name} matcher {'/'.join(kinds)}"]
    kind = kinds[0]
    hit: bool | None
    if kind == "present_match":
        hit = bool(rule["present_match"])
    elif kind == "string_match":
        hit = _string(rule["string_match"], value)
    elif kind == "exact_match" and rule[kind] == "":  # Envoy: an empty exact_match takes any value
        hit = True
    elif kind in _LEGACY_HEADER:
        spec = rule[kind]
        # The legacy safe_regex_match holds the RegexMatcher itself; the others a plain string.
        hit = _regex(str(spec.get("regex", "")), value) if kind == "safe_regex_match" else _string(
            {_LEGACY_HEADER[kind]: spec}, value)
    elif kind == "range_match":
        hit = _in_range(rule["range_match"], value)
    else:
        hit = None
    if hit is None:
        detail = "/".join(k for k in rule[kind] if k != "ignore_case") if kind == "string_match" else ""
        return None, [f"header {name} matcher {kind} {detail}".rstrip()]
    return hit != invert, []


def _query_matches(rule: Mapping[str, Any], value: str | None) -> tuple[bool | None, list[str]]:
    """Envoy's QueryParameterMatcher: an absent parameter never matches."""
    if value is None:
        return False, []
    if "string_match" in rule:
        hit = _string(rule["string_match"], value)
        kinds = "/".join(k for k in rule["string_match"] if k != "ignore_case")
        return hit, ([] if hit is not None else [f"query {rule.get('name')} string_match {kinds}"])
    if "present_match" in rule:
        return bool(rule["present_match"]), []
    return True, []  # neither: presence is enough


def _string(spec: Mapping[str, Any], value: str) -> bool | None:
    """Envoy's StringMatcher; None for a kind loadgen does not know (e.g. ``custom``)."""
    fold = bool(spec.get("ignore_case"))  # ignored by safe_regex, as in Envoy
    v = value.lower() if fold else value
    for kind, test in (("exact", str.__eq__), ("prefix", str.startswith), ("suffix", str.endswith),
                       ("contains", str.__contains__)):
        if kind in spec:
            want = str(spec[kind])
            return bool(test(v, want.lower() if fold else want))
    if "safe_regex" in spec:
        return _regex(str((spec["safe_regex"] or {}).get("regex", "")), value)
    return None


def _regex(pattern: str, value: str) -> bool | None:
    # RE2 with full-match semantics; Python's re agrees on the patterns routers use. A pattern
    # Python cannot compile (RE2-only syntax) is unknown rather than a silent mismatch.
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return None


def _in_range(spec: Mapping[str, Any], value: str) -> bool:
    # Int64Range is [start, end); a value that is no integer does not match (Envoy's rule).
    try:
        number = int(value)
    except ValueError:
        return False
    return int(spec.get("start", 0)) <= number < int(spec.get("end", 0))


def _describe(match: Mapping[str, Any]) -> str:
    parts = [f"{k} {match[k]}" for k in ("prefix", "path", "path_separated_prefix") if k in match]
    if "safe_regex" in match:
        parts.append(f"regex {(match['safe_regex'] or {}).get('regex')}")
    if match.get("case_sensitive") is False:
        parts.append("any case")
    for h in match.get("headers") or []:
        shown = {k: v for k, v in h.items() if k != "name"}
        parts.append(f"header {h.get('name')} {json.dumps(shown, sort_keys=True, separators=(',', ':'))}")
    parts += [f"query {q.get('name')}" for q in match.get("query_parameters") or []]
    return ", ".join(parts) or "any request"


# -- counters -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClusterCounters:
    """One cluster's ``upstream_rq_*`` counters (cumulative since Envoy started).

    ``rq_total`` counts requests Envoy sent upstream; ``rq_completed`` and the ``rq_Nxx`` count
    responses, including the 503 Envoy answers itself when no connection could be made -- so
    ``rq_total`` is not the sum of the classes. ``found`` is False when Envoy has no such
    cluster (its counters then read 0).
    """

    rq_total: int = 0
    rq_completed: int = 0
    rq_1xx: int = 0
    rq_2xx: int = 0
    rq_3xx: int = 0
    rq_4xx: int = 0
    rq_5xx: int = 0
    found: bool = True
    reset: bool = False  # a delta across an Envoy restart: these are the counts since it

    @property
    def rq_xx_other(self) -> int:
        """Responses neither 2xx nor 5xx."""
        return self.rq_1xx + self.rq_3xx + self.rq_4xx

    @staticmethod
    def delta(before: ClusterCounters, after: ClusterCounters) -> ClusterCounters:
        """What happened between two reads. Counters only grow, so one that went down means
        Envoy restarted in between: the result is then ``after`` itself (a lower bound) with
        ``reset`` set, rather than negative counts."""
        names = [f.name for f in fields(ClusterCounters) if f.name.startswith("rq_")]
        diffs = {n: getattr(after, n) - getattr(before, n) for n in names}
        if any(d < 0 for d in diffs.values()):
            return ClusterCounters(**{n: getattr(after, n) for n in names}, found=after.found, reset=True)
        return ClusterCounters(**diffs, found=after.found)


_COUNTERS = {"total": "rq_total", "completed": "rq_completed", "1xx": "rq_1xx", "2xx": "rq_2xx",
             "3xx": "rq_3xx", "4xx": "rq_4xx", "5xx": "rq_5xx"}


def _stat_pairs(stats: Mapping[str, Any] | str) -> Iterator[tuple[str, Any]]:
    if isinstance(stats, str):
        if stats.lstrip().startswith("{"):
            stats = json.loads(stats)
        else:  # Envoy's text form: "name: value" per line (histograms too, skipped below)
            for line in stats.splitlines():
                name, sep, value = line.partition(": ")
                if sep:
                    yield name.strip(), value.strip()
            return
    for item in stats.get("stats") or []:
        if "name" in item:  # the {"histograms": ...} element has none
            yield str(item["name"]), item.get("value")


def cluster_counters(stats: Mapping[str, Any] | str, clusters: Iterable[str]) -> dict[str, ClusterCounters]:
    """Each cluster's counters from ``/stats`` (the parsed or raw ``format=json`` body, or the
    text form).

    Cluster names contain dots and Envoy keeps sub-scopes under a cluster
    (``cluster.<name>.external.upstream_rq_2xx`` counts the same requests again), so a stat
    belongs to a cluster only as exactly ``cluster.<name>.upstream_rq_<counter>``.
    """
    wanted = list(dict.fromkeys(clusters))
    values: dict[str, dict[str, int]] = {c: {} for c in wanted}
    heads = {f"cluster.{c}.upstream_rq_": c for c in wanted}
    for name, value in _stat_pairs(stats):
        head, sep, counter = name.rpartition(".upstream_rq_")
        cluster = heads.get(head + sep)
        if cluster is None or counter not in _COUNTERS:
            continue
        try:
            values[cluster][_COUNTERS[counter]] = int(value)
        except (TypeError, ValueError):
            continue
    return {c: ClusterCounters(**v, found=bool(v)) for c, v in values.items()}


def counters_delta(before: Mapping[str, ClusterCounters], after: Mapping[str, ClusterCounters]
                   ) -> dict[str, ClusterCounters]:
    """:meth:`ClusterCounters.delta` per cluster of ``after`` (a cluster new since ``before``
    counts from zero)."""
    return {c: ClusterCounters.delta(before.get(c, ClusterCounters(found=False)), a) for c, a in after.items()}


# -- I/O ------------------------------------------------------------------------------------

class EnvoyAdmin:
    """An Envoy admin API, ``host:port`` or ``http://host:port``.

    Redirects are never followed (an admin API does not redirect; something else answering
    should not send loadgen elsewhere). Anything but Envoy's own answer -- refused, timed out,
    an HTTP error, a redirect, a body that is not Envoy's -- raises :class:`UnreachableError`
    (exit 4) with one line naming the address.
    """

    def __init__(self, address: str, timeout: float = 3.0, transport: httpx.BaseTransport | None = None) -> None:
        base = address.strip().rstrip("/")
        if "://" not in base:
            base = f"http://{base}"
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
            raise UsageError(f"an Envoy admin address is HOST:PORT (e.g. 127.0.0.1:19000), not {address!r}")
        self.address = parts.netloc
        self._client = httpx.Client(base_url=base, timeout=timeout, follow_redirects=False, transport=transport)

    def __enter__(self) -> EnvoyAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _fail(self, what: str) -> UnreachableError:
        line = " ".join(what.split())  # one line, whatever the exception text held
        return UnreachableError(f"Envoy admin at {self.address}: {line}; "
                                "give the client sidecar's admin address with --envoy-admin ADDR")

    def _json(self, path: str, expect: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        try:
            resp = self._client.get(path, params=dict(params) if params else None)
        except httpx.TimeoutException:
            raise self._fail(f"no answer to {path} within the timeout") from None
        except httpx.HTTPError as exc:
            raise self._fail(f"unreachable ({type(exc).__name__}: {exc})") from None
        if resp.is_redirect:
            raise self._fail(f"{path} redirects ({resp.status_code}) to {resp.headers.get('location')}, not followed")
        if resp.status_code != 200:
            raise self._fail(f"{path} answered HTTP {resp.status_code}; is this an Envoy admin port?")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or expect not in body:
            raise self._fail(f"{path} did not answer as an Envoy admin API (no {expect!r} in its JSON)")
        return body

    def config_dump(self) -> dict[str, Any]:
        """``/config_dump``: what :func:`programmed_route` reads. It includes the sidecar's
        certificates (not its private keys, which Envoy redacts); do not store it whole."""
        return self._json("/config_dump", "configs")

    def server_info(self) -> dict[str, Any]:
        """``/server_info``: Envoy's version, state (LIVE) and uptime."""
        return self._json("/server_info", "version")

    def stats(self, filter_regex: str) -> dict[str, Any]:
        """``/stats?format=json`` restricted by Envoy's ``filter`` (an RE2 search)."""
        return self._json("/stats", "stats", {"format": "json", "filter": filter_regex})

    def cluster_stats(self, clusters: Iterable[str]) -> dict[str, ClusterCounters]:
        """The counters of each named cluster (``found`` False for one Envoy does not have)."""
        names = list(dict.fromkeys(clusters))
        if not names:
            return {}
        alternatives = "|".join(re.escape(n) for n in names)
        counters = "|".join(_COUNTERS)
        body = self.stats(rf"^cluster\.({alternatives})\.upstream_rq_({counters})$")
        return cluster_counters(body, names)
