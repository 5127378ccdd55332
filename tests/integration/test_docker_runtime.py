"""What only the docker runtime has, on a real Docker engine: labelled host-network containers.
The stage, canary, run and fault tests run on it too (they are parametrized over every runtime)."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from tests.integration.parts import missing

# Starts from nothing: run first among the docker tests, before the shared docker mesh (conftest).
pytestmark = pytest.mark.runtime("docker")


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


def test_down_removes_every_container(docker, loadgen):
    loadgen("down")
    assert _ours(docker, loadgen) == []
    assert loadgen.state() == {}
