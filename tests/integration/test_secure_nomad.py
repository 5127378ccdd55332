"""`loadgen up --secure` on the nomad runtime: the real Nomad agent talks to the secure Consul agent
(ACLs default-deny, TLS only) over HTTPS 8501 and gRPC TLS 8503 with the mesh's CA and a Consul
token of its own, and Nomad itself launches the Connect sidecars, each with a service-identity
token Nomad derives. Nomad's own ACLs stay off.

Checked here on stage splitter: the agent's Consul settings, the sidecars' service-identity
tokens, traffic through service-a reaching both service-b instances, the canary PASSing with
only the read token (given the consul CLI's way), no token in any log, a bad NOMAD_* setting as
one line, and `down` removing every token and policy (Nomad's and its sidecars' too) and files.
"""

from __future__ import annotations

import json
import ssl
import subprocess
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Loadgen

# Its own secure mesh from nothing: run among the nomad tests, before the shared nomad mesh (conftest).
pytestmark = pytest.mark.runtime("nomad")

HTTPS = "https://127.0.0.1:8501"
NOMAD = "http://127.0.0.1:4646"
SERVICE_A = "http://127.0.0.1:3000/hello_a"


@pytest.fixture(scope="module")
def secure_nomad(loadgen, tmp_path_factory) -> Loadgen:
    from tests.integration.runtimes import NomadParts

    NomadParts().require()  # a failure in CI, a skip elsewhere
    loadgen("down", "-q")  # the session's plain mesh holds the same ports
    lg = Loadgen(run_dir=tmp_path_factory.mktemp("secure-nomad-run"), extra_env={})
    try:
        up = lg.json("up", "--stage", "splitter", "--runtime", "nomad", "--secure", "-q")
        assert up["secure"] and up["consul_env"]["CONSUL_HTTP_ADDR"] == HTTPS, up
        yield lg
    finally:
        lg("down", "-q", check=False)


def _files(lg: Loadgen) -> Path:
    return lg.run_dir / "secure"


def _ca(lg: Loadgen) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(_files(lg) / "consul-agent-ca.pem"))


def _consul(lg: Loadgen, path: str, role: str = "management") -> httpx.Response:
    token = (_files(lg) / "tokens" / role).read_text().strip()
    return httpx.get(f"{HTTPS}{path}", verify=_ca(lg), headers={"X-Consul-Token": token}, timeout=5)


def _nomad_state_dir(lg: Loadgen) -> Path:
    from loadgen.mesh.runtime.nomad import nomad_state_dir

    return nomad_state_dir(lg.run_dir)


def _si_tokens_on_disk(lg: Loadgen) -> list[str]:
    """The service-identity tokens Nomad wrote to its sidecar tasks' secrets dirs."""
    return [p.read_text().strip() for p in (_nomad_state_dir(lg) / "alloc").glob("*/connect-proxy-*/secrets/si_token")]


def _secrets(lg: Loadgen) -> list[str]:
    return [p.read_text().strip() for p in (_files(lg) / "tokens").iterdir()] + _si_tokens_on_disk(lg)


def _no_secret_in(lg: Loadgen, *texts: str) -> None:
    secrets = _secrets(lg)
    assert len(secrets) >= 8  # management, read, service-a, service-b, nomad + three sidecars' SI tokens
    for text in texts:
        for secret in secrets:
            assert secret not in text


def _user_env(lg: Loadgen, **extra: str) -> dict[str, str]:
    files = _files(lg)
    env = lg.env(CONSUL_HTTP_ADDR=HTTPS, CONSUL_CACERT=str(files / "consul-agent-ca.pem"),
                 CONSUL_HTTP_TOKEN_FILE=str(files / "tokens" / "read"))
    env.pop("CONSUL_HTTP_TOKEN", None)
    env.update(extra)
    return env


def test_nomad_talks_to_consul_over_tls_with_its_own_token_and_its_acls_off(secure_nomad):
    files = _files(secure_nomad)
    config = files / "nomad-consul.json"
    assert config.stat().st_mode & 0o777 == 0o600 and (files / "tokens" / "nomad").stat().st_mode & 0o777 == 0o600
    local = (secure_nomad.run_dir / "nomad" / "local.json").read_text()  # not private: no consul block, no token
    assert "consul" not in local and "token" not in local
    self_ = httpx.get(f"{NOMAD}/v1/agent/self", timeout=5).json()["config"]
    consul = self_["Consul"]
    assert consul["Addr"] == "127.0.0.1:8501" and consul["EnableSSL"] is True and consul["VerifySSL"] is True
    assert consul["GRPCAddr"] == "127.0.0.1:8503"
    assert consul["CAFile"] == consul["GRPCCAFile"] == str(files / "consul-agent-ca.pem")
    assert consul["AllowUnauthenticated"] is False and consul["ShareSSL"] is False
    assert consul["Token"] == "<redacted>"
    assert not (self_.get("ACL") or {}).get("Enabled")  # Nomad's own ACLs stay off (README says so)
    # Consul: no plain HTTP, and nothing without a token.
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:8500/v1/status/leader", timeout=2)
    assert httpx.get(f"{HTTPS}/v1/agent/self", verify=_ca(secure_nomad), timeout=5).status_code == 403
    # Nomad's token has exactly the rules loadgen gives it.
    from loadgen.mesh.secure import NOMAD_RULES

    policies = {p["Name"]: p for p in _consul(secure_nomad, "/v1/acl/policies").json()}
    rules = _consul(secure_nomad, f"/v1/acl/policy/{policies['loadgen-nomad']['ID']}").json()["Rules"]
    assert rules == NOMAD_RULES


