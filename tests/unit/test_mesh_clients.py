"""The mesh's pure parts on a replaced HTTP transport (httpx.MockTransport), the runtime
contract, and stages.toml checked when it is read. Integration tests use the real Consul."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from loadgen.errors import ExitCode, LoadgenError, UsageError
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.runtime.base import Runtime
from loadgen.mesh.runtime.docker import DockerRuntime
from loadgen.mesh.runtime.nomad import NomadRuntime
from loadgen.mesh.runtime.process import ProcessRuntime
from loadgen.mesh.stages import load_stages
from loadgen.mesh.subsets import live_splitter, subset_map
from loadgen.paths import consul_dir

INSTANCES = [
    {"Service": {"ID": "b1", "Meta": {"app_id": "1", "version": "v1"}}},
    {"Service": {"ID": "b2", "Meta": {"app_id": "2", "version": "v2"}}},
]


def consul(routes: dict[str, object], seen: list[httpx.Request] | None = None) -> ConsulClient:
    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        body = routes.get(request.url.path)
        if callable(body):
            body = body(request)
        if body is None:
            return httpx.Response(404)
        return httpx.Response(200, json=body)

    return ConsulClient("127.0.0.1:8500", transport=httpx.MockTransport(answer))


def test_subset_map_hands_each_resolver_filter_to_consul():
    resolver = {"Kind": "service-resolver", "Name": "service-b", "Subsets": {
        "v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}}}

    def health(request: httpx.Request) -> list[dict]:
        wanted = request.url.params.get("filter", "")
        return [i for i in INSTANCES if wanted.endswith(i["Service"]["Meta"]["version"])]

    seen: list[httpx.Request] = []
    client = consul({"/v1/config/service-resolver/service-b": resolver, "/v1/health/service/service-b": health},
                    seen)
    mapping = subset_map(client)
    assert mapping.subsets == ("v1", "v2") and mapping.app_ids == {"1": "v1", "2": "v2"}
    assert "service-resolver" in mapping.source
    filters = {r.url.params.get("filter") for r in seen if r.url.path.startswith("/v1/health/")}
    assert filters == {"Service.Meta.version == v1", "Service.Meta.version == v2"}


def test_subset_map_without_a_resolver_groups_by_meta_version():
    mapping = subset_map(consul({"/v1/health/service/service-b": INSTANCES}))
    assert mapping.app_ids == {"1": "v1", "2": "v2"} and "Meta.version" in mapping.source


def test_subset_map_with_nothing_to_map_says_to_give_map():
    with pytest.raises(UsageError, match="--map"):
        subset_map(consul({"/v1/health/service/service-b": []}))


def test_live_splitter_read_or_one_clear_error():
    splitter = {"Kind": "service-splitter", "Name": "service-b", "Splits": [
        {"Weight": 85, "ServiceSubset": "v1"}, {"Weight": 15, "ServiceSubset": "v2"}]}
    assert live_splitter(consul({"/v1/config/service-splitter/service-b": splitter})) == splitter
    with pytest.raises(UsageError, match="no service-splitter for service-b"):
        live_splitter(consul({}))


def test_a_refused_request_is_one_line_with_exit_4():
    client = ConsulClient("127.0.0.1:8500", transport=httpx.MockTransport(lambda r: httpx.Response(403, text="denied")))
    with pytest.raises(LoadgenError) as info:
        client.get_config("service-splitter", "service-b")
    assert info.value.code is ExitCode.UNREACHABLE and "403" in info.value.message and "\n" not in info.value.message


@pytest.mark.parametrize("cls", [ProcessRuntime, DockerRuntime, NomadRuntime])
def test_every_runtime_implements_the_contract(cls):
    assert issubclass(cls, Runtime)
    assert not getattr(cls, "__abstractmethods__", None), f"{cls.__name__} leaves hooks unimplemented"
    for peer in {ProcessRuntime, DockerRuntime, NomadRuntime} - {cls}:
        assert not issubclass(cls, peer), f"{cls.__name__} inherits {peer.__name__}'s internals"


def _stages_copy(tmp_path: Path, edit) -> Path:
    base = tmp_path / "consul"
    shutil.copytree(consul_dir(), base)
    path = base / "stages.toml"
    path.write_text(edit(path.read_text()))
    return base


def test_a_typo_in_expect_hello_a_is_caught_when_stages_toml_is_read(tmp_path):
    text = (consul_dir() / "stages.toml").read_text()
    assert 'hello_a = "denied"' in text  # the edit below must change something
    base = _stages_copy(tmp_path, lambda t: t.replace('hello_a = "denied"', 'hello_a = "deny"', 1))
    with pytest.raises(UsageError) as info:
        load_stages(base)
    msg = info.value.message
    assert "stages.toml" in msg and "expect.hello_a" in msg and "'deny'" in msg and "\n" not in msg


def test_an_unknown_instance_or_field_is_caught_when_read(tmp_path):
    base = _stages_copy(tmp_path, lambda t: t + '\n[stages.extra]\ninstances = ["nobody"]\n')
    with pytest.raises(UsageError, match="stage extra names unknown instance nobody"):
        load_stages(base)
    base2 = _stages_copy(tmp_path / "2", lambda t: t + '\n[stages.extra2]\ninstances = []\ncolour = "red"\n')
    with pytest.raises(UsageError, match="unknown field 'colour'"):
        load_stages(base2)


def test_the_shipped_stages_toml_is_valid():
    assert "splitter" in load_stages().stages  # reading it checks every part


def test_load_stages_bad_toml_is_a_usage_error(tmp_path):
    (tmp_path / "stages.toml").write_text("[stages\n")
    with pytest.raises(UsageError, match="cannot read"):
        load_stages(tmp_path)
