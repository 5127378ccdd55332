"""The permissions probe's entry handling (written, merged, put back), its Envoy predicate and its CLI input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loadgen.cli import cli
from loadgen.errors import UsageError
from loadgen.probes.permission_report import DEFAULT_CLASSES, RequestClass
from loadgen.probes.permissions import as_written, load_permissions_entry, rbac_rules, with_permissions


def _decides(permissions: list[dict], cls: RequestClass) -> str:
    """Consul's rule for a source's Permissions: the first that matches decides ("none": the default)."""
    headers = dict(cls.headers)
    for p in permissions:
        http = p["HTTP"]
        if "PathExact" in http and cls.path != http["PathExact"]:
            continue
        if "PathPrefix" in http and not cls.path.startswith(http["PathPrefix"]):
            continue
        if "Methods" in http and cls.method not in http["Methods"]:
            continue
        if not all(h["Name"] in headers for h in http.get("Header", []) if h.get("Present")):
            continue
        return "allowed" if p["Action"] == "allow" else "denied"
    return "none"


def test_the_shipped_permissions_decide_every_class_as_the_probe_expects():
    entry = load_permissions_entry()
    assert entry["Kind"] == "service-intentions" and entry["Name"] == "service-b"
    [source] = entry["Sources"]
    assert source["Name"] == "service-a"
    assert {c.name: _decides(source["Permissions"], c) for c in DEFAULT_CLASSES} == \
        {c.name: c.expect for c in DEFAULT_CLASSES}
    # Nothing is left to the default intention behaviour (allow on an agent without ACLs).
    assert _decides(source["Permissions"], RequestClass("other", "DELETE", "/x", "denied")) == "denied"


def test_a_file_that_is_not_a_permissions_entry_is_refused(tmp_path: Path):
    plain = tmp_path / "allow.hcl"
    plain.write_text('Kind = "service-intentions"\nName = "service-b"\nSources = [{ Name = "service-a"\n'
                     'Action = "allow" }]\n')
    with pytest.raises(UsageError, match="whose every source has Permissions"):
        load_permissions_entry(plain)


PERMS = {"Kind": "service-intentions", "Name": "service-b",
         "Sources": [{"Name": "service-a", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/hello_b"}}]}]}


def test_with_nothing_found_the_permissions_entry_is_written_as_it_is():
    assert with_permissions(None, PERMS) == PERMS


def test_a_found_entry_keeps_its_other_sources_and_only_service_a_is_replaced():
    found = {"Kind": "service-intentions", "Name": "service-b", "Meta": {"owner": "team-b"},
             "Sources": [{"Name": "web", "Action": "deny", "Precedence": 9, "Type": "consul"},
                         {"Name": "service-a", "Action": "allow", "Precedence": 9, "Type": "consul"}],
             "CreateIndex": 10, "ModifyIndex": 12, "Hash": 77}
    merged = with_permissions(found, PERMS)
    assert [s["Name"] for s in merged["Sources"]] == ["web", "service-a"]
    assert merged["Sources"][1] == PERMS["Sources"][0] and merged["Meta"] == {"owner": "team-b"}
    assert "CreateIndex" not in merged and "ModifyIndex" not in merged and "Hash" not in merged
    # Put back: exactly what was found, less Consul's bookkeeping; and the found entry is untouched.
    back = as_written(found)
    assert back == {k: v for k, v in found.items() if k not in ("CreateIndex", "ModifyIndex", "Hash")}
    assert found["Sources"][1]["Action"] == "allow" and len(found["Sources"]) == 2


def _dump(rules: dict | None) -> dict:
    filters = [{"name": "envoy.filters.http.router"}]
    if rules is not None:
        filters.insert(0, {"name": "envoy.filters.http.rbac", "typed_config": {"rules": rules}})
    listener = {"name": "public_listener:127.0.0.1:21001", "filter_chains": [{"filters": [
        {"name": "envoy.filters.network.http_connection_manager", "typed_config": {"http_filters": filters}}]}]}
    return {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                         "dynamic_listeners": [{"active_state": {"listener": listener}}]}]}


def test_rbac_rules_tell_the_states_apart_and_ignore_key_order():
    none, deny = rbac_rules(_dump(None)), rbac_rules(_dump({"action": "DENY", "policies": {"p": {"x": 1}}}))
    assert none == "[]" and none != deny
    assert rbac_rules(_dump({"policies": {"p": {"x": 1}}, "action": "DENY"})) == deny
    assert json.loads(deny) == [{"action": "DENY", "policies": {"p": {"x": 1}}}]


@pytest.mark.parametrize(("args", "said"), [
    (["--protocol", "tcp"], "--permissions needs service-b at protocol http"),
    (["--protocol", "both"], "--permissions needs service-b at protocol http"),
    (["--target", "http://127.0.0.1:9000/hello_b"], "--permissions runs on the local mesh only"),
    (["--strict", "--grace", "1s"], "--strict counts every leak (a grace of 0)"),
    (["--pooled-rate", "50", "--plots", "/tmp/x"], "--pooled-rate, --plots do not apply to --permissions"),
])
def test_options_that_mean_nothing_with_permissions_are_one_line_and_exit_2(args, said):
    result = CliRunner().invoke(cli, ["intentions", "--permissions", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(("args", "said"), [
    (["--grace", "1s"], "--grace applies to --permissions only"),
    (["--permissions", "--grace", "-1s"], "--grace"),
])
def test_grace_outside_permissions_or_negative_is_one_line_and_exit_2(args, said):
    result = CliRunner().invoke(cli, ["intentions", *args])
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output
