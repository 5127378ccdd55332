"""Every runtime implements the one contract (loadgen/mesh/runtime/base.py), as a peer, and
the run state keeps a runtime's own record with it (and reads the old top-level form)."""

from __future__ import annotations

import inspect
import json

import pytest

from loadgen.mesh import Runtime
from loadgen.mesh.runtime.docker import DockerRuntime
from loadgen.mesh.runtime.nomad import NomadRecord, NomadRuntime
from loadgen.mesh.runtime.process import ProcessRuntime
from loadgen.mesh.runtime.select import runtime_for
from loadgen.mesh.state import MeshState, RunDir

RUNTIMES = [ProcessRuntime, DockerRuntime, NomadRuntime]


@pytest.mark.parametrize("cls", RUNTIMES)
def test_each_runtime_is_a_peer_implementing_the_contract(cls):
    assert issubclass(cls, Runtime)
    assert cls.__mro__[1] is Runtime  # no runtime inherits another one's internals
    assert not inspect.isabstract(cls), f"{cls.__name__} misses {sorted(cls.__abstractmethods__)}"
    # The public methods callers use are the contract's, implemented once.
    for method in ("up", "down", "status", "current_target", "logs"):
        assert getattr(cls, method) is getattr(Runtime, method)


def test_the_contract_cannot_be_instantiated_half_done(tmp_path):
    class Half(Runtime):
        name = "half"

    with pytest.raises(TypeError, match="abstract"):
        Half(RunDir(tmp_path))


def test_runtime_for_returns_the_contract(tmp_path, monkeypatch):
    monkeypatch.delenv("LOADGEN_RUNTIME", raising=False)
    rt = runtime_for(run=RunDir(tmp_path))
    assert isinstance(rt, Runtime) and isinstance(rt, ProcessRuntime)


def test_nomads_record_lives_in_its_runtime_state(tmp_path):
    run = RunDir(tmp_path)
    state = MeshState(runtime="nomad")
    record = NomadRecord(state)
    record.driver = "docker"
    assert state.empty  # a setting is not a part that runs
    record.jobs.append("service-b")
    record.bridge = "loadgen-nomad"
    assert not state.empty
    run.save(state)
    on_disk = json.loads(run.state_file.read_text())
    assert on_disk["runtime_state"] == {"jobs": ["service-b"], "bridge": "loadgen-nomad"}
    assert on_disk["runtime_options"] == {"driver": "docker"}
    assert "jobs" not in on_disk and "driver" not in on_disk
    loaded = NomadRecord(run.load())
    assert (loaded.jobs, loaded.bridge, loaded.driver) == (["service-b"], "loadgen-nomad", "docker")


def test_an_old_state_file_with_top_level_nomad_fields_is_read(tmp_path):
    run = RunDir(tmp_path)
    run.path.mkdir(exist_ok=True)
    run.state_file.write_text(json.dumps({"runtime": "nomad", "stage": "basic", "processes": {},
                                          "jobs": ["service-a"], "bridge": "loadgen-nomad", "driver": "raw_exec"}))
    state = run.load()
    record = NomadRecord(state)
    assert not state.empty
    assert (record.jobs, record.bridge, record.driver) == (["service-a"], "loadgen-nomad", "raw_exec")
    old_empty = {"runtime": "nomad", "jobs": [], "bridge": None, "driver": "raw_exec"}
    run.state_file.write_text(json.dumps(old_empty))
    assert run.load().empty


def test_doctor_rows_are_typed_and_name_every_part():
    from loadgen.mesh.doctor import PartCheck, check_parts
    from loadgen.mesh.toolchain import PARTS

    rows = check_parts()
    assert all(isinstance(r, PartCheck) for r in rows)
    assert [r.part for r in rows] == [*PARTS, "go", "docker engine", "bridge networking"]
    for r in rows:
        assert (r.fix is None) == r.compatible or r.part == "bridge networking", r
