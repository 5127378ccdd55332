"""The split Consul compiled, walked from recorded discovery chains (Consul 1.14.8,
``GET /v1/discovery-chain/<name>``; each file's config entries are in data/discovery_chain/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadgen.errors import UsageError
from loadgen.mesh.chain import Request, compile_split

DATA = Path(__file__).parent / "data" / "discovery_chain"
V1 = "v1.service-b.default.default.dc1"
V2 = "v2.service-b.default.default.dc1"

NESTED_ENTRIES = {
    "service-b": {"Splits": [{"Weight": 50, "ServiceSubset": "v1"}, {"Weight": 50, "Service": "service-b-canary"}]},
    "service-b-canary": {"Splits": [{"Weight": 50, "Service": "service-b", "ServiceSubset": "v1"},
                                    {"Weight": 50, "Service": "service-b", "ServiceSubset": "v2"}]},
}


def chain(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


HELLO_B = Request("/hello_b")


def shares(name: str, request: Request = HELLO_B, **kw) -> dict[str, float]:
    return {k: round(v, 6) for k, v in compile_split(chain(name), request, **kw).shares.items()}


def test_the_reference_splitter_sends_85_15_through_the_router_route():
    split = compile_split(chain("splitter"), Request("/hello_b"))
    assert shares("splitter") == {V1: 0.85, V2: 0.15}
    assert split.route == "route 1 of service-router service-a (PathPrefix /hello_b)"
    assert split.describe(V2) == "15 % via splitter service-b"
    assert split.target(V1).cluster.startswith("v1.service-b.default.dc1.internal.")
    assert split.target(V1).filter == "Service.Meta.version == v1"


def test_nested_splitters_multiply_down_to_the_targets_and_name_the_path():
    assert shares("nested") == {V1: 0.75, V2: 0.25}
    split = compile_split(chain("nested"), Request("/hello_b"), NESTED_ENTRIES.get)
    assert split.describe(V1) == "50 % via splitter service-b + 25 % via splitter service-b 50 % > splitter " \
                                 "service-b-canary 50 %"
    assert split.notes == ()


def test_nested_splitters_whose_entries_changed_since_the_chain_keep_the_chains_weights():
    changed = {**NESTED_ENTRIES, "service-b": {"Splits": [{"Weight": 60, "ServiceSubset": "v1"},
                                                          {"Weight": 40, "Service": "service-b-canary"}]}}
    split = compile_split(chain("nested"), Request("/hello_b"), changed.get)
    assert {k: round(v, 6) for k, v in split.shares.items()} == {V1: 0.75, V2: 0.25}
    assert "a nested splitter" in split.describe(V2) and "do not add up" in split.notes[0]


def test_decimal_weights_are_kept():
    assert shares("decimal") == {V1: 0.6667, V2: 0.3333}


def test_default_subset_without_a_splitter_sends_everything_to_it_and_reports_failover():
    split = compile_split(chain("default_subset_failover"), Request("/hello_b"))
    assert split.shares == {V2: 1.0}
    assert split.describe(V2) == "100 % via resolver service-b DefaultSubset v2"
    assert split.failover == {V2: ("v2.service-b.default.default.dc2",)}


def test_a_resolver_redirect_is_followed():
    split = compile_split(chain("redirect"), Request("/anything"))
    assert split.shares == {V2: 1.0} and split.route == "no router (every request)"
    assert "redirects to service-b subset v2" in split.describe(V2)


@pytest.mark.parametrize(("request_", "route", "expected"), [
    (Request("/hello_b", headers={"X-Canary": "1"}), 1, {V2: 1.0}),
    (Request("/hello_b", headers={"x-canary": "2"}), 3, {V1: 0.85, V2: 0.15}),
    (Request("/hello_b?beta=", method="POST"), 2, {V1: 1.0}),
    (Request("/hello_b?beta=1", method="GET"), 3, {V1: 0.85, V2: 0.15}),
    (Request("/hello_b/x?beta=1", method="POST"), None, {"service-a.default.default.dc1": 1.0}),
    (Request("/hello_c"), 3, {V1: 0.85, V2: 0.15}),
    (Request("/other"), None, {"service-a.default.default.dc1": 1.0}),
])
def test_routes_match_as_consuls_router_does(request_, route, expected):
    split = compile_split(chain("header_route"), request_)
    assert {k: round(v, 6) for k, v in split.shares.items()} == expected
    assert split.route.startswith(f"route {route} ") if route else split.route.startswith("the default route")


def test_header_matchers_follow_envoy_on_absent_and_inverted_headers():
    from loadgen.mesh.chain import _header_matches

    absent = Request("/")
    assert not _header_matches({"Name": "x", "Exact": "1"}, absent)
    assert not _header_matches({"Name": "x", "Exact": "1", "Invert": True}, absent)  # a value matcher needs a value
    assert _header_matches({"Name": "x", "Present": True, "Invert": True}, absent)  # "must be absent"
    assert not _header_matches({"Name": "x", "Present": True}, absent)
    given = Request("/", headers={"X": "Canary-7"})
    assert _header_matches({"Name": "x", "Prefix": "canary", "IgnoreCase": True}, given)
    assert not _header_matches({"Name": "x", "Prefix": "canary"}, given)
    assert _header_matches({"Name": "x", "Regex": "Canary-[0-9]+"}, given)
    assert not _header_matches({"Name": "x", "Regex": "Canary"}, given)  # full match, as RE2 in Envoy


def test_a_chain_with_no_catch_all_that_misses_the_request_is_one_clear_line():
    data = chain("header_route")
    routes = data["Chain"]["Nodes"]["router:service-a.default.default"]["Routes"]
    data["Chain"]["Nodes"]["router:service-a.default.default"]["Routes"] = routes[:1]
    with pytest.raises(UsageError, match="no route of service-router service-a matches GET /other"):
        compile_split(data, Request("/other"))


def test_an_upstream_with_no_config_resolves_to_itself():
    assert shares("unknown", Request("/")) == {"no-such-service.default.default.dc1": 1.0}
