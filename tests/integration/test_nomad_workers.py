"""`canary --nomad-workers`: the load from workers dispatched as jobs of the local Nomad agent (the
one the nomad runtime starts), one verdict from their merged send-ordered counts, and no job left."""

from __future__ import annotations

import json

import pytest

from tests.integration.runtimes import PARTS


@pytest.fixture(scope="module", params=("nomad",))
def runtime(request, shared_mesh):
    """The nomad runtime's shared mesh (conftest.SharedMesh): its agent runs the workers too."""
    PARTS[request.param]().require()
    shared_mesh.use("splitter", request.param)
    yield request.param
    shared_mesh.hand_back()


def test_canary_from_three_nomad_workers_passes_on_their_merged_counts(loadgen, runtime):
    from loadgen.mesh.nomad_api import NomadClient

    proc = loadgen("canary", "--expect", "85/15", "--tolerance", "5", "--nomad-workers", "3", "--rate", "600",
                   "--json", "-", timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "PASS" and doc["stopped_by"] == "verdict"
    workers = doc["workers"]
    assert sorted(workers) == ["0", "1", "2"] and all(w["final"] and w["lost"] is None for w in workers.values())
    # Each judged answer is one worker's, counted once: the workers' judged counts sum to the verdict's n.
    assert sum(sum(w["judged_app_ids"].values()) for w in workers.values()) == doc["judge"]["n"]
    assert sum(sum(w["app_ids"].values()) for w in workers.values()) == sum(doc["app_id_counts"].values())
    with NomadClient() as nomad:  # every dispatched worker job, and the parameterized job, purged
        assert [j["ID"] for j in nomad.jobs(prefix="loadgen-worker")] == []


def test_a_worker_nomad_cannot_place_is_a_clear_error_and_nothing_is_left(loadgen, runtime):
    from loadgen.distributed.drive import coordinate
    from loadgen.distributed.nomad_jobs import NomadLauncher
    from loadgen.errors import ExitCode, LoadgenError
    from loadgen.load.engine import LoadPlan
    from loadgen.mesh.nomad_api import NomadClient

    plan = LoadPlan(url="http://127.0.0.1:3000/hello_a", rate=100, max_time=5, timeout=2)
    # No node has 10 TB of memory: the dispatch's evaluation says so, and the run gives up at its start bound.
    with pytest.raises(LoadgenError) as failed:
        coordinate(plan, 2, NomadLauncher(variables={"memory": "10000000"}), start_timeout=3)
    assert failed.value.code == ExitCode.UNREACHABLE
    assert "did not start within 3s" in failed.value.message and "memory" in failed.value.message, failed.value.message
    with NomadClient() as nomad:
        assert [j["ID"] for j in nomad.jobs(prefix="loadgen-worker")] == []
