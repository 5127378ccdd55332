"""The Consul column and ``--expect consul``: recorded discovery chains (Consul 1.14.8) served
by httpx.MockTransport, named and mapped to APP_IDs the way a live canary does."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from loadgen.canary.consul_view import chain_request, client_upstream, consul_view, propagated
from loadgen.canary.expectation import resolve_expectation
from loadgen.errors import UsageError
from loadgen.mesh.consul_api import ConsulClient

DATA = Path(__file__).parent / "data" / "discovery_chain"
RESOLVER = {"Kind": "service-resolver", "Name": "service-b",
            "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"},
                        "v2": {"Filter": "Service.Meta.version == v2"}}}
NESTED = {
    "service-splitter/service-b": {"Splits": [{"Weight": 50, "ServiceSubset": "v1"},
                                              {"Weight": 50, "Service": "service-b-canary"}]},
    "service-splitter/service-b-canary": {"Splits": [{"Weight": 50, "Service": "service-b", "ServiceSubset": "v1"},
                                                     {"Weight": 50, "Service": "service-b", "ServiceSubset": "v2"}]},
}
INSTANCES = [{"Service": {"ID": "service-b-1", "Meta": {"app_id": "1", "version": "v1"}}},
             {"Service": {"ID": "service-b-2", "Meta": {"app_id": "2", "version": "v2"}}}]
SIDECAR = [{"ServiceName": "service-a-sidecar-proxy",
            "ServiceProxy": {"Upstreams": [{"DestinationType": "service", "DestinationName": "service-a",
                                            "LocalBindPort": 9000}]}}]


def fake_consul(chain_file: str, entries: dict | None = None, instances: list | None = None,
                sidecar: list | None = None) -> ConsulClient:
    chain = json.loads((DATA / f"{chain_file}.json").read_text())
    entries = {"service-resolver/service-b": RESOLVER, **(entries or {})}
    instances = INSTANCES if instances is None else instances

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith("/v1/discovery-chain/"):
            return httpx.Response(200, json=chain)
        if path.startswith("/v1/config/"):
            body = entries.get(path.removeprefix("/v1/config/"))
            return httpx.Response(200, json=body) if body else httpx.Response(404, text="Config entry not found")
        if path == "/v1/catalog/service/service-a-sidecar-proxy":
            return httpx.Response(200, json=SIDECAR if sidecar is None else sidecar)
        if path.startswith("/v1/catalog/service/"):
            name = path.rsplit("/", 1)[1]
            return httpx.Response(200, json=[{"ServiceName": name}] if name.startswith("service-") else [])
        if path == "/v1/health/service/service-b":
            expr = request.url.params.get("filter")
            wanted = expr.rsplit("==", 1)[1].strip() if expr else None
            return httpx.Response(200, json=[e for e in instances
                                             if wanted is None or e["Service"]["Meta"]["version"] == wanted])
        if path == "/v1/status/leader":
            return httpx.Response(200, json="127.0.0.1:8300")
        return httpx.Response(404)

    return ConsulClient("127.0.0.1:8500", transport=httpx.MockTransport(handle))


HELLO_B = chain_request({})


def test_the_upstream_comes_from_service_as_sidecar_registration():
    with fake_consul("splitter") as consul:
        assert client_upstream(consul) == "service-a"
    with fake_consul("splitter", sidecar=[]) as consul, pytest.raises(UsageError, match="--upstream NAME"):
        client_upstream(consul)
    two = [{"ServiceProxy": {"Upstreams": [{"DestinationName": "x", "LocalBindPort": 9001},
                                           {"DestinationName": "y", "LocalBindPort": 9002}]}}]
    with fake_consul("splitter", sidecar=two) as consul, pytest.raises(UsageError, match="upstreams x, y"):
        client_upstream(consul)


def test_nested_splitters_are_expected_at_their_effective_weights_with_their_path():
    with fake_consul("nested", NESTED) as consul:
        view = consul_view(consul, "service-a", HELLO_B)
    assert view.spec.names == ("v1", "v2") and view.spec.weights == (0.75, 0.25)
    assert view.mapping.app_ids == {"1": "v1", "2": "v2"}
    assert view.path("v2") == "25 % via splitter service-b 50 % > splitter service-b-canary 50 %"
    assert view.cluster("v1").startswith("v1.service-b.default.dc1.internal.")


def test_default_subset_without_a_splitter_is_0_100_not_one_subset():
    with fake_consul("default_subset_failover") as consul:
        view = consul_view(consul, "service-a", HELLO_B)
    assert dict(zip(view.spec.names, view.spec.weights, strict=True)) == {"v1": 0.0, "v2": 1.0}
    assert view.path("v1") == "no route" and "DefaultSubset v2" in view.path("v2")
    assert view.to_json()["failover"] == {"v2": ["v2.service-b.default.default.dc2"]}


def test_a_header_the_canary_sends_and_service_a_propagates_picks_the_header_route():
    assert propagated({"X-Canary": "1", "Authorization": "t", "traceparent": "00-1"}) == \
        {"X-Canary": "1", "traceparent": "00-1"}
    with fake_consul("header_route") as consul:
        with_header = consul_view(consul, "service-a", chain_request({"x-canary": "1"}))
        without = consul_view(consul, "service-a", HELLO_B)
    assert with_header.spec.weights == (0.0, 1.0) and "route 1 " in with_header.compiled.route
    assert without.spec.weights == (0.85, 0.15)


def test_decimal_weights_make_a_valid_spec():
    with fake_consul("decimal") as consul:
        assert consul_view(consul, "service-a", HELLO_B).spec.weights == pytest.approx((0.6667, 0.3333))


def test_an_unknown_upstream_is_one_line():
    with fake_consul("unknown") as consul, pytest.raises(UsageError, match="knows no service 'nosuch'"):
        consul_view(consul, "nosuch", HELLO_B)


def test_a_target_no_app_id_maps_to_is_refused_for_expect_consul_unless_envoy_counts():
    only_v1 = INSTANCES[:1]
    with fake_consul("splitter", instances=only_v1) as consul:
        with pytest.raises(UsageError, match=r"sends traffic to v2 \(v2: 15 % via splitter service-b\), but no "
                                             "APP_ID maps there"):
            resolve_expectation("consul", None, consul, service="service-b")
        expectation = resolve_expectation("consul", None, consul, service="service-b", counts_from_envoy=True)
    assert expectation.spec.weights == (0.85, 0.15)


def test_given_weights_keep_the_consul_view_as_a_column():
    with fake_consul("nested", NESTED) as consul:
        expectation = resolve_expectation("85/15", None, consul, service="service-b")
    assert expectation.spec.weights == (0.85, 0.15) and expectation.spec.names == ("v1", "v2")
    assert expectation.consul is not None and expectation.consul.spec.weights == (0.75, 0.25)


def test_a_chain_that_cannot_be_read_is_only_a_note_when_weights_are_given():
    notes: list[str] = []
    with fake_consul("unknown", sidecar=[]) as consul:
        expectation = resolve_expectation("85/15", None, consul, service="service-b", say=notes.append)
    assert expectation.consul is None and "--upstream NAME" in notes[0]
