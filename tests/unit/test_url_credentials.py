"""Issue 25 item 1: a password in a URL is refused before anything is sent or written (loadgen
sends no basic auth, and the URL goes into --json and the reports), masked in the one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from loadgen.cli import cli
from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.consul_settings import ConsulSettings
from loadgen.mesh.nomad_settings import NomadSettings
from loadgen.url_userinfo import without_userinfo
from tests.unit.stand_in_agent import stand_in_agent

PASSWORD = "pa55w0rd-x"


@pytest.fixture(autouse=True)
def _no_signal_handlers(monkeypatch):
    monkeypatch.setattr("loadgen.interrupts.install", lambda: None)


def test_the_credentials_are_masked_whatever_they_hold():
    assert without_userinfo(f"http://me:{PASSWORD}@h:1/p?q=a@b") == "http://***@h:1/p?q=a@b"
    assert without_userinfo(f"https://{PASSWORD}@h/") == "https://***@h/"
    assert without_userinfo("http://h:1/p@x") == "http://h:1/p@x"  # an @ in the path is not userinfo


def test_a_password_in_the_target_is_refused_before_a_request_and_never_written(tmp_path):
    """It used to be sent nowhere and written verbatim into --json."""
    with stand_in_agent({"/": (200, b'{"app_id": "1"}')}) as target:
        url = f"http://me:{PASSWORD}@{target.address}/hello"
        report = tmp_path / "c.json"
        result = CliRunner().invoke(cli, ["canary", "--expect", "100/0", "--map", "1=v1,2=v2", "--target", url,
                                          "--max-time", "1s", "--json", str(report)],
                                    env={"LOADGEN_RUN_DIR": str(tmp_path / "run")})
        assert target.seen == []
    assert result.exit_code == ExitCode.USAGE, result.output
    assert PASSWORD not in result.stdout + result.stderr and "--target http://***@" in result.stderr
    assert not report.exists() or PASSWORD not in json.dumps(report.read_text())


@pytest.mark.parametrize("args", [
    ["run", "--target", f"http://me:{PASSWORD}@127.0.0.1:1/", "--duration", "1s"],
    ["intentions", "--target", f"http://me:{PASSWORD}@127.0.0.1:1/", "--consul", "127.0.0.1:1",
     "--envoy-admin", "127.0.0.1:1"],
    ["propagation", "--splitter", "50/50", "--target", f"http://me:{PASSWORD}@127.0.0.1:1/", "--consul",
     "127.0.0.1:1", "--envoy-admin", "127.0.0.1:1"],
    ["shift", "--subset", "v2", "--steps", "50", "--target", f"http://me:{PASSWORD}@127.0.0.1:1/", "--consul",
     "127.0.0.1:1"],
    ["split", "--url", f"http://me:{PASSWORD}@127.0.0.1:1/", "--json"],
    ["canary", "--expect", "consul", "--target", "http://127.0.0.1:1/", "--consul", f"http://me:{PASSWORD}@h:1"],
])
def test_every_command_refuses_it_in_one_line(args, tmp_path):
    result = CliRunner().invoke(cli, args, env={"LOADGEN_RUN_DIR": str(tmp_path / "run")})
    assert result.exit_code == ExitCode.USAGE, result.output
    assert PASSWORD not in result.stdout + result.stderr and "***@" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_agent_addresses_from_the_environment_too():
    for build, env in ((ConsulSettings.from_env, "CONSUL_HTTP_ADDR"), (NomadSettings.from_env, "NOMAD_ADDR")):
        with pytest.raises(LoadgenError) as info:
            build({env: f"http://me:{PASSWORD}@127.0.0.1:1"})
        assert info.value.code == ExitCode.USAGE and env in info.value.message
        assert PASSWORD not in info.value.message
