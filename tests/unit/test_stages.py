"""The stage files in consul/ parse into the stages the seed describes."""

from pathlib import Path

import pytest

from loadgen.errors import ExitCode, UsageError
from loadgen.mesh.stages import load_config_entry, load_stages


@pytest.fixture(scope="module")
def book():
    return load_stages()


def test_stage_names(book):
    assert book.names == ["basic", "intentions", "l7-router", "splitter"]


def test_unknown_stage_is_a_usage_error(book):
    with pytest.raises(UsageError) as exc:
        book.get("canary")
    assert exc.value.code == ExitCode.USAGE
    assert "known stages: basic, intentions, l7-router, splitter" in exc.value.message


def test_instances_env_comes_from_registrations(book):
    basic = book.get("basic")
    env = {i.id: i.app_env() for i in basic.instances}
    assert env["service-b-1"] == {"PORT": "3001", "INSTANCE_ID": "service-b-1", "APP_ID": "1", "VERSION": "v1"}
    assert env["service-b-2"]["APP_ID"] == "2" and env["service-b-2"]["VERSION"] == "v2"
    assert env["service-a"]["SIDECAR_URL"] == "http://127.0.0.1:9000"
    assert basic.instance("service-a").upstream_ports() == [9000]


def test_l7_stages_route_service_a_through_its_own_virtual_service(book):
    # The seed's L7 trick: service-a's upstream is service-a; its router sends /hello_b to service-b.
    for name in ("l7-router", "splitter"):
        reg = book.get(name).instance("service-a").registration
        ups = reg["Connect"]["SidecarService"]["Proxy"]["Upstreams"]
        assert [u["DestinationName"] for u in ups] == ["service-a"]
    assert book.get("basic").instance("service-a").registration["Connect"]["SidecarService"]["Proxy"][
        "Upstreams"][0]["DestinationName"] == "service-b"


def test_splitter_entries_in_dependency_order(book):
    kinds = [e.kind for e in book.get("splitter").config_entries]
    assert kinds == ["service-defaults", "service-defaults", "service-router", "service-resolver",
                     "service-splitter"]
    splitter = book.get("splitter").entry("service-splitter", "service-b")
    assert splitter is not None
    assert sum(s["Weight"] for s in splitter.body["Splits"]) == 100
    assert {s["ServiceSubset"]: s["Weight"] for s in splitter.body["Splits"]} == {"v1": 85, "v2": 15}


def test_resolver_subsets_select_by_meta_version(book):
    resolver = book.get("splitter").entry("service-resolver", "service-b")
    assert resolver is not None
    subsets = resolver.body["Subsets"]
    assert subsets["v1"]["Filter"] == 'Service.Meta.version == v1'
    assert subsets["v2"]["Filter"] == 'Service.Meta.version == v2'


def test_intentions_stage_denies_service_a(book):
    entry = book.get("intentions").entry("service-intentions", "service-b")
    assert entry is not None
    assert entry.body["Sources"] == [{"Name": "service-a", "Action": "deny"}]
    assert book.get("intentions").expect.hello_a == "denied"


def test_malformed_entry_is_a_usage_error(tmp_path: Path):
    bad = tmp_path / "bad.hcl"
    bad.write_text('Kind = "service-router"\n')  # no Name
    with pytest.raises(UsageError, match="needs Kind and Name"):
        load_config_entry(bad)
    broken = tmp_path / "broken.hcl"
    broken.write_text("Kind = {{{")
    with pytest.raises(UsageError, match="cannot read config entry"):
        load_config_entry(broken)


def test_missing_stages_file(tmp_path: Path):
    with pytest.raises(UsageError, match="cannot read"):
        load_stages(tmp_path)
