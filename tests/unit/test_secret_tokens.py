"""Issue 25 item 1: a token is never printed. Whitespace around it is stripped as the consul CLI
does; a token that cannot be an HTTP header value is refused before any request, in one line
that names its source (variable or file), never its value, exit 2. Every command that talks to
Consul is covered, through a stand-in agent on a free loopback port that keeps what it was sent.
"""

from __future__ import annotations

import httpx
import pytest
from click.testing import CliRunner

from loadgen.cli import cli
from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.consul_api import ConsulClient, ConsulSettings
from loadgen.mesh.nomad_api import NomadClient, NomadSettings
from tests.unit.stand_in_agent import stand_in_agent

SECRET = "s3cr3t-tok"
LEADER = {"/v1/status/leader": (200, b'"127.0.0.1:8300"')}


@pytest.fixture(autouse=True)
def _no_signal_handlers(monkeypatch):
    monkeypatch.setattr("loadgen.interrupts.install", lambda: None)  # leave pytest's SIGTERM alone


def _commands(consul: str) -> dict[str, list[str]]:
    """Every command that reads Consul with the consul CLI's environment, aimed at ``consul``
    (the target is a closed port: no request should get that far)."""
    target = "http://127.0.0.1:1/hello_b"
    remote = ["--target", target, "--consul", consul, "--envoy-admin", "127.0.0.1:1"]
    return {
        "canary": ["canary", "--expect", "consul", "--target", target, "--max-time", "2s"],  # > the 1 s warm-up
        "shift": ["shift", "--subset", "v2", "--steps", "50", "--target", target, "--consul", consul],
        "intentions": ["intentions", "--repeat", "1", *remote],
        "propagation": ["propagation", "--splitter", "50/50", *remote],
        "status": ["status", "--json"],
    }


def _invoke(args: list[str], env: dict[str, str | None], tmp_path):
    env = {"LOADGEN_RUN_DIR": str(tmp_path / "run"), "CONSUL_HTTP_TOKEN": None, "CONSUL_HTTP_TOKEN_FILE": None,
           **env}
    return CliRunner().invoke(cli, [*args, *(["--plots", str(tmp_path / "p")] if args[0] in
                                            ("intentions", "propagation") else [])], env=env)


@pytest.mark.parametrize("command", ["canary", "shift", "intentions", "propagation", "status"])
@pytest.mark.parametrize("token", [f"{SECRET}\nx", f"{SECRET}\r\nx", f"t\u00f6k-{SECRET}", f"{SECRET}\x7f"])
def test_an_unsendable_token_is_refused_by_its_source_and_never_shown(command, token, tmp_path):
    with stand_in_agent(LEADER) as consul:
        result = _invoke(_commands(consul.address)[command],
                         {"CONSUL_HTTP_ADDR": consul.address, "CONSUL_HTTP_TOKEN": token}, tmp_path)
        assert consul.seen == []  # refused before any request
    output = result.stdout + result.stderr
    assert result.exit_code == ExitCode.USAGE, output
    assert SECRET not in output and "CONSUL_HTTP_TOKEN" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("content", [f"{SECRET}\n{SECRET}".encode(), f"{SECRET}\x00x".encode(),
                                     b"\xff\xfe" + SECRET.encode() + b"\x00", f"t\u00f6k{SECRET}".encode()])
def test_a_token_file_that_cannot_be_a_header_is_refused_by_its_path(content, tmp_path):
    path = tmp_path / "token"
    path.write_bytes(content)
    with stand_in_agent(LEADER) as consul:
        result = _invoke(_commands(consul.address)["canary"],
                         {"CONSUL_HTTP_ADDR": consul.address, "CONSUL_HTTP_TOKEN_FILE": str(path)}, tmp_path)
        assert consul.seen == []
    output = result.stdout + result.stderr
    assert result.exit_code == ExitCode.USAGE, output
    assert SECRET not in output and str(path) in output and len(result.stderr.strip().splitlines()) == 1


def test_whitespace_around_a_token_is_stripped_as_the_consul_cli_does(tmp_path):
    """A Kubernetes secret or an env file ends the token with a newline: it is sent without it."""
    (tmp_path / "token").write_text(f"  {SECRET}\r\n")
    for env in ({"CONSUL_HTTP_TOKEN": f" {SECRET}\n"}, {"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "token")}):
        settings = ConsulSettings.from_env(env)
        assert settings.token == SECRET
        with stand_in_agent(LEADER) as consul, ConsulClient(consul.address, settings=settings) as client:
            assert client.leader()
            assert consul.seen[-1]["X-Consul-Token"] == SECRET
    assert NomadSettings.from_env({"NOMAD_TOKEN": f"{SECRET}\n"}).token == SECRET


def test_nomad_token_is_refused_by_its_variable_too(tmp_path):
    with pytest.raises(LoadgenError) as info:
        NomadSettings.from_env({"NOMAD_TOKEN": f"{SECRET}\nx"})
    assert info.value.code == ExitCode.USAGE and "NOMAD_TOKEN" in info.value.message
    assert SECRET not in info.value.message
    with pytest.raises(LoadgenError) as info:
        NomadClient(settings=NomadSettings(token=f"t\u00f6k{SECRET}"))._request("GET", "/v1/status/leader")
    assert SECRET not in info.value.message and info.value.code == ExitCode.USAGE


@pytest.mark.parametrize("client_type", [ConsulClient, NomadClient])
def test_an_error_that_quotes_a_header_is_never_echoed(client_type):
    """Whatever slips past the checks: h11's LocalProtocolError quotes the header value it
    refused; the agent's client names the exception's type only."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'{SECRET}\\n'")

    client = client_type("127.0.0.1:1", transport=httpx.MockTransport(refuse))
    with pytest.raises(LoadgenError) as info:
        client._request("GET", "/v1/status/leader")
    assert SECRET not in info.value.message and "LocalProtocolError" in info.value.message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback quotes it either
    # Any other error's text is shown, with the token masked should it appear.
    settings_type = ConsulSettings if client_type is ConsulClient else NomadSettings

    def echo(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"peer said {request.headers.values()}")

    client = client_type(settings=settings_type(address="http://127.0.0.1:1", token=SECRET),
                         transport=httpx.MockTransport(echo))
    with pytest.raises(LoadgenError) as info:
        client._request("GET", "/v1/status/leader")
    assert SECRET not in info.value.message and "***" in info.value.message
