"""loadgen.mesh.envoy_routes on real service-a sidecar dumps and counters (README-chains.md).

The header-matcher and query cases without a recorded dump follow what a live Envoy 1.36.2
did with the same route config (a direct_response per route, curl per case).
"""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from loadgen.errors import ExitCode, UnreachableError, UsageError
from loadgen.mesh.envoy_routes import (
    ClusterCounters,
    EnvoyAdmin,
    RequestShape,
    UnsupportedRouteError,
    cluster_counters,
    counters_delta,
    programmed_route,
    upstream_listeners,
)

DATA = Path(__file__).parent / "data"
TRUST = "0b532533-90b9-99b2-224c-ab18eb658098"
V1 = f"v1.service-b.default.dc1.internal.{TRUST}.consul"
V2 = f"v2.service-b.default.dc1.internal.{TRUST}.consul"
SERVICE_A = f"service-a.default.dc1.internal.{TRUST}.consul"


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text())


def route_section(dump: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in dump["configs"] if c["@type"].endswith(".RoutesConfigDump"))


def with_routes(routes: list[dict[str, Any]], virtual_hosts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The recorded splitter dump with its one route config's routes (or virtual hosts) replaced."""
    dump = copy.deepcopy(load("dump_splitter"))
    rc = route_section(dump)["dynamic_route_configs"][0]["route_config"]
    rc["virtual_hosts"] = virtual_hosts or [{"name": "service-a", "domains": ["*"], "routes": routes}]
    return dump


def to(body: str) -> dict[str, Any]:
    return {"cluster": body}


def hit(dump: dict[str, Any], request: RequestShape) -> str | None:
    route = programmed_route(dump, request)
    return None if route is None else next(iter(route.weights))


# -- the recorded configurations ------------------------------------------------------------

def test_splitter_weights_and_version():
    route = programmed_route(load("dump_splitter"), RequestShape("/hello_b"))
    assert route is not None
    assert dict(route.weights) == {V1: 0.85, V2: 0.15}
    assert route.entries == ((V1, 8500), (V2, 1500))
    assert route.listener == "service-a:127.0.0.1:9000"
    assert route.route_config == "service-a"
    assert route.version_info == "8405edef755151fd48c00189b0048ea6f97d54343e572de1a2e926ea127e01fd"
    assert route.last_updated == "2026-11-29T00:44:04.276Z"
    assert route.route_index == 0 and route.route == "prefix /hello_b"
    assert "8405edef7551" in route.describe() and "85.00%" in route.describe()


def test_other_paths_stay_on_service_a():
    route = programmed_route(load("dump_splitter"), RequestShape("/hello_a"))
    assert route is not None and dict(route.weights) == {SERVICE_A: 1.0} and route.route_index == 1


@pytest.mark.parametrize("listener", [None, "service-a:127.0.0.1:9000", "service-a", 9000, "9000", "127.0.0.1:9000"])
def test_listener_selection(listener):
    route = programmed_route(load("dump_splitter"), RequestShape("/hello_b"), listener=listener)
    assert route is not None and route.listener == "service-a:127.0.0.1:9000"


def test_unknown_listener_names_the_ones_there():
    with pytest.raises(UsageError, match=r"no upstream listener 'db' \(it has: service-a:127.0.0.1:9000\)"):
        programmed_route(load("dump_splitter"), RequestShape("/hello_b"), listener="db")


def test_l4_upstream_has_no_route():
    basic = load("basic-service-a")  # basic stage: tcp_proxy to service-b
    assert [(u.name, u.is_http) for u in upstream_listeners(basic)] == [("service-b:127.0.0.1:9000", False)]
    assert programmed_route(basic, RequestShape("/hello_b"), listener="service-b") is None
    with pytest.raises(UsageError, match="0 HTTP upstream listeners"):
        programmed_route(basic, RequestShape("/hello_b"))


@pytest.mark.parametrize(
    ("request_", "index", "weights"),
    [
        (RequestShape("/hello_b", headers={"x-canary": "1"}), 0, {V2: 1.0}),
        (RequestShape("/hello_b", headers={"X-Canary": "1"}), 0, {V2: 1.0}),  # names are case-insensitive
        (RequestShape("/hello_b?x=1", headers={"x-canary": "1"}), 0, {V2: 1.0}),
        (RequestShape("/hello_b", headers={"x-canary": "2"}), 3, {V1: 0.85, V2: 0.15}),
        (RequestShape("/hello_b"), 3, {V1: 0.85, V2: 0.15}),
        # Methods -> ":method" safe_regex_match; QueryParam Present -> present_match.
        (RequestShape("/hello_b/beta?beta", method="post"), 1, {V1: 1.0}),
        (RequestShape("/hello_b/beta?beta=yes", method="POST"), 1, {V1: 1.0}),
        (RequestShape("/hello_b/beta?beta"), 2, {V1: 1.0}),  # GET: on to the regex route
        (RequestShape("/hello_b/beta?other", method="POST"), 2, {V1: 1.0}),
        # PathRegex + header x-debug Present Invert: holds while x-debug is absent.
        (RequestShape("/hello_c/x"), 2, {V1: 1.0}),
        (RequestShape("/hello_c/x", headers={"x-debug": "1"}), 4, {SERVICE_A: 1.0}),
        (RequestShape("/hello_b/x", headers={"x-debug": "1"}), 3, {V1: 0.85, V2: 0.15}),
        (RequestShape("/hello_c"), 4, {SERVICE_A: 1.0}),  # regex needs the trailing /.*
    ],
)
def test_header_route(request_, index, weights):
    route = programmed_route(load("dump_header_route"), request_)
    assert route is not None
    assert (route.route_index, dict(route.weights)) == (index, weights)
    assert route.version_info.startswith("3d4d335262c5")


def test_header_route_describes_its_match():
    route = programmed_route(load("dump_header_route"), RequestShape("/hello_b", headers={"x-canary": "1"}))
    assert route is not None and route.route == 'prefix /hello_b, header x-canary {"exact_match":"1"}'


def test_nested_splitter_is_flattened():
    route = programmed_route(load("dump_nested"), RequestShape("/hello_b"))
    assert route is not None
    # Consul hands Envoy v1 twice (50 % direct + 50 % x 50 % through service-b-canary).
    assert route.entries == ((V1, 5000), (V1, 2500), (V2, 2500))
    assert dict(route.weights) == {V1: 0.75, V2: 0.25}


def test_decimal_weights_normalise():
    route = programmed_route(load("dump_decimal"), RequestShape("/hello_b"))
    assert route is not None and dict(route.weights) == {V1: 0.6667, V2: 0.3333}


def test_missing_total_weight_sums_the_weights():
    dump = load("dump_decimal")
    action = route_section(dump)["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    del action["weighted_clusters"]["total_weight"]
    action["weighted_clusters"]["clusters"][0]["weight"] = 2
    action["weighted_clusters"]["clusters"][1]["weight"] = 1
    route = programmed_route(dump, RequestShape("/hello_b"))
    assert route is not None and dict(route.weights) == {V1: 2 / 3, V2: 1 / 3}


def test_default_subset_is_one_cluster():
    route = programmed_route(load("dump_default_subset_v2"), RequestShape("/hello_b"))
    assert route is not None and dict(route.weights) == {V2: 1.0} and route.entries == ((V2, 1),)


def test_no_matching_route_is_none():
    assert programmed_route(with_routes([{"match": {"prefix": "/x"}, "route": to("c")}]), RequestShape("/y")) is None


def test_route_config_not_received():
    dump = load("dump_splitter")
    route_section(dump)["dynamic_route_configs"] = []
    with pytest.raises(UnsupportedRouteError, match=r"names route config 'service-a'.*RDS not received"):
        programmed_route(dump, RequestShape("/hello_b"))


# -- Envoy's match rules on synthetic routes ------------------------------------------------

def header_dump(*matchers: dict[str, Any]) -> dict[str, Any]:
    return with_routes([{"match": {"prefix": "/", "headers": list(matchers)}, "route": to("hit")},
                        {"match": {"prefix": "/"}, "route": to("miss")}])


@pytest.mark.parametrize(
    ("matcher", "headers", "expected"),
    [
        # As Envoy 1.36.2 answered: an absent header only satisfies a present_match.
        ({"name": "x-debug", "present_match": True, "invert_match": True}, {}, "hit"),
        ({"name": "x-debug", "present_match": True, "invert_match": True}, {"x-debug": "1"}, "miss"),
        ({"name": "x-a", "string_match": {"exact": "1"}, "invert_match": True}, {}, "miss"),
        ({"name": "x-a", "string_match": {"exact": "1"}, "invert_match": True}, {"x-a": "1"}, "miss"),
        ({"name": "x-a", "string_match": {"exact": "1"}, "invert_match": True}, {"x-a": "2"}, "hit"),
        ({"name": "x-p", "present_match": False}, {}, "hit"),
        ({"name": "x-p", "present_match": False}, {"x-p": "1"}, "miss"),
        ({"name": "x-p", "present_match": False, "invert_match": True}, {}, "miss"),
        ({"name": "x-p", "present_match": False, "invert_match": True}, {"x-p": "1"}, "hit"),
        ({"name": "x-a", "exact_match": "1", "invert_match": True}, {}, "miss"),
        ({"name": "x-a", "exact_match": "1", "invert_match": True}, {"x-a": "2"}, "hit"),
        # No match type: presence.
        ({"name": "x-a"}, {"x-a": ""}, "hit"),
        ({"name": "x-a"}, {}, "miss"),
        ({"name": "x-a", "treat_missing_header_as_empty": True, "string_match": {"exact": ""}}, {}, "hit"),
        # string_match kinds, ignore_case, and the legacy fields.
        ({"name": "x-a", "string_match": {"prefix": "can"}}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "string_match": {"suffix": "ary"}}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "string_match": {"contains": "nar"}}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "string_match": {"exact": "CANARY"}}, {"x-a": "canary"}, "miss"),
        ({"name": "x-a", "string_match": {"exact": "CANARY", "ignore_case": True}}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "string_match": {"safe_regex": {"regex": "c.n"}}}, {"x-a": "canary"}, "miss"),  # full match
        ({"name": "x-a", "string_match": {"safe_regex": {"regex": "c.n.*"}}}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "prefix_match": "can"}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "suffix_match": "xyz"}, {"x-a": "canary"}, "miss"),
        ({"name": "x-a", "contains_match": "nar"}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "safe_regex_match": {"google_re2": {}, "regex": "[a-z]+"}}, {"x-a": "canary"}, "hit"),
        ({"name": "x-a", "exact_match": ""}, {"x-a": "anything"}, "hit"),
        ({"name": "x-n", "range_match": {"start": "1", "end": "10"}}, {"x-n": "9"}, "hit"),
        ({"name": "x-n", "range_match": {"start": "1", "end": "10"}}, {"x-n": "10"}, "miss"),
        ({"name": "x-n", "range_match": {"start": "1", "end": "10"}}, {"x-n": "nine"}, "miss"),
        ({"name": ":method", "safe_regex_match": {"google_re2": {}, "regex": "GET|HEAD"}}, {}, "hit"),
    ],
)
def test_header_matchers(matcher, headers, expected):
    assert hit(header_dump(matcher), RequestShape("/", headers=headers)) == expected


