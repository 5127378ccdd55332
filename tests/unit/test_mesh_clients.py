"""The Consul and Nomad clients' one request contract, subset mapping and splitter reading,
against httpx.MockTransport (no agent): the pure parts of what the canary asks Consul."""

from __future__ import annotations

import httpx
import pytest

from loadgen.errors import ExitCode, LoadgenError, UnreachableError, UsageError
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.nomad_api import NomadClient
from loadgen.mesh.subsets import live_splitter, subset_map

RESOLVER = {"Kind": "service-resolver", "Name": "service-b",
            "Subsets": {"v2": {"Filter": "Service.Meta.version == v2"},
                        "v1": {"Filter": "Service.Meta.version == v1"}}}
SPLITTER = {"Kind": "service-splitter", "Name": "service-b",
            "Splits": [{"Weight": 85, "ServiceSubset": "v1"}, {"Weight": 15, "ServiceSubset": "v2"}]}
INSTANCES = [{"Service": {"ID": "service-b-1", "Meta": {"app_id": "1", "version": "v1"}}},
             {"Service": {"ID": "service-b-2", "Meta": {"app_id": "2", "version": "v2"}}},
             {"Service": {"ID": "service-b-3", "Meta": {"version": "v2"}}}]  # no app_id: ignored


def _consul(entries: dict[str, dict], seen: list[httpx.Request] | None = None) -> ConsulClient:
    """A Consul whose config entries are ``entries`` (path -> body) and whose health endpoint
    evaluates the only filter form the resolver uses: Service.Meta.version == X."""

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        path = request.url.path
        if path.startswith("/v1/config/"):
            body = entries.get(path.removeprefix("/v1/config/"))
            return httpx.Response(200, json=body) if body else httpx.Response(404, text="Config entry not found")
        if path == "/v1/health/service/service-b":
            expr = request.url.params.get("filter")
            wanted = expr.rsplit("==", 1)[1].strip() if expr else None
            return httpx.Response(200, json=[e for e in INSTANCES
                                             if wanted is None or e["Service"]["Meta"]["version"] == wanted])
        return httpx.Response(404)

    return ConsulClient("127.0.0.1:8500", transport=httpx.MockTransport(handle))


def test_resolver_subsets_map_app_ids_through_consuls_filters():
    seen: list[httpx.Request] = []
    with _consul({"service-resolver/service-b": RESOLVER}, seen) as consul:
        found = subset_map(consul)
    assert found.subsets == ("v1", "v2")
    assert found.app_ids == {"1": "v1", "2": "v2"}
    assert found.subset_of("2") == "v2" and found.subset_of("9") is None and found.subset_of(None) is None
    assert found.source == "service-resolver/service-b subsets in Consul"
    # Each subset's filter is handed to Consul as is, in the subsets' sorted order.
    filters = [r.url.params.get("filter") for r in seen if r.url.path.startswith("/v1/health/")]
    assert filters == ["Service.Meta.version == v1", "Service.Meta.version == v2"]


def test_without_a_resolver_instances_group_by_meta_version():
    with _consul({}) as consul:
        found = subset_map(consul)
    assert found.subsets == ("v1", "v2") and found.app_ids == {"1": "v1", "2": "v2"}
    assert found.source == "service-b instances' Meta.version in Consul"


def test_no_instance_with_app_id_and_version_is_a_usage_error():
    with _consul({}) as consul, pytest.raises(UsageError, match="give --map"):
        subset_map(consul, "service-c")


def test_the_splitter_in_force_is_read_as_consul_has_it():
    with _consul({"service-splitter/service-b": SPLITTER}) as consul:
        assert live_splitter(consul) == SPLITTER
    with _consul({}) as consul, pytest.raises(UsageError) as info:
        live_splitter(consul)
    assert info.value.message == ("--expect consul: Consul at http://127.0.0.1:8500 has no service-splitter "
                                  "for service-b")


# -- the request contract, the same for both clients -------------------------------------------
def _answering(status: int, **kwargs) -> httpx.MockTransport:
    return httpx.MockTransport(lambda _r: httpx.Response(status, **kwargs))


@pytest.mark.parametrize("client", [ConsulClient, NomadClient])
def test_absent_is_none_and_json_is_parsed(client):
    with client("127.0.0.1:1", transport=_answering(404, text="not found")) as api:
        assert api._request("GET", "/v1/x") is None
    with client("127.0.0.1:1", transport=_answering(200)) as api:
        assert api._request("PUT", "/v1/x") is None  # no body
    with client("127.0.0.1:1", transport=_answering(200, json={"a": [1]})) as api:
        assert api._request("GET", "/v1/x") == {"a": [1]}


def test_a_refusal_is_one_line_exit_4_with_the_acl_hint(monkeypatch):
    monkeypatch.delenv("NOMAD_TOKEN", raising=False)
    with NomadClient("127.0.0.1:1", transport=_answering(403, text="Permission denied\n")) as api, \
            pytest.raises(LoadgenError) as info:
        api._request("GET", "/v1/x")
    assert info.value.code == ExitCode.UNREACHABLE
    assert info.value.message == ("Nomad refused GET /v1/x: permission denied, and no token was sent: set NOMAD_TOKEN "
                                  "(a token with the policy in nomad/loadgen-worker.policy.hcl)")


def test_a_consul_refusal_names_the_missing_rule_and_what_it_was_for(monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "s3cret-token")
    body = "Permission denied: token with AccessorID 'a1b2' lacks permission 'service:read' on \"service-b\""
    with ConsulClient("127.0.0.1:1", transport=_answering(403, text=body)) as api, \
            pytest.raises(LoadgenError) as info:
        api._request("GET", "/v1/config/service-splitter/service-b")
    assert info.value.code == ExitCode.UNREACHABLE
    assert info.value.message == ("Consul refused GET /v1/config/service-splitter/service-b: the token from "
                                  "CONSUL_HTTP_TOKEN needs service:read on service-b to read its service-splitter")
    assert "s3cret" not in info.value.message


@pytest.mark.parametrize("client", [ConsulClient, NomadClient])
def test_an_unreachable_agent_is_an_unreachable_error(client):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client("127.0.0.1:1", transport=httpx.MockTransport(refuse)) as api:
        with pytest.raises(UnreachableError, match="is unreachable"):
            api._request("GET", "/v1/x")
        assert api.reachable() is False


def test_ca_roots_and_config_writes():
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/connect/ca/roots":
            return httpx.Response(200, json={"TrustDomain": "t.consul", "Roots": []})
        body = "true" if b"good" in request.content else "false"
        return httpx.Response(200, text=body, headers={"X-Consul-Index": "42"})

    with ConsulClient(transport=httpx.MockTransport(handle)) as consul:
        assert consul.ca_roots() == {"TrustDomain": "t.consul", "Roots": []}
        assert consul.write_config({"Kind": "k", "Name": "good"}) == 42
        with pytest.raises(LoadgenError, match="Consul did not apply k/bad: false"):
            consul.write_config({"Kind": "k", "Name": "bad"})
