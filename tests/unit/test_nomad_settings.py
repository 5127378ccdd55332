"""NomadSettings: the nomad CLI's environment (NOMAD_ADDR, NOMAD_TOKEN, NOMAD_CACERT, ...) read with
its precedence, and NomadClient sending what they say, never showing the token."""

from __future__ import annotations

import ssl

import httpx
import pytest

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.nomad_api import NomadClient
from loadgen.mesh.nomad_settings import DEFAULT_NOMAD, NomadSettings, normalise_address
from tests.unit.test_client_tls import _openssl, make_certs  # noqa: F401  (the fixture: openssl is here)
from tests.unit.tls_contexts import plain_http_context

SECRET = "3c1d9e2f-0000-4000-8000-5ec2e7000001"


def test_nothing_set_is_the_local_agent_over_http_without_a_token():
    s = NomadSettings.from_env({})
    assert s.address == DEFAULT_NOMAD == "http://127.0.0.1:4646"
    assert s.token is None and s.headers() == {} and s.params() == {}
    assert plain_http_context(s.ssl_context()) and s.describe_tls() == "plain HTTP (no TLS)"


def test_address_forms_and_an_address_given_beats_nomad_addr():
    assert normalise_address("127.0.0.1:4646") == "http://127.0.0.1:4646"  # the CLI's default scheme
    assert NomadSettings.from_env({"NOMAD_ADDR": "https://127.0.0.1:4646/"}).address == "https://127.0.0.1:4646"
    assert NomadSettings.from_env({"NOMAD_ADDR": "https://127.0.0.1:4646"}).https
    # As the CLI's -address flag beats NOMAD_ADDR: the agent the nomad runtime runs is named so.
    assert NomadSettings.from_env({"NOMAD_ADDR": "10.0.0.1:1"}, address="127.0.0.1:4646").address == DEFAULT_NOMAD
    for bad in ("unix:///tmp/nomad.sock", "ftp://x:1", "http://"):
        with pytest.raises(LoadgenError) as info:
            normalise_address(bad)
        assert info.value.code == ExitCode.USAGE and "Nomad address" in info.value.message


def test_the_token_is_sent_but_never_shown():
    s = NomadSettings.from_env({"NOMAD_TOKEN": SECRET})
    assert s.token == SECRET and s.token_source == "NOMAD_TOKEN"
    assert s.headers() == {"X-Nomad-Token": SECRET}
    assert SECRET not in repr(s)
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json="127.0.0.1:4647")

    with NomadClient(settings=s, transport=httpx.MockTransport(answer)) as nomad:
        assert nomad.leader() == "127.0.0.1:4647"
    assert seen[0].headers["X-Nomad-Token"] == SECRET


def test_nomad_client_reads_the_environment_when_given_nothing(monkeypatch):
    monkeypatch.setenv("NOMAD_ADDR", "http://127.0.0.1:14646")
    monkeypatch.setenv("NOMAD_TOKEN", SECRET)
    with NomadClient() as nomad:
        assert nomad.address == "http://127.0.0.1:14646" and nomad.settings.token == SECRET
    # An address given (the runtime's own agent) beats NOMAD_ADDR; the token still comes along.
    with NomadClient("127.0.0.1:4646") as nomad:
        assert nomad.address == DEFAULT_NOMAD and nomad.settings.token_source == "NOMAD_TOKEN"


def test_region_and_namespace_are_sent_only_when_set():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    s = NomadSettings.from_env({"NOMAD_REGION": "eu", "NOMAD_NAMESPACE": "canary"})
    with NomadClient(settings=s, transport=httpx.MockTransport(answer)) as nomad:
        nomad.jobs(prefix="service-")
    assert dict(seen[0].url.params) == {"region": "eu", "namespace": "canary", "prefix": "service-"}
    with NomadClient(settings=NomadSettings(), transport=httpx.MockTransport(answer)) as nomad:
        nomad.jobs()
    assert dict(seen[1].url.params) == {}


def test_tls_files_are_checked_and_client_cert_needs_its_key(tmp_path):
    with pytest.raises(LoadgenError) as info:
        NomadSettings.from_env({"NOMAD_CACERT": str(tmp_path / "ca.pem")})
    assert info.value.code == ExitCode.USAGE
    assert info.value.message == f"NOMAD_CACERT {tmp_path / 'ca.pem'}: no such file"
    with pytest.raises(LoadgenError, match=r"NOMAD_CAPATH .*no such directory"):
        NomadSettings.from_env({"NOMAD_CAPATH": str(tmp_path / "cas")})
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(LoadgenError, match="NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY go together"):
        NomadSettings.from_env({"NOMAD_CLIENT_CERT": str(cert)})


def test_a_ca_and_a_client_certificate_make_the_tls_context(tmp_path):
    ca, cert, key = make_certs(tmp_path, "nomad")
    s = NomadSettings.from_env({"NOMAD_ADDR": "https://127.0.0.1:4646", "NOMAD_CACERT": str(ca),
                                "NOMAD_CLIENT_CERT": str(cert), "NOMAD_CLIENT_KEY": str(key),
                                "NOMAD_TLS_SERVER_NAME": "server.global.nomad"})
    ctx = s.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert s.describe_tls() == f"TLS, verified against {ca}, name server.global.nomad"
    # Plain http ignores the TLS files, as the CLI does.
    assert plain_http_context(s.at("127.0.0.1:4646").ssl_context())
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(LoadgenError, match=r"^the TLS files for Nomad cannot be used \(NOMAD_CACERT "):
        NomadSettings.from_env({"NOMAD_ADDR": "https://127.0.0.1:4646", "NOMAD_CACERT": str(bad)}).ssl_context()


def test_skip_verify_is_said_and_a_bad_value_is_one_line():
    s = NomadSettings.from_env({"NOMAD_ADDR": "https://127.0.0.1:4646", "NOMAD_SKIP_VERIFY": "true"})
    assert s.ssl_context() is False and s.describe_tls() == "TLS, NOT verified (NOMAD_SKIP_VERIFY=true)"
    assert NomadSettings.from_env({"NOMAD_SKIP_VERIFY": "0"}).verify
    with pytest.raises(LoadgenError) as info:
        NomadSettings.from_env({"NOMAD_SKIP_VERIFY": "maybe"})
    assert info.value.message == "NOMAD_SKIP_VERIFY='maybe' is not a boolean (use true or false)"
