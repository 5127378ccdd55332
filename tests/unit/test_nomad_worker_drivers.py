"""--nomad-driver: which template and job the workers are dispatched from, and what each gets
(raw_exec: this checkout's Python; docker: the loadgen image, LOADGEN_NOMAD_IMAGE's when set)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx
import pytest

from loadgen.distributed.nomad_jobs import IMAGE_ENV, NomadLauncher
from loadgen.mesh.nomad_api import NomadClient
from loadgen.mesh.nomad_settings import NomadSettings
from tests.unit.cli_in_process import loadgen_in_process


def _recording_nomad() -> tuple[httpx.MockTransport, list[tuple[str, str, dict]]]:
    calls: list[tuple[str, str, dict]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        calls.append((request.method, request.url.path, body))
        if request.url.path == "/v1/jobs/parse":
            return httpx.Response(200, json={"ID": "parsed"})
        if request.url.path.endswith("/dispatch"):
            return httpx.Response(200, json={"DispatchedJobID": "j/dispatch-1", "EvalID": "e1"})
        return httpx.Response(200, json={})

    return httpx.MockTransport(answer), calls


def _launch(driver: str) -> list[tuple[str, str, dict]]:
    transport, calls = _recording_nomad()
    client = NomadClient(transport=transport, settings=NomadSettings.from_env({}))
    NomadLauncher(client=client, driver=driver).launch("http://127.0.0.1:1", "run-token", 1, 10)
    return calls


def test_raw_exec_parses_the_raw_exec_template_with_this_python():
    (_, _, parse), (_, register, _), (_, dispatch, _) = _launch("raw_exec")
    assert 'driver = "raw_exec"' in parse["JobHCL"]
    assert f"python = {json.dumps(sys.executable)}" in parse["Variables"].splitlines()
    assert dispatch == "/v1/job/loadgen-worker/dispatch" and register == "/v1/jobs"


def test_docker_parses_the_docker_template_with_the_image_named(monkeypatch):
    monkeypatch.setenv(IMAGE_ENV, "registry.example/loadgen:abc")
    (_, _, parse), _, (_, dispatch, _) = _launch("docker")
    assert 'driver = "docker"' in parse["JobHCL"] and 'network_mode = "host"' in parse["JobHCL"]
    variables = dict(line.split(" = ", 1) for line in parse["Variables"].splitlines())
    # Only what the docker template declares (Nomad refuses a value for an undeclared variable).
    assert variables == {"job_id": '"loadgen-worker-docker"', "image": '"registry.example/loadgen:abc"'}
    assert dispatch == "/v1/job/loadgen-worker-docker/dispatch"


def test_both_templates_keep_what_the_coordinator_relies_on():
    from loadgen.mesh.nomad_agent import nomad_dir

    for name in ("loadgen-worker.nomad.hcl", "loadgen-worker-docker.nomad.hcl"):
        text = (nomad_dir() / name).read_text()
        assert 'meta_required = ["coordinator", "index", "of", "lease"]' in text, name
        assert 'file = "token"' in text and '"--token-file", "${NOMAD_TASK_DIR}/token"' in text, name
        assert len(re.findall(r"\battempts\s*=\s*0\b", text)) == 2, name  # restart and reschedule: never again


@pytest.mark.parametrize("command", [["canary", "--expect", "85/15"], ["run", "--stage", "splitter"]])
def test_nomad_driver_without_nomad_workers_is_one_line_exit_2(command, tmp_path: Path):
    proc = loadgen_in_process(*command, "--nomad-driver", "docker", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].endswith("give it with --nomad-workers N"), proc.stderr
