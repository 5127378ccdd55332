"""Issue 25 items 8, 11 and 12: `status` says which Consul it asks (CONSUL_HTTP_ADDR when set,
never an empty one) and prints its JSON even when that Consul answers 500; Consul's error body
is shown on one bounded line without control characters; a state.json that is not loadgen's
(not an object, corrupt, an unknown runtime) and a service name that is not one are one line
and exit 2, never 70."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from loadgen.cli import cli
from loadgen.errors import ExitCode
from loadgen.mesh.consul_refusal import explain_refusal
from loadgen.mesh.consul_settings import ConsulSettings
from tests.unit.stand_in_agent import stand_in_agent

LEADER = {"/v1/status/leader": (200, b'"127.0.0.1:8300"')}
ESCAPES = b"\x1b[2J\x1b]0;owned\x07boom\x00" + b"x" * 5000


@pytest.fixture(autouse=True)
def _no_signal_handlers(monkeypatch):
    monkeypatch.setattr("loadgen.interrupts.install", lambda: None)


def _invoke(args: list[str], tmp_path, **env: str | None):
    return CliRunner().invoke(cli, args, env={"LOADGEN_RUN_DIR": str(tmp_path / "run"), **env})


def _state(tmp_path, data: object) -> None:
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "state.json").write_text(json.dumps(data) if not isinstance(data, str) else data)


def test_status_asks_the_consul_of_consul_http_addr_and_says_so(tmp_path):
    with stand_in_agent({**LEADER, "/v1/agent/checks": (200, b"{}")}) as consul:
        result = _invoke(["status", "--json"], tmp_path, CONSUL_HTTP_ADDR=consul.address)
        assert consul.seen, "status did not ask CONSUL_HTTP_ADDR's agent"
        text = _invoke(["status"], tmp_path, CONSUL_HTTP_ADDR=consul.address)
    data = json.loads(result.stdout)
    assert data["consul"] == f"http://{consul.address}" and data["consul_source"] == "CONSUL_HTTP_ADDR"
    assert data["consul_reachable"] is True and result.exit_code == ExitCode.UNREACHABLE  # nothing is up
    assert f"Consul http://{consul.address} (CONSUL_HTTP_ADDR: reachable)" in text.stdout


@pytest.mark.parametrize("args", [["status"], ["status", "--json"],
                                  ["canary", "--expect", "consul", "--target", "http://127.0.0.1:1/"]])
def test_an_empty_consul_http_addr_is_an_error_not_the_local_agent(args, tmp_path):
    result = _invoke(args, tmp_path, CONSUL_HTTP_ADDR="")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "CONSUL_HTTP_ADDR is empty" in result.stdout + result.stderr


def test_an_empty_consul_option_is_an_error_too(tmp_path):
    for args in (["canary", "--expect", "consul", "--target", "http://127.0.0.1:1/", "--consul", " "],
                 ["shift", "--subset", "v2", "--steps", "50", "--target", "http://127.0.0.1:1/", "--consul", ""]):
        result = _invoke(args, tmp_path, CONSUL_HTTP_ADDR=None)
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "--consul is empty" in result.stderr


def test_status_prints_its_json_when_consul_answers_500(tmp_path):
    with stand_in_agent(LEADER, default=(500, ESCAPES)) as consul:
        _state(tmp_path, {"consul_address": f"http://{consul.address}", "stage": "splitter", "runtime": "process",
                          "config_entries": [["service-splitter", "service-b"]]})
        result = _invoke(["status", "--json"], tmp_path)
        text = _invoke(["status"], tmp_path)
    assert result.exit_code == ExitCode.UNREACHABLE, result.output
    data = json.loads(result.stdout)
    assert data["up"] is False and data["consul_source"] == "the local mesh's"
    refused = [p for p in data["problems"] if "HTTP 500" in p]
    assert refused and all(c not in refused[0] for c in "\x1b\x00\x07") and len(refused[0]) < 500
    assert text.exit_code == ExitCode.UNREACHABLE and "\x1b" not in text.stdout + text.stderr


def test_a_non_json_error_body_is_one_bounded_line_without_control_characters():
    line = explain_refusal("GET", "/v1/agent/checks", 502, ESCAPES.decode("latin-1"), ConsulSettings())
    assert line.startswith("Consul refused GET /v1/agent/checks: HTTP 502: ")
    assert "\n" not in line and not any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in line) and len(line) < 400


@pytest.mark.parametrize(("content", "why"), [
    ([], "a JSON list, not an object"), ("7", "a JSON number"), ("null", "a JSON null"),
    ("{not json", "not JSON"), ("\xff", "not JSON"),
    ({"processes": [1]}, "wrong form"), ({"stage": "basic", "runtime": "kubernetes"}, "runtime 'kubernetes'"),
])
@pytest.mark.parametrize("command", [["status", "--json"], ["down"], ["status"]])
def test_a_state_file_that_is_not_loadgens_is_one_line_exit_2(content, why, command, tmp_path):
    _state(tmp_path, content)
    result = _invoke(command, tmp_path)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert why in result.stdout + result.stderr and "internal error" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["../../x y", "", "a/b", "x\ny", "-svc", "s" * 200])
def test_shift_refuses_a_service_name_that_is_not_one(name, tmp_path):
    with stand_in_agent(LEADER) as consul:
        result = _invoke(["shift", "--subset", "v2", "--steps", "50", "--service", name,
                          "--target", "http://127.0.0.1:1/", "--consul", consul.address], tmp_path)
        assert consul.seen == []
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--service" in result.stderr and "is not a service name" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_shift_lock_stays_in_its_folder_whatever_the_name(tmp_path, monkeypatch):
    from loadgen.shift.lock import shift_lock

    monkeypatch.setenv("LOADGEN_RUN_DIR", str(tmp_path / "run"))
    with shift_lock("http://127.0.0.1:8500", "../../x y"):
        made = list((tmp_path / "run" / "locks").iterdir())
    assert len(made) == 1 and "/" not in made[0].name and " " not in made[0].name
    assert list(tmp_path.iterdir()) == [tmp_path / "run"]
