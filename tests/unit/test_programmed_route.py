"""What the client sidecar was programmed with: Envoy's route match on a recorded config_dump
(service-a's sidecar, splitter stage) and on route configs shaped like Consul's."""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path

import pytest

from loadgen.errors import ExitCode, UnreachableError
from loadgen.mesh.chain import Request
from loadgen.mesh.programmed import ClusterCounters, EnvoyAdmin, UnevaluableRoute, programmed_route

DATA = Path(__file__).parent / "data"
DUMP = json.loads((DATA / "splitter-service-a.json").read_text())
V1, V2 = (f"{s}.service-b.default.dc1.internal.48b1cf02-53f6-f72b-7dad-5a7b1fb0a918.consul" for s in ("v1", "v2"))


def with_routes(routes: list[dict]) -> dict:
    dump = copy.deepcopy(DUMP)
    for cfg in dump["configs"]:
        if cfg["@type"].endswith(".RoutesConfigDump"):
            cfg["dynamic_route_configs"][0]["route_config"]["virtual_hosts"][0]["routes"] = routes
    return dump


def weighted(*pairs: tuple[str, int]) -> dict:
    return {"weighted_clusters": {"clusters": [{"name": n, "weight": w} for n, w in pairs]}}


def test_the_splitter_stage_route_is_85_15_with_its_config_version():
    route = programmed_route(DUMP, Request("/hello_b"))
    assert route is not None and route.weights == {V1: 0.85, V2: 0.15}
    assert route.route_config == "service-a" and len(route.version) == 64
    assert route.listener == "service-a:127.0.0.1:9000" and route.match == "prefix /hello_b"
    assert programmed_route(DUMP, Request("/hello_b"), upstream="service-a") == route
    # Anything else goes to service-a's own default route.
    assert list(programmed_route(DUMP, Request("/")).weights.values()) == [1.0]


def test_an_l4_upstream_has_no_route():
    basic = json.loads((DATA / "basic-service-a.json").read_text())
    assert programmed_route(basic, Request("/hello_b")) is None


def test_header_query_and_regex_matches_pick_the_route_envoy_would():
    dump = with_routes([
        {"match": {"prefix": "/hello_b", "headers": [{"name": "x-canary", "string_match": {"exact": "1"}}]},
         "route": {"cluster": V2}},
        {"match": {"path": "/hello_b", "query_parameters": [{"name": "beta", "present_match": True}]},
         "route": {"cluster": V1}},
        {"match": {"safe_regex": {"regex": "/hello_[bc]"}}, "route": weighted((V1, 6667), (V2, 3333))},
        {"match": {"prefix": "/"}, "route": {"cluster": "other"}},
    ])
    assert programmed_route(dump, Request("/hello_b", headers={"X-Canary": "1"})).weights == {V2: 1.0}
    assert programmed_route(dump, Request("/hello_b?beta=1")).weights == {V1: 1.0}
    route = programmed_route(dump, Request("/hello_c"))
    assert route.weights == pytest.approx({V1: 0.6667, V2: 0.3333}) and route.match == "regex /hello_[bc]"
    assert programmed_route(dump, Request("/hello_bx")).weights == {"other": 1.0}


def test_a_cluster_listed_twice_adds_up_and_weights_need_no_total():
    dump = with_routes([{"match": {"prefix": "/"}, "route": weighted((V1, 5000), (V1, 2500), (V2, 2500))}])
    assert programmed_route(dump, Request("/hello_b")).weights == {V1: 0.75, V2: 0.25}


def test_inverted_and_absent_headers_follow_envoy():
    def hit(rule: dict, headers: dict) -> bool:
        dump = with_routes([{"match": {"prefix": "/", "headers": [rule]}, "route": {"cluster": V1}}])
        return programmed_route(dump, Request("/", headers=headers)) is not None

    # An absent header: a value matcher fails even inverted; an inverted present_match holds.
    assert not hit({"name": "x", "string_match": {"exact": "1"}, "invert_match": True}, {})
    assert hit({"name": "x", "string_match": {"exact": ""}, "treat_missing_header_as_empty": True}, {})
    assert hit({"name": "x", "present_match": True, "invert_match": True}, {})
    assert not hit({"name": "x", "present_match": True}, {})
    assert hit({"name": "x", "string_match": {"exact": "1"}, "invert_match": True}, {"x": "2"})
    assert not hit({"name": "x", "exact_match": "1"}, {"x": "2"})
    assert hit({"name": "x", "string_match": {"prefix": "CAN", "ignore_case": True}}, {"x": "canary"})


def test_counter_deltas():
    before, after = ClusterCounters(10, 9, 1), ClusterCounters(110, 100, 5)
    assert after.delta(before) == ClusterCounters(100, 91, 4)


def test_an_unreachable_admin_is_one_line_with_exit_4():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the with ends: nothing listens there
    with pytest.raises(UnreachableError) as err:
        EnvoyAdmin(f"127.0.0.1:{port}", timeout=1).config_dump()
    assert err.value.code == ExitCode.UNREACHABLE and "--envoy-admin" in err.value.message
    assert "\n" not in err.value.message


@pytest.mark.parametrize("name", ["splitter", "header_route", "nested", "decimal", "default_subset_v2"])
@pytest.mark.parametrize("request_", [
    Request("/hello_b"), Request("/hello_b", headers={"x-canary": "1"}), Request("/hello_b/beta?beta=1", "POST"),
    Request("/hello_b/beta?beta=1"), Request("/hello_c/x"), Request("/hello_c/x", headers={"x-debug": "1"}),
    Request("/other"),
])
def test_consuls_chain_and_envoys_route_agree_on_every_recorded_config(name, request_):
    """Consul's compiled chain and the route the same Consul gave service-a's sidecar, recorded
    together (data/README-chains.md): both matchers pick the same targets with the same shares."""
    from loadgen.mesh.chain import compile_split

    chain = json.loads((DATA / f"chain_{name}.json").read_text())
    dump = json.loads((DATA / f"dump_{name}.json").read_text())
    compiled = compile_split(chain, request_)
    clusters = {t.cluster: compiled.shares[t.id] for t in compiled.targets}
    assert programmed_route(dump, request_).weights == pytest.approx(clusters)


def test_a_matcher_loadgen_cannot_evaluate_is_an_error_not_a_guess():
    dump = with_routes([{"match": {"prefix": "/", "runtime_fraction": {"default_value": {"numerator": 50}}},
                         "route": {"cluster": V1}}])
    with pytest.raises(UnevaluableRoute, match="runtime_fraction"):
        programmed_route(dump, Request("/hello_b"))


def test_counters_that_went_down_mean_envoy_restarted_and_count_from_zero():
    assert ClusterCounters(5, 5, 0).delta(ClusterCounters(100, 90, 10)) == ClusterCounters(5, 5, 0)


def test_query_values_are_matched_as_sent_like_envoy_does():
    assert Request("/p?a=x%20y&a=2&b").query == {"a": "x%20y", "b": ""}
