"""ConsulSettings: the consul CLI's environment, read with its precedence; refusals and TLS
failures explained in one line without the token."""

from __future__ import annotations

import pytest

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.consul_refusal import explain_connect_error, explain_refusal, purpose
from loadgen.mesh.consul_settings import DEFAULT_CONSUL, ConsulSettings, normalise_address
from tests.unit.tls_contexts import plain_http_context

SECRET = "9f2c1d6e-0000-4000-8000-5ec2e7000000"


def test_nothing_set_is_the_local_agent_over_http_without_a_token():
    s = ConsulSettings.from_env({})
    assert s.address == DEFAULT_CONSUL and s.token is None and s.headers() == {}
    assert plain_http_context(s.ssl_context()) and s.describe_tls() == "plain HTTP (no TLS)"


def test_address_forms():
    assert normalise_address("127.0.0.1:8501", https=True) == "https://127.0.0.1:8501"
    assert ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "127.0.0.1:8501", "CONSUL_HTTP_SSL": "true"}).https
    assert ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "https://127.0.0.1:8501/"}).address == \
        "https://127.0.0.1:8501"
    # The flag beats the variable.
    assert ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "10.0.0.1:1"}, address="127.0.0.1:2").address == \
        "http://127.0.0.1:2"
    for bad in ("unix:///tmp/consul.sock", "ftp://x:1", "http://"):
        with pytest.raises(LoadgenError) as info:
            normalise_address(bad)
        assert info.value.code == ExitCode.USAGE


def test_a_token_file_wins_over_the_token_as_in_the_consul_cli(tmp_path):
    f = tmp_path / "token"
    f.write_text(SECRET + "\n")
    s = ConsulSettings.from_env({"CONSUL_HTTP_TOKEN": "other", "CONSUL_HTTP_TOKEN_FILE": str(f)})
    assert s.token == SECRET and s.token_source == f"token file {f}"
    assert s.headers() == {"X-Consul-Token": SECRET}
    assert SECRET not in repr(s)
    g = tmp_path / "flag-token"
    g.write_text("from-flag")
    assert ConsulSettings.from_env({"CONSUL_HTTP_TOKEN_FILE": str(f)}, token_file=str(g)).token == "from-flag"
    assert ConsulSettings.from_env({"CONSUL_HTTP_TOKEN": "t"}).token_source == "CONSUL_HTTP_TOKEN"


def test_a_missing_or_empty_token_file_is_one_line_exit_2(tmp_path):
    with pytest.raises(LoadgenError) as info:
        ConsulSettings.from_env({"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "gone")})
    assert info.value.code == ExitCode.USAGE and "CONSUL_HTTP_TOKEN_FILE" in info.value.message
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(LoadgenError, match="is empty"):
        ConsulSettings.from_env({}, token_file=str(tmp_path / "empty"))


def test_tls_files_are_checked_and_client_cert_needs_its_key(tmp_path):
    with pytest.raises(LoadgenError, match=r"CONSUL_CACERT .*no such file"):
        ConsulSettings.from_env({"CONSUL_CACERT": str(tmp_path / "ca.pem")})
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(LoadgenError, match="go together"):
        ConsulSettings.from_env({"CONSUL_CLIENT_CERT": str(cert)})


def test_a_ca_that_is_not_a_certificate_is_one_line(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate")
    s = ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "https://127.0.0.1:8501", "CONSUL_CACERT": str(ca)})
    with pytest.raises(LoadgenError, match="cannot be used"):
        s.ssl_context()


def test_verify_off_and_namespaces():
    s = ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "https://h:8501", "CONSUL_HTTP_SSL_VERIFY": "false",
                                 "CONSUL_NAMESPACE": "team", "CONSUL_PARTITION": "p1"})
    assert s.ssl_context() is False and "NOT verified" in s.describe_tls()
    assert s.headers() == {"X-Consul-Namespace": "team", "X-Consul-Partition": "p1"}
    # Without CONSUL_HTTP_SSL_VERIFY, HTTPS is verified (against the system's CAs: httpx's verify=True).
    verified = ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "https://h:8501"})
    assert verified.ssl_context() is True and verified.describe_tls() == "TLS, verified against the system's CAs"
    with pytest.raises(LoadgenError, match="not a boolean"):
        ConsulSettings.from_env({"CONSUL_HTTP_SSL_VERIFY": "maybe"})


def test_at_keeps_the_credentials_and_the_scheme():
    s = ConsulSettings.from_env({"CONSUL_HTTP_ADDR": "https://a:8501", "CONSUL_HTTP_TOKEN": SECRET})
    t = s.at("127.0.0.1:9501")
    assert t.address == "https://127.0.0.1:9501" and t.token == SECRET