@pytest.mark.parametrize(
    ("match", "path", "expected"),
    [
        ({"prefix": "/a"}, "/abc", "hit"),
        ({"prefix": "/p?x"}, "/p?x=1", "miss"),  # Envoy 1.36 matches a prefix on the path without query
        ({"prefix": "/A", "case_sensitive": False}, "/abc", "hit"),
        ({"prefix": "/A"}, "/abc", "miss"),
        ({"path": "/a"}, "/a?b=1", "hit"),
        ({"path": "/a"}, "/a/", "miss"),
        ({"path": "/A", "case_sensitive": False}, "/a", "hit"),
        ({"safe_regex": {"regex": "/a[0-9]+"}}, "/a12?x", "hit"),
        ({"safe_regex": {"regex": "/a[0-9]+"}}, "/a12/", "miss"),
        ({"path_separated_prefix": "/api"}, "/api", "hit"),
        ({"path_separated_prefix": "/api"}, "/api/v1", "hit"),
        ({"path_separated_prefix": "/api"}, "/apiv1", "miss"),
        ({"path_separated_prefix": "/api"}, "/api?x", "hit"),
        # Query values are not decoded and the first of a repeated one counts (Envoy 1.36.2).
        ({"prefix": "/", "query_parameters": [{"name": "q", "string_match": {"exact": "a%20b"}}]}, "/?q=a%20b", "hit"),
        ({"prefix": "/", "query_parameters": [{"name": "q", "string_match": {"exact": "a b"}}]}, "/?q=a%20b", "miss"),
        ({"prefix": "/", "query_parameters": [{"name": "q", "string_match": {"exact": "x"}}]}, "/?q=c&q=x", "miss"),
        ({"prefix": "/", "query_parameters": [{"name": "q", "string_match": {"exact": "x"}}]}, "/?q=x&q=c", "hit"),
        ({"prefix": "/", "query_parameters": [{"name": "q", "present_match": True}]}, "/?q", "hit"),
        ({"prefix": "/", "query_parameters": [{"name": "q", "present_match": True}]}, "/?qq=1", "miss"),
        ({"prefix": "/", "query_parameters": [{"name": "q"}]}, "/?q=1", "hit"),
    ],
)
def test_path_and_query_matchers(match, path, expected):
    dump = with_routes([{"match": match, "route": to("hit")}, {"match": {"prefix": "/"}, "route": to("miss")}])
    assert hit(dump, RequestShape(path)) == expected


