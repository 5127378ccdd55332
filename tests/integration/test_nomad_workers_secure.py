"""`canary --nomad-workers` against a Nomad with ACLs and TLS on (tests/integration/secure_nomad.py:
HTTPS with client certificates, RPC over TLS, ACLs bootstrapped), with a token holding only the
policy README documents (nomad/loadgen-worker.policy.hcl); the load on the shared process mesh.
A token Nomad does not know, or one that has expired: one line, exit 4, the token never shown."""

from __future__ import annotations

import json
import time

import pytest

from loadgen.mesh import toolchain
from loadgen.paths import project_root
from tests.integration.parts import missing
from tests.integration.secure_nomad import healthy_drivers, jobs_left, start_secure_nomad, token_rejected

POLICY = project_root() / "nomad" / "loadgen-worker.policy.hcl"


@pytest.fixture(scope="module")
def secure_nomad():
    found = toolchain.find("nomad")
    if not found.ok or found.path is None:
        missing("nomad is missing (run scripts/bootstrap.sh)")
    agent = start_secure_nomad(found.path)
    yield agent
    agent.stop()


def test_canary_from_two_workers_on_a_nomad_with_acls_and_tls_passes(splitter_mesh, secure_nomad):
    token = secure_nomad.token(POLICY)
    proc = splitter_mesh("canary", "--expect", "85/15", "--tolerance", "5", "--nomad-workers", "2", "--rate", "400",
                         "--json", "-", "-q", env=splitter_mesh.env(**secure_nomad.env(token)), timeout=120,
                         check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "PASS" and sorted(doc["workers"]) == ["0", "1"]
    assert sum(sum(w["judged_app_ids"].values()) for w in doc["workers"].values()) == doc["judge"]["n"]
    # The documented policy is enough to clean up too: every dispatched job and the parameterized
    # job purged, and no warning that something was left.
    assert jobs_left(secure_nomad, "loadgen-worker") == []
    assert not [n for n in doc.get("notes", []) if "left registered" in n], doc.get("notes")
    assert token not in proc.stdout + proc.stderr


@pytest.mark.parametrize("which", ["unknown", "expired"])
def test_a_token_nomad_refuses_is_one_line_exit_4_and_never_shown(splitter_mesh, secure_nomad, which):
    if which == "unknown":
        token, words = "0b3f2c1e-6d4a-4e8b-9a7c-5f1e2d3c4b5a", "does not know the token from NOMAD_TOKEN"
    else:
        token, words = secure_nomad.token(POLICY, ttl="1s"), "the token from NOMAD_TOKEN has expired"
        deadline = time.monotonic() + 30  # a bound on the wait for Nomad to call it expired, not a timing
        while not token_rejected(secure_nomad, token) and time.monotonic() < deadline:
            time.sleep(0.2)
    proc = splitter_mesh("canary", "--expect", "85/15", "--tolerance", "5", "--nomad-workers", "2", "-q",
                         env=splitter_mesh.env(**secure_nomad.env(token)), timeout=60, check=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert token not in proc.stdout + proc.stderr
    assert jobs_left(secure_nomad, "loadgen-worker") == []


def test_canary_from_two_docker_workers_of_the_loadgen_image_passes(splitter_mesh, secure_nomad):
    """--nomad-driver docker: each worker a container of the loadgen image (test_images.py builds
    it earlier in the suite) on the host network; the same agent, ACLs and TLS on."""
    from loadgen.errors import LoadgenError
    from loadgen.mesh.images import docker_client

    try:
        docker_client()
    except LoadgenError as exc:
        missing(exc.message)
    deadline = time.monotonic() + 30  # the docker driver's first fingerprint may come after raw_exec's
    with secure_nomad.client() as nomad:
        while "docker" not in healthy_drivers(nomad) and time.monotonic() < deadline:
            time.sleep(0.2)
    token = secure_nomad.token(POLICY)
    proc = splitter_mesh("canary", "--expect", "85/15", "--tolerance", "5", "--nomad-workers", "2", "--nomad-driver",
                         "docker", "--rate", "400", "--json", "-", "-q",
                         env=splitter_mesh.env(**secure_nomad.env(token)), timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "PASS" and sorted(doc["workers"]) == ["0", "1"]
    assert sum(sum(w["judged_app_ids"].values()) for w in doc["workers"].values()) == doc["judge"]["n"]
    assert jobs_left(secure_nomad, "loadgen-worker") == []
    # The run's allocations (purged jobs' allocations stay until Nomad's GC) were docker tasks of the image.
    with secure_nomad.client() as nomad:
        allocs = [nomad.allocation(a["ID"]) for a in nomad._request("GET", "/v1/allocations")
                  if a["JobID"].startswith("loadgen-worker-docker/")]
    tasks = [a["Job"]["TaskGroups"][0]["Tasks"][0] for a in allocs]
    assert len(tasks) == 2 and {t["Driver"] for t in tasks} == {"docker"}, tasks
    assert all(t["Config"]["image"].startswith("loadgen/loadgen:") and t["Config"]["network_mode"] == "host"
               for t in tasks)
    assert token not in proc.stdout + proc.stderr
