"""What only the docker runtime has, on a real Docker engine: labelled host-network containers,
and a sidecar container killed mid-run. The stage, canary and run tests run on it too
(they are parametrized over every runtime)."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from tests.integration.parts import missing


@pytest.fixture(scope="module")
def docker(loadgen):
    from loadgen.errors import LoadgenError
    from loadgen.mesh.images import docker_client

    try:
        client = docker_client()
    except LoadgenError as exc:
        missing(exc.message)
    loadgen("down", "-q")
    yield client
    loadgen("down", "-q")


def _ours(client, loadgen):
    return client.containers.list(all=True, filters={"label": f"loadgen.mesh={loadgen.run_dir}"})


def _hello(n):
    with httpx.Client(timeout=5) as c:
        return [c.get("http://127.0.0.1:3000/hello_a", headers={"Connection": "close"}) for _ in range(n)]


def test_basic_on_containers(docker, loadgen):
    target = loadgen.json("up", "--stage", "basic", "--runtime", "docker")
    assert target["stage"] == "basic"
    status = loadgen.json("status")
    assert status["runtime"] == "docker" and status["up"]
    assert all(c["ref"].startswith("container ") for c in status["components"] if c["name"] != "consul")
    names = {c.labels["loadgen.mesh.component"] for c in _ours(docker, loadgen)}
    assert names == {"service-a", "service-b-1", "service-b-2", "service-a-sidecar", "service-b-1-sidecar",
                     "service-b-2-sidecar"}
    for c in _ours(docker, loadgen):
        assert c.attrs["HostConfig"]["NetworkMode"] == "host"
    ids = Counter(r.headers["X-App-Id"] for r in _hello(40) if r.status_code == 200)
    assert set(ids) == {"1", "2"} and sum(ids.values()) == 40


def test_cannot_mix_runtimes(docker, loadgen):
    proc = loadgen("up", "--stage", "basic", "--runtime", "process", check=False)
    assert proc.returncode == 5 and "runs on the docker runtime" in proc.stderr


def test_sidecar_container_killed_mid_run(docker, loadgen, tmp_path):
    import subprocess
    import sys
    import time

    loadgen("up", "--stage", "splitter", "--runtime", "docker")
    record, out = tmp_path / "rec.jsonl", tmp_path / "c.json"
    # A tolerance too tight to decide in a few seconds, so the run is still going when the sidecar dies.
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", "canary", "--expect", "85/15", "--tolerance", "0.5",
                             "--max-time", "8s", "--record", str(record), "--json", str(out), "-q"],
                            env=loadgen.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not record.exists() or len(record.read_text().splitlines()) < 500:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    box = next(c for c in _ours(docker, loadgen) if c.labels["loadgen.mesh.component"] == "service-b-2-sidecar")
    box.kill()
    _, stderr = proc.communicate(timeout=120)
    result = json.loads(out.read_text())
    assert proc.returncode in (1, 3), stderr  # the run completed and judged what it had
    assert sum(result["errors"].values()) > 0 and result["app_id_counts"]["2"] > 0  # v2 answered before
    assert len(record.read_text().splitlines()) == result["requests"]  # no sample lost
    assert any(n.startswith("v2 stopped answering") for n in result["notes"]), result["notes"]
    loadgen("up", "--stage", "splitter")


def test_down_removes_every_container(docker, loadgen):
    loadgen("down")
    assert _ours(docker, loadgen) == []
    assert loadgen.state() == {}
