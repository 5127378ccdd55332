"""Nomad's refusals and TLS failures as one line (loadgen/mesh/nomad_refusal.py), and what
--nomad-workers' clean-up says when the token may not list jobs. Nomad's bodies are the ones
Nomad 1.6 answers (seen against tests/integration/secure_nomad.py's agent)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from loadgen.distributed.nomad_jobs import NomadLauncher
from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.nomad_api import NomadClient
from loadgen.mesh.nomad_refusal import POLICY_FILE, capability, explain_connect_error, explain_refusal
from loadgen.mesh.nomad_settings import NomadSettings
from loadgen.paths import project_root

TOKEN = "3c335b37-0cfe-36b2-f652-63c29bf265a5"
WITH_TOKEN = NomadSettings.from_env({"NOMAD_ADDR": "https://127.0.0.1:4656", "NOMAD_TOKEN": TOKEN})
NO_TOKEN = NomadSettings.from_env({"NOMAD_ADDR": "https://127.0.0.1:4656"})


@pytest.mark.parametrize(("status", "body", "words"), [
    (403, "ACL token not found", "Nomad does not know the token from NOMAD_TOKEN (wrong or deleted)"),
    (500, "failed to resolve ACL token: ACL token expired", "the token from NOMAD_TOKEN has expired"),
])
def test_an_unknown_or_expired_token_is_named_by_its_variable_never_shown(status, body, words):
    line = explain_refusal("POST", "/v1/jobs/parse", status, body, WITH_TOKEN)
    assert line == f"Nomad refused POST /v1/jobs/parse: {words}"
    assert TOKEN not in line


def test_a_missing_capability_is_named_with_the_policy_file():
    line = explain_refusal("POST", "/v1/job/loadgen-worker/dispatch", 403, "Permission denied", WITH_TOKEN)
    assert line == ("Nomad refused POST /v1/job/loadgen-worker/dispatch: permission denied: the token from "
                    f"NOMAD_TOKEN needs dispatch-job in namespace default (see {POLICY_FILE}), or Nomad no "
                    "longer knows it")
    ns = NomadSettings.from_env({"NOMAD_TOKEN": TOKEN, "NOMAD_NAMESPACE": "load"})
    assert "needs list-jobs in namespace load" in explain_refusal("GET", "/v1/jobs", 403, "Permission denied", ns)
    assert "no token was sent: set NOMAD_TOKEN" in explain_refusal("GET", "/v1/jobs", 403, "Permission denied",
                                                                   NO_TOKEN)


def test_every_capability_loadgen_needs_is_in_the_policy_file():
    calls = [("POST", "/v1/jobs/parse"), ("POST", "/v1/jobs"), ("POST", "/v1/job/loadgen-worker/dispatch"),
             ("GET", "/v1/job/loadgen-worker%2Fdispatch-1/allocations"), ("GET", "/v1/evaluation/e1"),
             ("DELETE", "/v1/job/loadgen-worker"), ("GET", "/v1/jobs")]
    needed = {capability(m, p) for m, p in calls}
    assert needed == {"submit-job", "dispatch-job", "read-job", "list-jobs"}
    policy = (project_root() / POLICY_FILE).read_text()
    listed = set(json.loads(policy.split("capabilities =", 1)[1].split("\n", 1)[0].strip()))
    assert listed == needed


def test_an_http_address_for_an_https_agent_and_tls_failures_say_which_variable():
    plain = NomadSettings.from_env({"NOMAD_ADDR": "http://127.0.0.1:4656"})
    assert explain_refusal("GET", "/v1/jobs", 400, "Client sent an HTTP request to an HTTPS server.\n", plain) == (
        "Nomad at http://127.0.0.1:4656 serves HTTPS only: use https://127.0.0.1:4656 (NOMAD_ADDR) and its CA "
        "(NOMAD_CACERT)")
    no_ca = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate"
    assert "give the agent's CA with NOMAD_CACERT" in explain_connect_error(no_ca, WITH_TOKEN)
    no_cert = "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)"
    assert "set NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY" in explain_connect_error(no_cert, WITH_TOKEN)
    assert explain_connect_error("[Errno 111] Connection refused", WITH_TOKEN) is None


def test_the_client_raises_the_explained_line_with_exit_4(monkeypatch):
    transport = httpx.MockTransport(lambda _r: httpx.Response(403, text="ACL token not found"))
    with NomadClient(transport=transport, settings=WITH_TOKEN) as api, pytest.raises(LoadgenError) as info:
        api.parse("job {}", {})
    assert info.value.code == ExitCode.UNREACHABLE
    assert "does not know the token from NOMAD_TOKEN" in info.value.message and TOKEN not in info.value.message


def _fake_nomad(list_status: int) -> tuple[httpx.MockTransport, list[str]]:
    """A Nomad that dispatches, stops and purges, and answers GET /v1/jobs with ``list_status``."""
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls.append(f"{request.method} {path}?{request.url.query.decode()}")
        if path == "/v1/jobs/parse":
            return httpx.Response(200, json={"ID": "loadgen-worker"})
        if path.endswith("/dispatch"):
            return httpx.Response(200, json={"DispatchedJobID": "loadgen-worker/dispatch-1", "EvalID": "e1"})
        if path == "/v1/jobs" and request.method == "GET":
            return httpx.Response(list_status, json=[]) if list_status == 200 else \
                httpx.Response(list_status, text="Permission denied")
        if path.endswith("/allocations"):
            return httpx.Response(200, json=[])
        return httpx.Response(200, json={})

    return httpx.MockTransport(answer), calls


@pytest.mark.parametrize("list_status", [200, 403])
def test_the_parameterized_job_is_purged_or_said_to_be_left(monkeypatch, tmp_path: Path, list_status):
    transport, calls = _fake_nomad(list_status)
    launcher = NomadLauncher(client=NomadClient(transport=transport, settings=WITH_TOKEN))
    launcher.launch("http://127.0.0.1:1", "run-token", 1, 10)
    warnings = launcher.stop()
    purged_parent = "DELETE /v1/job/loadgen-worker?purge=true" in calls
    if list_status == 200:
        assert purged_parent and warnings == []
    else:
        assert not purged_parent
        assert warnings == ["the parameterized job loadgen-worker was left registered (it runs nothing): Nomad "
                            "refused GET /v1/jobs: permission denied: the token from NOMAD_TOKEN needs list-jobs "
                            f"in namespace default (see {POLICY_FILE}), or Nomad no longer knows it"]