def test_nomad_launches_every_sidecar_with_a_service_identity_it_derived(secure_nomad):
    status = secure_nomad.json("status")
    assert status["runtime"] == "nomad" and status["up"] and status["consul"] == HTTPS
    assert status["consul_security"].startswith("ACLs on (default deny); TLS, verified against ")
    sidecars = [c for c in status["components"] if c["kind"] == "sidecar"]
    assert len(sidecars) == 3 and all(c["ref"].startswith("alloc ") and c["health"] == "passing" for c in sidecars)
    derived = [t for t in _consul(secure_nomad, "/v1/acl/tokens").json()
               if t.get("Description", "").startswith("_nomad_si ")]
    assert Counter(s["ServiceName"] for t in derived for s in t["ServiceIdentities"]) == \
        {"service-a": 1, "service-b": 2}, derived
    assert all(t["Local"] and not t.get("Policies") for t in derived)  # a service identity, nothing else
    assert len(_si_tokens_on_disk(secure_nomad)) == 3
    # Through service-a's sidecar to both service-b instances (mTLS, the allow intention).
    with httpx.Client(timeout=5) as client:
        ids = Counter(client.get(SERVICE_A, headers={"Connection": "close"}).headers["X-App-Id"] for _ in range(80))
    assert set(ids) == {"1", "2"}, ids


def test_canary_passes_with_only_the_read_token(secure_nomad, tmp_path):
    report = tmp_path / "canary.json"
    proc = secure_nomad("canary", "--expect", "85/15", "--tolerance", "5", "--target", SERVICE_A,
                        "--envoy-admin", "127.0.0.1:19000",
                        "--json", str(report), "-q", env=_user_env(secure_nomad), check=False, timeout=240)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    result = json.loads(report.read_text())
    assert result["verdict"] == "PASS" and result["three_way"]["consul"], result["verdict"]
    _no_secret_in(secure_nomad, proc.stdout, proc.stderr, report.read_text())


def test_a_bad_nomad_setting_is_one_line(secure_nomad, tmp_path):
    proc = secure_nomad("status", env=secure_nomad.env(NOMAD_CACERT=str(tmp_path / "no-ca.pem")), check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"NOMAD_CACERT {tmp_path / 'no-ca.pem'}: no such file" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_no_token_in_any_log_or_state_file(secure_nomad):
    texts = [p.read_text(errors="replace") for p in secure_nomad.run_dir.rglob("*")
             if p.is_file() and "secure" not in p.relative_to(secure_nomad.run_dir).parts]
    # Nomad's task logs, the apps' and the Envoy sidecars' (regular files: beside them are the
    # fifos Nomad's log collectors read, which would block).
    logs = [p for p in (_nomad_state_dir(secure_nomad) / "alloc").glob("*/alloc/logs/*") if p.is_file()]
    assert len(logs) >= 6, logs
    texts += [p.read_text(errors="replace") for p in logs]
    assert texts and any("Nomad agent" in t or "nomad" in t.lower() for t in texts)
    _no_secret_in(secure_nomad, *texts)


def test_down_removes_every_token_and_policy_and_the_files(secure_nomad):
    # Last in this module: the fixture's own down then finds nothing to do.
    made = [t["Description"] for t in _consul(secure_nomad, "/v1/acl/tokens").json()
            if t.get("Description", "").startswith("loadgen")]
    assert len(made) == 4, made  # read, service-a, service-b and the Nomad agent's
    # Nomad revokes a sidecar's service identity when its allocation stops.
    from loadgen.mesh.nomad_api import NomadClient

    with NomadClient(NOMAD) as nomad:
        before = {a["ID"] for a in nomad.allocations("service-b") if a["ClientStatus"] == "running"}
        nomad.stop("service-b", purge=False)
        _wait(lambda: all(nomad.allocation(a)["ClientStatus"] != "running" for a in before), "service-b stopped")
    _wait(lambda: not [t for t in _consul(secure_nomad, "/v1/acl/tokens").json()
                       if "connect-proxy-service-b" in t.get("Description", "")], "service-b's SI tokens revoked")
    state_dir = _nomad_state_dir(secure_nomad)
    proc = secure_nomad("down")
    out = proc.stdout + proc.stderr
    assert "deleted 4 ACL tokens and 2 policies" in out, out
    assert "Nomad revoked the service-identity tokens it derived" in out, out
    assert not _files(secure_nomad).exists() and not state_dir.exists()
    assert secure_nomad.state() == {}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{HTTPS}/v1/status/leader", verify=False, timeout=2)
    assert json.loads(subprocess.run(["ip", "-j", "link", "show", "type", "veth"], capture_output=True,
                                     text=True).stdout or "[]") == []


def _wait(ok, what: str, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"not within {timeout:.0f}s: {what}"
        time.sleep(0.2)
