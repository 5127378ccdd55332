"""What only the nomad runtime has, on a real Nomad agent: jobs whose Connect sidecars Nomad
launches, bridge networking in namespaces of our own, and the set-up's refusal without root.
The stage, canary and run tests run on it too (they are parametrized over every runtime)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.runtimes import NomadParts

# Starts from nothing: run first among the nomad tests, before the shared nomad mesh (conftest).
pytestmark = pytest.mark.runtime("nomad")


@pytest.fixture(scope="module")
def nomad(loadgen):
    from loadgen.mesh.nomad_api import NomadClient

    NomadParts().require()  # a failure in CI, a skip elsewhere
    loadgen("down", "-q")
    with NomadClient() as client:
        yield client
    loadgen("down", "-q")


def test_jobs_run_every_instance_with_a_nomad_launched_sidecar(nomad, loadgen):
    target = loadgen.json("up", "--stage", "splitter", "--runtime", "nomad")
    assert target["sidecar_admin"] == {"service-a": 19000, "service-b-1": 19001, "service-b-2": 19002}
    assert {j["ID"] for j in nomad.jobs() if j["Status"] == "running"} == {"service-a", "service-b"}
    groups = {}
    for job in ("service-a", "service-b"):
        for group in nomad.job(job)["TaskGroups"]:
            assert group["Networks"][0]["Mode"] == "bridge"
            service = group["Services"][0]
            assert service["Connect"]["SidecarService"] is not None
            groups[(job, group["Name"])] = {**(service.get("Meta") or {}), "tasks": {t["Name"] for t in group["Tasks"]}}
    # meta.version is what the resolver's subsets select on; the sidecar task is Nomad's, run with raw_exec.
    assert groups[("service-b", "v1")]["version"] == "v1" and groups[("service-b", "v2")]["version"] == "v2"
    assert groups[("service-b", "v1")]["tasks"] == {"app", "connect-proxy-service-b"}
    for job in ("service-a", "service-b"):
        for alloc in nomad.allocations(job):
            if alloc["ClientStatus"] == "running":
                # Each allocation lives in a network namespace Nomad made for it.
                assert Path("/var/run/netns", alloc["ID"]).exists()
    ids = Counter(httpx.get("http://127.0.0.1:3000/hello_a", timeout=5).headers["X-App-Id"] for _ in range(80))
    assert set(ids) == {"1", "2"}


def test_sidecars_publish_their_mtls_port_on_the_bridge_not_on_loopback(nomad, loadgen):
    from loadgen.mesh import bridge
    from loadgen.mesh.runtime.nomad import nomad_dir

    gateway = bridge.read_spec(nomad_dir() / "conf" / "agent.hcl").gateway
    proxies = httpx.get("http://127.0.0.1:8500/v1/catalog/service/service-b-sidecar-proxy", timeout=5).json()
    assert len(proxies) == 2
    for p in proxies:
        # 127.0.0.1 inside one namespace is not another's: sidecars meet at the bridge's gateway.
        assert p["ServiceAddress"] == gateway != "127.0.0.1", p["ServiceAddress"]
        assert p["ServiceProxy"]["LocalServicePort"] == 3001


def test_status_shows_allocations_and_their_health(nomad, loadgen):
    status = loadgen.json("status")
    assert status["runtime"] == "nomad" and status["up"]
    by_name = {c["name"]: c for c in status["components"]}
    assert by_name["nomad"]["kind"] == "nomad" and by_name["nomad"]["health"] == "passing"
    for inst in ("service-a", "service-b-1", "service-b-2"):
        assert by_name[inst]["health"] == "passing" and by_name[f"{inst}-sidecar"]["health"] == "passing"
        app_ref, sidecar_ref = by_name[inst]["ref"], by_name[f"{inst}-sidecar"]["ref"]
        assert app_ref.startswith("alloc ") and app_ref[:14] == sidecar_ref[:14]  # one allocation, two tasks
        assert by_name[f"{inst}-sidecar"]["log"].endswith("connect-proxy-service-" + inst.split("-")[1] + ".stderr.0")
    proc = loadgen("logs", "service-b-1-sidecar")
    assert proc.returncode == 0


def test_cannot_mix_runtimes(nomad, loadgen):
    proc = loadgen("up", "--stage", "basic", "--runtime", "process", check=False)
    assert proc.returncode == 5 and "runs on the nomad runtime" in proc.stderr


def test_without_root_the_setup_says_so(nomad, loadgen):
    # pytest's tmp_path sits under a 0700 directory; an unprivileged user needs its own.
    run_dir = Path(tempfile.mkdtemp(prefix="loadgen-nobody-"))
    os.chmod(run_dir, 0o777)
    env = {**os.environ, "LOADGEN_RUN_DIR": str(run_dir), "HOME": str(run_dir)}
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "loadgen.cli", "up", "--stage", "basic", "--runtime", "nomad"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "needs root" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    shutil.rmtree(run_dir)


def test_down_stops_and_purges_the_jobs(nomad, loadgen):
    parts = NomadParts()
    parts.require()
    loadgen("down")
    assert nomad.reachable() is False  # the agent we started is gone with its jobs
    assert parts.leftovers(loadgen) == []
    assert loadgen.state() == {}
    assert json.loads(subprocess.run(["ip", "-j", "link", "show", "type", "veth"], capture_output=True,
                                     text=True).stdout or "[]") == []


def test_docker_driver_runs_the_same_jobs_as_containers_of_the_local_images(nomad, loadgen):
    from loadgen.errors import LoadgenError
    from loadgen.mesh.images import docker_client

    try:
        client = docker_client()
    except LoadgenError as exc:
        from tests.integration.parts import missing

        missing(exc.message)
    loadgen("up", "--stage", "splitter", "--runtime", "nomad", "--driver", "docker")
    boxes = client.containers.list(filters={"label": "com.hashicorp.nomad.alloc_id"})
    # Per allocation: the pause container holding its namespace, the app and its Envoy sidecar.
    kinds = Counter(next(p for p in ("nomad_init_", "app-", "connect-proxy-") if b.name.startswith(p)) for b in boxes)
    assert kinds == {"nomad_init_": 3, "app-": 3, "connect-proxy-": 3}, [b.name for b in boxes]
    images = {b.image.tags[0].split(":")[0] for b in boxes}
    assert images == {"loadgen/pause", "loadgen/service-a", "loadgen/service-b", "loadgen/consul-envoy"}
    result = json.loads(loadgen("canary", "--expect", "85/15", "--tolerance", "5", "--json", "-", "-q").stdout)
    assert result["verdict"] == "PASS" and result["errors"] == {}
    proc = loadgen("up", "--stage", "splitter", "--driver", "raw_exec", check=False)
    assert proc.returncode == 5 and "docker driver" in proc.stderr
    loadgen("down")
    assert client.containers.list(all=True, filters={"label": "com.hashicorp.nomad.alloc_id"}) == []
    assert {i.tags[0].split(":")[0] for i in client.images.list() if i.tags} >= images  # kept for the next run
