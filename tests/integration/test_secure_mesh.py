"""`loadgen up --secure` on the process runtime: a real Consul agent with ACLs default-deny and
TLS only, real Envoy sidecars holding their own service-identity tokens.

The mesh has its own run directory (the session's plain mesh is taken down first: the apps'
ports are the same). Checked here: the four seed stages come up and behave as the README's
table says; Consul refuses a request without a token and does not serve plain HTTP; the canary
PASSes with only the read token, given the consul CLI's way (CONSUL_HTTP_TOKEN_FILE,
CONSUL_CACERT); each bad input is one line with its exit code; no token is in any output, log
or report; `down` deletes the tokens, the policy and the files.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from loadgen.mesh import toolchain
from tests.integration.conftest import Loadgen

HTTPS = "https://127.0.0.1:8501"
SERVICE_A = "http://127.0.0.1:3000/hello_a"


@pytest.fixture(scope="module")
def secure(loadgen, tmp_path_factory) -> Loadgen:
    loadgen("down", "-q")  # the session's plain mesh holds the apps' ports
    lg = Loadgen(run_dir=tmp_path_factory.mktemp("secure-run"), extra_env={})
    try:
        lg("up", "--stage", "basic", "--secure", "-q")
        yield lg
    finally:
        lg("down", "-q", check=False)


def _files(lg: Loadgen) -> Path:
    return lg.run_dir / "secure"


def _secrets(lg: Loadgen) -> list[str]:
    return [p.read_text().strip() for p in (_files(lg) / "tokens").iterdir()]


def _no_secret_in(lg: Loadgen, *texts: str) -> None:
    secrets = _secrets(lg)
    assert len(secrets) >= 4  # management, read, service-a, service-b
    for text in texts:
        for secret in secrets:
            assert secret not in text


def _one_line(proc: subprocess.CompletedProcess[str], code: int, words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_the_files_are_owner_only_and_the_agent_is_acl_and_tls_only(secure):
    files = _files(secure)
    assert files.stat().st_mode & 0o077 == 0
    for token in (files / "tokens").iterdir():
        assert token.stat().st_mode & 0o777 == 0o600, token
    assert (files / "agent-secure.hcl").stat().st_mode & 0o777 == 0o600
    ca = ssl.create_default_context(cafile=str(files / "consul-agent-ca.pem"))
    # No token: refused by default-deny, naming the rule it lacks.
    r = httpx.get(f"{HTTPS}/v1/agent/self", verify=ca, timeout=5)
    assert r.status_code == 403 and "lacks permission 'agent:read'" in r.text
    r = httpx.get(f"{HTTPS}/v1/config/service-defaults/service-b", verify=ca, timeout=5)
    assert r.status_code == 403
    # Plain HTTP is not served: nothing on the plain port, and the HTTPS port refuses it.
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:8500/v1/status/leader", timeout=2)
    r = httpx.get("http://127.0.0.1:8501/v1/status/leader", timeout=2)
    assert r.status_code == 400 and "HTTPS server" in r.text
    status = secure.json("status")
    assert status["consul"] == HTTPS and status["up"]
    assert status["consul_security"].startswith("ACLs on (default deny); TLS, verified against ")
    doctor = json.loads(secure("doctor", "--json", check=False).stdout)["consul_agent"]
    assert doctor["address"] == HTTPS and doctor["reachable"] and doctor["whose"] == "the local mesh's"
    assert doctor["security"].startswith("ACLs on (default deny); TLS, verified against ")


@pytest.mark.parametrize(("stage", "answer"), [("basic", 200), ("intentions", None), ("l7-router", 200),
                                               ("splitter", 200)])
def test_each_seed_stage_is_live_on_the_secure_mesh(secure, stage, answer):
    # `up` checks the stage is live (the intentions stage: service-a's upstream call denied).
    proc = secure("up", "--stage", stage)
    with httpx.Client(timeout=5) as client:
        codes = {client.get(SERVICE_A, headers={"Connection": "close"}).status_code for _ in range(20)}
    if answer is None:
        assert 200 not in codes, codes
    else:
        assert codes == {answer}, codes
    entries = {(e["kind"], e["name"]) for e in secure.json("status")["config_entries"]}
    # Under default-deny every stage but the deny writes the allow; the deny replaces it.
    assert ("service-intentions", "service-b") in entries
    _no_secret_in(secure, proc.stdout, proc.stderr)


def _user_env(lg: Loadgen, **extra: str) -> dict[str, str]:
    files = _files(lg)
    env = lg.env(CONSUL_HTTP_ADDR=HTTPS, CONSUL_CACERT=str(files / "consul-agent-ca.pem"),
                 CONSUL_HTTP_TOKEN_FILE=str(files / "tokens" / "read"))
    env.pop("CONSUL_HTTP_TOKEN", None)
    env.update(extra)
    return env


def test_canary_passes_with_only_the_read_token_given_the_consul_cli_way(secure, tmp_path):
    secure("up", "--stage", "splitter", "-q")
    report = tmp_path / "canary.json"
    junit = tmp_path / "canary.xml"
    proc = secure("canary", "--expect", "85/15", "--tolerance", "5", "--target", SERVICE_A,
                  "--envoy-admin", "127.0.0.1:19000",
                  "--json", str(report), "--junit", str(junit), "-q", env=_user_env(secure), check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    result = json.loads(report.read_text())
    assert result["verdict"] == "PASS" and result["three_way"]["consul"]
    # --expect consul reads the compiled chain with the read token too.
    proc2 = secure("canary", "--expect", "consul", "--tolerance", "5", "--target", SERVICE_A,
                   "--envoy-admin", "127.0.0.1:19000",
                   "-q", env=_user_env(secure), check=False)
    assert proc2.returncode == 0, (proc2.stdout, proc2.stderr)
    _no_secret_in(secure, proc.stdout, proc.stderr, proc2.stdout, proc2.stderr, report.read_text(),
                  junit.read_text())


def _other_ca(tmp_path: Path) -> Path:
    consul = toolchain.require("consul")
    subprocess.run([str(consul), "tls", "ca", "create", "-domain", "other"], cwd=tmp_path, check=True,
                   capture_output=True)
    return tmp_path / "other-agent-ca.pem"


def test_bad_credentials_and_tls_are_one_line_each(secure, tmp_path):
    secure("up", "--stage", "splitter", "-q")
    canary = ("canary", "--expect", "consul", "--target", SERVICE_A, "-q")
    wrong = str(uuid.uuid4())
    cases = [
        ({"CONSUL_HTTP_TOKEN_FILE": "", "CONSUL_HTTP_TOKEN": wrong}, 4,
         "Consul does not know the token from CONSUL_HTTP_TOKEN (wrong, deleted or expired)"),
        ({"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "no-such-token")}, 2, "CONSUL_HTTP_TOKEN_FILE"),
        ({"CONSUL_CACERT": str(_other_ca(tmp_path))}, 4, "is not signed by the CA in"),
        ({"CONSUL_TLS_SERVER_NAME": "nobody.example"}, 4, "does not name 'nobody.example'"),
        ({"CONSUL_HTTP_ADDR": "http://127.0.0.1:8501"}, 4, "serves HTTPS only: use https://127.0.0.1:8501"),
        ({"CONSUL_HTTP_TOKEN_FILE": ""}, 4, "no token was sent"),
    ]
    outputs = []
    for extra, code, words in cases:
        proc = secure(*canary, env=_user_env(secure, **extra), check=False)
        _one_line(proc, code, words)
        outputs += [proc.stdout, proc.stderr]
    assert all(wrong not in o for o in outputs)
    _no_secret_in(secure, *outputs)


def test_tls_not_verified_is_said(secure):
    secure("up", "--stage", "splitter", "-q")
    env = _user_env(secure, CONSUL_HTTP_SSL_VERIFY="false", CONSUL_CACERT="")
    proc = secure("canary", "--expect", "85/15", "--tolerance", "5", "--target", SERVICE_A,
                  "--envoy-admin", "127.0.0.1:19000", "-q",
                  env=env, check=False)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert "TLS to Consul is NOT verified (CONSUL_HTTP_SSL_VERIFY=false)" in proc.stderr


def test_intentions_probe_measures_deny_and_allow_under_default_deny(secure):
    secure("up", "--stage", "basic", "-q")
    proc = secure("intentions", "--repeat", "1", "--json", "-", timeout=240)
    report = json.loads(proc.stdout)
    assert report["violations"] == 0
    cycle = report["protocols"]["tcp"]["repeats"][0]
    for phase in (cycle["deny"], cycle["allow"]):
        assert 0 < phase["first_ms"]["new"] <= phase["all_ms"]["new"] < 30_000, phase
        assert all(0 < v < 30_000 for v in phase["envoy_ms"].values()), phase
    # The secure stage's allow is back: service-a reaches service-b again.
    files = _files(secure)
    ca = ssl.create_default_context(cafile=str(files / "consul-agent-ca.pem"))
    read = {"X-Consul-Token": (files / "tokens" / "read").read_text().strip()}
    entry = httpx.get(f"{HTTPS}/v1/config/service-intentions/service-b", verify=ca, headers=read, timeout=5).json()
    assert [(s["Name"], s["Action"]) for s in entry["Sources"]] == [("service-a", "allow")]
    assert httpx.get(SERVICE_A, timeout=5).status_code == 200
    _no_secret_in(secure, proc.stdout, proc.stderr)


def test_l7_permissions_bite_per_request_class_with_no_violation(secure):
    secure("up", "--stage", "l7-router", "-q")
    proc = secure("intentions", "--permissions", "--repeat", "1", "--json", "-", timeout=240)
    report = json.loads(proc.stdout)
    assert report["violations"] == 0 and report["wrongly_denied"] == 0, report
    assert report["found"] == "1 source(s)"  # the secure stage's allow, merged into and put back
    [cycle] = report["repeats"]
    allowed = cycle["restrict"]["classes"]["get-hello-b"]
    assert allowed["requests"] > 50 and allowed["reached"] == allowed["requests"], allowed  # GET /hello_b: 200
    for name in ("post-hello-b", "get-hello-b-admin", "get-hello-b-x-debug"):
        bite = cycle["restrict"]["classes"][name]
        assert bite["denied"] > 50 and bite["errors"] == 0 and not bite["never_bit"], (name, bite)  # RBAC 403
        assert cycle["lift"]["classes"][name]["all_ms"] is not None, (name, cycle["lift"])
    files = _files(secure)
    ca = ssl.create_default_context(cafile=str(files / "consul-agent-ca.pem"))
    read = {"X-Consul-Token": (files / "tokens" / "read").read_text().strip()}
    entry = httpx.get(f"{HTTPS}/v1/config/service-intentions/service-b", verify=ca, headers=read, timeout=5).json()
    assert [(s["Name"], s["Action"], s.get("Permissions")) for s in entry["Sources"]] == \
        [("service-a", "allow", None)]
    _no_secret_in(secure, proc.stdout, proc.stderr)


def test_no_token_in_any_log_or_state_file(secure):
    secure("up", "--stage", "splitter", "-q")
    texts = [p.read_text(errors="replace") for p in secure.run_dir.rglob("*")
             if p.is_file() and "secure" not in p.relative_to(secure.run_dir).parts]
    assert texts
    _no_secret_in(secure, *texts)


def test_down_removes_tokens_policy_and_files(secure):
    # Last in this module: the fixture's own down then finds nothing to do.
    secure("up", "--stage", "splitter", "-q")
    files = _files(secure)
    ca = ssl.create_default_context(cafile=str(files / "consul-agent-ca.pem"))
    management = (files / "tokens" / "management").read_text().strip()
    headers = {"X-Consul-Token": management}
    before = httpx.get(f"{HTTPS}/v1/acl/tokens", verify=ca, headers=headers, timeout=5).json()
    made = [t for t in before if t.get("Description", "").startswith("loadgen")]
    assert len(made) == 3, [t.get("Description") for t in before]  # read, service-a, service-b
    proc = secure("down")
    assert "deleted 3 ACL tokens and 1 policy" in proc.stderr + proc.stdout
    assert not files.exists()


def test_splitter_on_the_docker_runtime_with_secure(secure, tmp_path):
    # After test_down: the same run directory, now with the sidecars in containers that mount
    # secure/ read-only.
    from tests.integration.runtimes import DockerParts

    DockerParts().require()
    secure("down", "-q")
    try:
        up = secure.json("up", "--stage", "splitter", "--runtime", "docker", "--secure", "-q")
        assert up["secure"] and up["consul_env"]["CONSUL_HTTP_ADDR"] == HTTPS
        assert all(box["ref"].startswith("container ") for box in secure.json("status")["components"]
                   if box["kind"] == "sidecar")
        report = tmp_path / "canary.json"
        proc = secure("canary", "--expect", "85/15", "--tolerance", "5", "--target", SERVICE_A,
                      "--envoy-admin", "127.0.0.1:19000",
                      "--json", str(report), "-q", env=_user_env(secure), check=False)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert json.loads(report.read_text())["verdict"] == "PASS"
        _no_secret_in(secure, proc.stdout, proc.stderr, report.read_text())
    finally:
        secure("down", "-q", check=False)
    assert not _files(secure).exists()
