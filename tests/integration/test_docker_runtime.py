"""The docker runtime on a real Docker engine: the same stages, canary and faults as the process runtime."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from loadgen.mesh import envoy_admin
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


def test_intentions_l7_router_and_splitter_stages(docker, loadgen, tmp_path):
    loadgen("up", "--stage", "intentions")  # stays on the docker runtime
    assert {r.status_code for r in _hello(10)} <= {502, 503}
    loadgen("up", "--stage", "l7-router")
    routes = [r for r in envoy_admin.routes(envoy_admin.config_dump(19000)) if r.prefix == "/hello_b"]
    assert routes and envoy_admin.cluster_service(routes[0].cluster)[1] == "service-b"
    assert set(Counter(r.headers.get("X-App-Id") for r in _hello(40))) == {"1", "2"}
    loadgen("up", "--stage", "splitter")
    assert envoy_admin.weighted_split(envoy_admin.config_dump(19000), "service-b") == {"v1": 8500, "v2": 1500}
    proc = loadgen("canary", "--expect", "85/15", "--json", "-", "-q")
    assert json.loads(proc.stdout)["verdict"] == "PASS"
    assert loadgen.json("status")["runtime"] == "docker"
    run = json.loads(loadgen("run", "--stage", "splitter", "--rate", "200", "--duration", "3s", "--out",
                             str(tmp_path), "--no-plots", "--json").stdout)["stages"][0]
    assert run["requests"]["errors"] == 0 and set(run["split"]) == {"1", "2"} and run["generator"]["valid"]


def test_dead_sidecar_container_fails_the_canary_naming_the_subset(docker, loadgen):
    box = next(c for c in _ours(docker, loadgen) if c.labels["loadgen.mesh.component"] == "service-b-2-sidecar")
    box.kill()
    proc = loadgen("canary", "--expect", "85/15", "--json", "-", "-q", check=False)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert "v2" in result["reason"] and sum(result["errors"].values()) > 0
    loadgen("up", "--stage", "splitter")  # restarts the killed sidecar
    assert set(Counter(r.headers.get("X-App-Id") for r in _hello(60))) >= {"1", "2"}


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