@pytest.mark.parametrize(("method", "path", "words"), [
    ("GET", "/v1/config/service-splitter/service-b", "read its service-splitter"),
    ("DELETE", "/v1/config/service-intentions/service-b", "delete its service-intentions"),
    ("PUT", "/v1/config", "write a config entry"),
    ("GET", "/v1/discovery-chain/service-b", "read its discovery chain"),
    ("GET", "/v1/health/service/service-b", "read its instances"),
    ("GET", "/v1/unknown", None),
])
def test_purpose(method, path, words):
    assert purpose(method, path) == words


def test_refusals_in_words():
    token = ConsulSettings(address="https://127.0.0.1:8501", token=SECRET, token_source="CONSUL_HTTP_TOKEN")
    anonymous = ConsulSettings(address="https://127.0.0.1:8501")
    missing = ("Permission denied: token with AccessorID '00000000-0000-0000-0000-000000000002' lacks "
               "permission 'operator:read'")
    assert explain_refusal("GET", "/v1/x", 403, missing, anonymous).endswith(
        "no token was sent (Consul used its anonymous token); set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE, "
        "and it needs operator:read")
    assert explain_refusal("GET", "/v1/discovery-chain/b", 403, "ACL not found", token) == (
        "Consul refused GET /v1/discovery-chain/b: Consul does not know the token from CONSUL_HTTP_TOKEN "
        "(wrong, deleted or expired)")
    plain = ConsulSettings(address="http://127.0.0.1:8501")
    assert explain_refusal("GET", "/v1/agent/self", 400, "Client sent an HTTP request to an HTTPS server.\n",
                           plain).startswith("Consul at http://127.0.0.1:8501 serves HTTPS only: use "
                                             "https://127.0.0.1:8501")
    assert explain_refusal("GET", "/v1/x", 500, "boom", token) == "Consul refused GET /v1/x: HTTP 500: boom"
    for s in (token, anonymous):
        for status, body in ((403, missing), (403, "ACL not found"), (403, "Permission denied")):
            assert SECRET not in explain_refusal("GET", "/v1/x", status, body, s)


def test_tls_failures_in_words(tmp_path):
    s = ConsulSettings(address="https://127.0.0.1:8501", cacert=str(tmp_path / "ca.pem"))
    verify = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate"
    assert "not signed by the CA in " + str(tmp_path / "ca.pem") in explain_connect_error(verify, s)
    mismatch = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate is " \
               "not valid for 'localhost'."
    assert "does not name '127.0.0.1'" in explain_connect_error(mismatch, s)
    assert "CONSUL_TLS_SERVER_NAME" in explain_connect_error(mismatch, s)
    assert "does not speak TLS" in explain_connect_error("[SSL: WRONG_VERSION_NUMBER] wrong version number", s)
    assert explain_connect_error("[Errno 111] Connection refused", s) is None



def test_an_empty_list_consul_filtered_is_a_refusal():
    import httpx

    from loadgen.mesh.consul_api import ConsulClient

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[], headers={"X-Consul-Results-Filtered-By-ACLs": "true"})

    settings = ConsulSettings(address="http://127.0.0.1:1", token=SECRET, token_source="CONSUL_HTTP_TOKEN")
    with ConsulClient(settings=settings, transport=httpx.MockTransport(answer)) as consul, \
            pytest.raises(LoadgenError) as info:
        consul.catalog_service("service-a")
    assert info.value.code == ExitCode.UNREACHABLE
    assert info.value.message == ("Consul hid service-a's instances from GET /v1/catalog/service/service-a: the "
                                  "token from CONSUL_HTTP_TOKEN needs service:read on service-a and node:read")

    def unfiltered(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[])

    with ConsulClient(settings=settings, transport=httpx.MockTransport(unfiltered)) as consul:
        assert consul.health_service("service-a") == []


def test_an_empty_list_under_default_deny_may_be_hidden():
    import httpx

    from loadgen.mesh.consul_api import ConsulClient

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[], headers={"X-Consul-Default-ACL-Policy": "deny"})

    with ConsulClient(settings=ConsulSettings(address="http://127.0.0.1:1"),
                      transport=httpx.MockTransport(answer)) as consul, pytest.raises(LoadgenError) as info:
        consul.catalog_service("service-a-sidecar-proxy")
    assert "no token was sent" in info.value.message and "or service-a-sidecar-proxy is not registered" in \
        info.value.message