def test_virtual_host_by_host_header():
    hosts = [
        {"name": "star", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": to("star")}]},
        {"name": "suffix", "domains": ["*.example.com"], "routes": [{"match": {"prefix": "/"}, "route": to("suffix")}]},
        {"name": "prefix", "domains": ["api.*"], "routes": [{"match": {"prefix": "/"}, "route": to("prefix")}]},
        {"name": "exact", "domains": ["api.example.com", "api.example.com:9000"],
         "routes": [{"match": {"prefix": "/"}, "route": to("exact")}]},
    ]
    dump = with_routes([], virtual_hosts=hosts)
    assert hit(dump, RequestShape("/", headers={"Host": "API.example.com"})) == "exact"
    assert hit(dump, RequestShape("/", headers={"host": "api.example.com:9000"})) == "exact"
    assert hit(dump, RequestShape("/", headers={"host": "www.example.com"})) == "suffix"
    assert hit(dump, RequestShape("/", headers={"host": "api.other.org"})) == "prefix"
    assert hit(dump, RequestShape("/", headers={"host": "example.com"})) == "star"  # "*." needs a label
    assert hit(dump, RequestShape("/")) == "star"


def test_unknown_matcher_raises_only_when_it_decides():
    grpc_first = [{"match": {"prefix": "/hello_b", "grpc": {}}, "route": to("grpc")},
                  {"match": {"prefix": "/"}, "route": to("rest")}]
    with pytest.raises(UnsupportedRouteError, match=r"route #0 \(prefix /hello_b\).* uses match\.grpc") as err:
        programmed_route(with_routes(grpc_first), RequestShape("/hello_b"))
    assert err.value.code == ExitCode.INCONCLUSIVE
    # Its known prefix already fails: Envoy skips the route whatever grpc says.
    assert hit(with_routes(grpc_first), RequestShape("/other")) == "rest"
    custom = [{"match": {"prefix": "/", "headers": [{"name": "x", "string_match": {"custom": {}}}]},
               "route": to("c")}]
    with pytest.raises(UnsupportedRouteError, match="header x matcher string_match custom"):
        programmed_route(with_routes(custom), RequestShape("/", headers={"x": "1"}))
    with pytest.raises(UnsupportedRouteError, match=r"match\.path_match_policy, a path specifier other than"):
        programmed_route(with_routes([{"match": {"path_match_policy": {}}, "route": to("c")}]), RequestShape("/"))


def test_unsupported_actions_raise():
    redirect = [{"match": {"prefix": "/"}, "redirect": {"path_redirect": "/x"}}]
    with pytest.raises(UnsupportedRouteError, match="does not forward to a cluster \\(redirect\\)"):
        programmed_route(with_routes(redirect), RequestShape("/"))
    by_header = [{"match": {"prefix": "/"}, "route": {"cluster_header": "x-cluster"}}]
    with pytest.raises(UnsupportedRouteError, match="cluster_header"):
        programmed_route(with_routes(by_header), RequestShape("/"))


def test_request_shape():
    req = RequestShape("/hello_b?beta&x=1&x=2", method="post", headers={"X-Canary": "1", "Host": "h:1"})
    assert req.method == "POST" and req.bare_path == "/hello_b"
    assert req.query == {"beta": "", "x": "1"}
    assert req.header("x-CANARY") == "1" and req.header(":authority") == "h:1" and req.header(":method") == "POST"
    assert req.header("absent") is None
    with pytest.raises(UsageError):
        RequestShape("hello_b")


# -- counters -------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["parsed", "json text", "text"])
def test_cluster_counters_forms(form):
    if form == "text":
        stats: Any = (DATA / "stats_splitter_after.txt").read_text()
    elif form == "json text":
        stats = (DATA / "stats_splitter_after.json").read_text()
    else:
        stats = load("stats_splitter_after")
    got = cluster_counters(stats, [V1, V2, "local_agent", "gone"])
    # v1's six 503s (Envoy's own, connections not yet up) count as responses but not as
    # requests sent; "external." repeats the same counts and must not be added.
    assert got[V1] == ClusterCounters(rq_total=195, rq_completed=201, rq_2xx=195, rq_5xx=6)
    assert got[V2] == ClusterCounters(rq_total=35, rq_completed=35, rq_2xx=35)
    # cluster.local_agent.internal.upstream_rq_2xx belongs to no cluster named local_agent.internal.
    assert got["local_agent"].rq_2xx == 1
    assert got["gone"] == ClusterCounters(found=False)
    assert got[V1].rq_xx_other == 0


def test_counters_delta_is_the_run():
    before = cluster_counters(load("stats_splitter_before"), [V1, V2])
    after = cluster_counters(load("stats_splitter_after"), [V1, V2])
    delta = counters_delta(before, after)
    assert delta[V1] == ClusterCounters(rq_total=167, rq_completed=167, rq_2xx=167)
    assert delta[V2] == ClusterCounters(rq_total=33, rq_completed=33, rq_2xx=33)
    assert delta[V1].rq_total + delta[V2].rq_total == 200  # the 200 requests sent between the reads
    assert ClusterCounters.delta(before[V1], after[V1]) == delta[V1]


def test_counters_reset_is_flagged():
    restarted = ClusterCounters.delta(ClusterCounters(rq_total=100, rq_2xx=100), ClusterCounters(rq_total=5, rq_2xx=5))
    assert restarted.reset and restarted.rq_total == 5
    new = counters_delta({}, {"c": ClusterCounters(rq_total=3)})
    assert new["c"].rq_total == 3 and not new["c"].reset


# -- EnvoyAdmin -----------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_admin_is_one_line():
    port = closed_port()
    with EnvoyAdmin(f"127.0.0.1:{port}", timeout=1.0) as admin, pytest.raises(UnreachableError) as err:
        admin.config_dump()
    message = str(err.value)
    assert err.value.code == ExitCode.UNREACHABLE == 4
    assert "\n" not in message
    assert f"127.0.0.1:{port}" in message and "--envoy-admin ADDR" in message


def mock_admin(handler) -> EnvoyAdmin:
    return EnvoyAdmin("http://127.0.0.1:19000", transport=httpx.MockTransport(handler))


def test_admin_reads_dump_and_stats():
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        if request.url.path == "/config_dump":
            return httpx.Response(200, json=load("dump_splitter"))
        if request.url.path == "/server_info":
            return httpx.Response(200, json={"version": "x/1.36.2/Clean/RELEASE/BoringSSL", "state": "LIVE"})
        return httpx.Response(200, json=load("stats_splitter_after"))

    admin = mock_admin(handler)
    assert programmed_route(admin.config_dump(), RequestShape("/hello_b")) is not None
    assert admin.server_info()["state"] == "LIVE"
    counters = admin.cluster_stats([V1, V2])
    assert counters[V1].rq_total == 195 and counters[V2].rq_total == 35
    stats_url = seen[-1]
    assert stats_url.params["format"] == "json"
    assert stats_url.params["filter"].startswith(r"^cluster\.(v1\.service\-b\.")
    assert admin.cluster_stats([]) == {}


@pytest.mark.parametrize(
    ("response", "says"),
    [
        (httpx.Response(302, headers={"location": "http://elsewhere/"}),
         "redirects (302) to http://elsewhere/, not followed"),
        (httpx.Response(404, text="no"), "answered HTTP 404"),
        (httpx.Response(200, text="<html>"), "did not answer as an Envoy admin API"),
        (httpx.Response(200, json={"hello": 1}), "no 'configs'"),
    ],
)
def test_admin_that_is_not_envoy(response, says):
    with pytest.raises(UnreachableError) as err:
        mock_admin(lambda request: response).config_dump()
    assert says in str(err.value) and "127.0.0.1:19000" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("address", ["127.0.0.1", "ftp://127.0.0.1:1", "http://:19000", ""])
def test_bad_admin_address(address):
    with pytest.raises(UsageError, match="HOST:PORT"):
        EnvoyAdmin(address)
