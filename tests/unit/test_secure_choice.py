"""Which meshes `up` makes secure: the choice is made on an empty machine and kept while it runs."""

from __future__ import annotations

import pytest

from loadgen.errors import ExitCode, LoadgenError
from loadgen.mesh.procs import ProcRecord
from loadgen.mesh.runtime.process import ProcessRuntime
from loadgen.mesh.state import MeshState, RunDir


def _running(secure: bool) -> MeshState:
    state = MeshState(secure=secure, consul_managed=True)
    state.processes["consul"] = ProcRecord(name="consul", pid=1, create_time=0.0, argv=[], log="x")
    return state


@pytest.mark.parametrize(("asked", "stale", "made"), [(True, False, True), (None, True, False), (None, False, False)])
def test_an_empty_machine_gets_what_up_asks_whatever_ran_before(tmp_path, asked, stale, made):
    state = MeshState(secure=stale)  # a secure mesh taken down leaves secure=True in the state file
    ProcessRuntime(RunDir(tmp_path), secure=asked)._choose_security(state)
    assert state.secure is made


def test_a_running_mesh_keeps_its_kind_and_the_other_is_refused(tmp_path):
    state = _running(secure=True)
    ProcessRuntime(RunDir(tmp_path))._choose_security(state)  # a canary borrowing it
    assert state.secure
    with pytest.raises(LoadgenError) as info:
        ProcessRuntime(RunDir(tmp_path), secure=True)._choose_security(_running(secure=False))
    assert info.value.code == ExitCode.ENVIRONMENT and "up without --secure" in info.value.message


def test_secure_with_an_agent_of_your_own_is_a_usage_error(tmp_path):
    with pytest.raises(LoadgenError) as info:
        ProcessRuntime(RunDir(tmp_path), consul_address="127.0.0.1:8500", secure=True)._choose_security(MeshState())
    assert info.value.code == ExitCode.USAGE and "CONSUL_HTTP_ADDR" in info.value.message
