"""The run directory's bookkeeping and what tells a mesh is (half) up, without a mesh."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from loadgen.errors import ExitCode, LoadgenError
from loadgen.interrupts import Terminated, install, signals_held
from loadgen.mesh.liveness import active_root, trusted_ca_bundles, trusts_root
from loadgen.mesh.local import borrowed_stage
from loadgen.mesh.runtime.base import ComponentStatus, MeshStatus, Target, half_up_problems
from loadgen.mesh.stages import load_stages
from loadgen.mesh.state import Borrower, MeshState, RunDir, join, leave, returned, user_took_over

OLD_ROOT = "-----BEGIN CERTIFICATE-----\nT0xEUk9PVA==\n-----END CERTIFICATE-----\n"
NEW_ROOT = "-----BEGIN CERTIFICATE-----\nTkVXUk9PVA==\n-----END CERTIFICATE-----\n"


# -- the lock --------------------------------------------------------------------------------
def test_a_busy_run_dir_is_an_environment_condition(tmp_path):
    # Another command's RunDir: flock conflicts between two open files, even in one process.
    with RunDir(tmp_path).locked(), pytest.raises(LoadgenError) as info, RunDir(tmp_path).locked():
        pass
    assert info.value.code == ExitCode.ENVIRONMENT
    assert info.value.message.startswith("another loadgen command")
    assert "is changing the mesh in" in info.value.message


# -- half up ---------------------------------------------------------------------------------
def _component(name: str, running: bool = True) -> ComponentStatus:
    kind = "consul" if name == "consul" else "sidecar" if name.endswith("-sidecar") else "app"
    return ComponentStatus(name=name, kind=kind, pid=1, port=None, running=running, health="passing")


def _whole_mesh() -> list[ComponentStatus]:
    names = ["consul"] + [n for i in ("service-a", "service-b-1", "service-b-2") for n in (i, f"{i}-sidecar")]
    return [_component(n) for n in names]


def test_a_whole_stage_is_up():
    stage = load_stages().get("splitter")
    components = _whole_mesh()
    problems = half_up_problems(stage, "splitter", components, "http://127.0.0.1:8500", True)
    assert problems == []
    assert MeshStatus("splitter", "process", None, True, components, [], problems).up


def test_a_stopped_part_is_not_up():
    components = [c if c.name != "service-b-2" else _component("service-b-2", running=False) for c in _whole_mesh()]
    assert not MeshStatus("splitter", "process", None, True, components, []).up


def test_an_up_that_never_finished_is_half_up():
    # An interrupted `up`: Consul and service-a run, no stage was recorded.
    components = [_component("consul"), _component("service-a")]
    problems = half_up_problems(None, None, components, None, True)
    assert len(problems) == 1 and problems[0].startswith("no stage is recorded")
    assert not MeshStatus(None, "process", None, True, components, [], problems).up


def test_a_part_never_started_and_consul_unreachable_are_named():
    stage = load_stages().get("splitter")
    components = [c for c in _whole_mesh() if c.name != "service-b-2-sidecar"]
    problems = half_up_problems(stage, "splitter", components, "http://127.0.0.1:8500", False)
    assert problems == ["service-b-2-sidecar of stage splitter is not running (never started)",
                        "Consul at http://127.0.0.1:8500 is unreachable"]


def test_nothing_recorded_is_not_up_and_has_no_problems():
    assert not MeshStatus(None, "process", None, False, [], []).up


# -- the sidecars trust the CA Consul signs with now ------------------------------------------
def _dump(*bundles: str) -> dict:
    """A config dump whose public listener and one upstream cluster verify peers with ``bundles``."""
    def tls(ca: str) -> dict:
        return {"typed_config": {"common_tls_context": {"validation_context": {"trusted_ca": {"inline_string": ca}}}}}

    listener = {"name": "public_listener", "filter_chains": [{"transport_socket": tls(bundles[0])}]}
    # A draining listener keeps its old certificates; it no longer serves.
    draining = {"filter_chains": [{"transport_socket": tls(OLD_ROOT)}]}
    clusters = [{"cluster": {"name": "service-b", "transport_socket": tls(b)}} for b in bundles[1:]]
    return {"configs": [
        {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
         # The bootstrap's static clusters are not mTLS peers of the mesh: never looked at.
         "static_clusters": [{"cluster": {"transport_socket": tls(OLD_ROOT)}}],
         "dynamic_active_clusters": clusters},
        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
         "dynamic_listeners": [{"active_state": {"listener": listener}},
                               {"draining_state": {"listener": draining}}]},
    ]}


def test_a_sidecar_still_on_the_old_ca_is_not_in_sync():
    assert trusts_root(_dump(NEW_ROOT, NEW_ROOT), NEW_ROOT)
    assert not trusts_root(_dump(NEW_ROOT, OLD_ROOT), NEW_ROOT)  # its upstream cluster is not re-synced yet
    assert not trusts_root(_dump(OLD_ROOT, OLD_ROOT), NEW_ROOT)
    # During a CA rotation a bundle holds both roots: trusting the active one is what counts.
    assert trusts_root(_dump(OLD_ROOT + NEW_ROOT.replace("\n", "\r\n")), NEW_ROOT)
    # Only the active listener's and the active cluster's, not the static or draining ones'.
    assert trusted_ca_bundles(_dump(NEW_ROOT, OLD_ROOT)) == [NEW_ROOT, OLD_ROOT]


def test_a_sidecar_without_config_is_not_in_sync():
    assert not trusts_root({"configs": []}, NEW_ROOT)


def test_the_active_root_of_consuls_answer():
    roots = {"TrustDomain": "abc.consul", "Roots": [{"RootCert": OLD_ROOT, "Active": False},
                                                   {"RootCert": NEW_ROOT, "Active": True}]}
    assert active_root(roots) == (NEW_ROOT, "abc.consul")
    assert active_root({"Roots": None}) is None


# -- borrowers: who uses the mesh, and who puts it back -------------------------------------------
@pytest.fixture
def others():
    """Borrowers in other live processes (a borrower is known by pid and start time)."""
    started: list[subprocess.Popen] = []

    def make(stage: str, command: str = "canary") -> Borrower:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        started.append(proc)
        return Borrower(proc.pid, psutil.Process(proc.pid).create_time(), stage, command)

    yield make
    for proc in started:
        proc.kill()
        proc.wait()


def _dead(stage: str) -> Borrower:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(proc.pid).create_time()
    proc.wait()  # kill -9 or a normal end: gone either way
    return Borrower(proc.pid, created, stage, "canary")


def _up(stage: str) -> MeshState:
    return MeshState(consul_managed=True, stage=stage, services=["service-a"])


def test_a_borrower_is_its_pid_and_start_time(others):
    me = Borrower.me("splitter")
    assert me.alive() and me.pid == os.getpid()
    assert not _dead("splitter").alive()
    other = others("splitter")
    recycled = Borrower(other.pid, other.create_time - 5.0, "splitter")  # same pid, another process
    assert other.alive() and not recycled.alive()


def test_the_first_borrower_records_what_it_found():
    nothing, at_basic = MeshState(), _up("basic")
    assert join(nothing, Borrower.me("splitter")) is False  # bring the stage up
    assert nothing.loan is not None and nothing.loan.found is None
    assert join(at_basic, Borrower.me("splitter")) is False
    assert at_basic.loan is not None and at_basic.loan.found == "basic"
    at_splitter = _up("splitter")
    assert join(at_splitter, Borrower.me("splitter")) is True  # used as it is
    assert at_splitter.loan is not None and at_splitter.loan.found == "splitter"


def test_a_second_borrower_of_the_same_stage_joins_and_only_the_last_puts_back(others):
    state = MeshState()
    first = others("splitter")
    join(state, first)
    state.stage, state.consul_managed = "splitter", True  # the first one brought it up
    me = Borrower.me("splitter")
    assert join(state, me) is True
    assert [b.pid for b in state.loan.borrowers] == [first.pid, me.pid]
    # The first one ends while I still run: it leaves the mesh alone.
    back = leave(state, first)
    assert back.others and [b.pid for b in back.others] == [me.pid] and not back.restore
    # I am last: I put back what the FIRST one found (nothing: take it down).
    back = leave(state, me)
    assert back.restore and back.found is None and not back.taken_away
    assert any(b.same(me) for b in state.loan.borrowers)  # kept until the mesh is put back
    returned(state)
    assert state.loan is None


def test_a_borrower_of_another_stage_is_refused_while_one_is_live(others):
    state = _up("splitter")
    first = others("splitter")
    join(state, first)
    with pytest.raises(LoadgenError) as info:
        join(state, Borrower.me("basic"))
    assert info.value.code == ExitCode.ENVIRONMENT
    assert info.value.message == (f"the local mesh is in use by loadgen pid {first.pid} (canary) at stage splitter; "
                                  "wait for it or use --target")
    assert [b.pid for b in state.loan.borrowers] == [first.pid]


def test_a_dead_borrower_is_ignored_and_its_duty_inherited():
    # A canary that found nothing, brought splitter up and was killed with -9.
    state = MeshState()
    join(state, _dead("splitter"))
    state.stage, state.consul_managed = "splitter", True
    me = Borrower.me("basic")
    assert join(state, me) is False  # no live borrower: I may switch the stage
    assert [b.pid for b in state.loan.borrowers] == [me.pid]
    back = leave(state, me)
    assert back.restore and back.found is None  # what the dead one found: take the mesh down


def test_a_mesh_taken_away_meanwhile_is_left_alone():
    me = Borrower.me("splitter")
    assert leave(MeshState(), me).taken_away  # `down --force` removed the state
    state = _up("splitter")
    join(state, me)
    state.loan.borrowers = []
    assert leave(state, me).taken_away


def test_a_users_up_decides_what_stays_after_the_borrowers(others):
    state = _up("splitter")
    join(state, others("splitter"))
    user_took_over(state, "splitter")
    assert state.loan is not None and state.loan.found == "splitter"  # stays up after them
    dead = MeshState()
    join(dead, _dead("splitter"))
    user_took_over(dead, "basic")
    assert dead.loan is None  # nobody left: the mesh is the user's


def test_the_loan_is_saved_with_the_state(tmp_path, others):
    run = RunDir(tmp_path)
    state = _up("splitter")
    first = others("splitter")
    join(state, first)
    run.save(state)
    loaded = run.load().loan
    assert loaded is not None and loaded.found == "splitter"
    assert [(b.pid, b.stage, b.command) for b in loaded.borrowers] == [(first.pid, "splitter", "canary")]
    assert loaded.live()[0].same(first)


# -- the lock ------------------------------------------------------------------------------------
def test_the_lock_is_reentrant_for_one_run_dir_and_names_its_holder(tmp_path):
    run = RunDir(tmp_path)
    with run.locked(), run.locked():  # a borrow holds it around the `up` it calls
        with pytest.raises(LoadgenError) as info, RunDir(tmp_path).locked():
            pass
        assert f"(pid {os.getpid()})" in info.value.message
    with RunDir(tmp_path).locked():  # released by the outer one
        pass


def test_a_borrower_waits_for_the_lock(tmp_path):
    holder = RunDir(tmp_path)
    said: list[str] = []
    released = threading.Event()

    def hold() -> None:
        with holder.locked():
            time.sleep(0.5)
            released.set()

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.1)
    with RunDir(tmp_path).locked(wait=30, on_wait=said.append):
        assert released.is_set()
    thread.join()
    assert said and said[0].startswith("waiting for another loadgen command")


# -- borrowed_stage on a stand-in runtime ----------------------------------------------------------
class FakeRuntime:
    """Records what borrowed_stage asks of a runtime; `up` writes a state as the real one does."""

    name = "process"

    def __init__(self, run: RunDir, fail_in_up: BaseException | None = None) -> None:
        self.run = run
        self.calls: list[str] = []
        self.fail_in_up = fail_in_up

    def up(self, stage, progress=None):
        with self.run.locked():
            self.calls.append(f"up {stage.name}")
            state = self.run.load()
            state.consul_managed, state.stage = True, stage.name
            self.run.save(state)
            if self.fail_in_up is not None:
                raise self.fail_in_up
            return self.current_target(stage)

    def down(self, progress=None):
        with self.run.locked():
            self.calls.append("down")
            self.run.state_file.unlink(missing_ok=True)
            return []

    def status(self):
        return MeshStatus(self.run.load().stage, "process", None, True, [], [])

    def current_target(self, stage):
        return Target("http://127.0.0.1:3000/hello_a", "http://127.0.0.1:8500", stage=stage.name)


def test_the_first_to_end_leaves_the_mesh_to_the_one_still_using_it(tmp_path, others, monkeypatch):
    rt = FakeRuntime(RunDir(tmp_path))
    a, b, c = others("splitter", "canary"), others("splitter", "canary"), others("basic", "run")
    said: list[str] = []
    monkeypatch.setattr(Borrower, "me", classmethod(lambda cls, stage: a))
    with borrowed_stage("splitter", said.append, rt):  # A brings it up from nothing
        monkeypatch.setattr(Borrower, "me", classmethod(lambda cls, stage: b))
        with borrowed_stage("splitter", said.append, rt):  # B joins
            assert rt.calls == ["up splitter"]
            monkeypatch.setattr(Borrower, "me", classmethod(lambda cls, stage: dataclasses.replace(c, stage=stage)))
            with pytest.raises(LoadgenError) as info, borrowed_stage("basic", said.append, rt):
                pass  # a third command wanting another stage is refused, and changes nothing
            assert info.value.code == ExitCode.ENVIRONMENT and rt.calls == ["up splitter"]
            assert [x.pid for x in rt.run.load().loan.borrowers] == [a.pid, b.pid]
            monkeypatch.setattr(Borrower, "me", classmethod(lambda cls, stage: b))
        # B ended first (nested blocks): the one still running, A, keeps the mesh and takes it
        # down at its end; the integration test has the order (A ends first).
        assert rt.calls == ["up splitter"] and rt.run.load().stage == "splitter"
        assert any("still used by" in m for m in said)
        monkeypatch.setattr(Borrower, "me", classmethod(lambda cls, stage: a))
    assert rt.calls == ["up splitter", "down"]
    assert not rt.run.state_file.exists()


def test_a_stage_found_is_put_back_by_the_last_borrower(tmp_path):
    rt = FakeRuntime(RunDir(tmp_path))
    rt.run.save(_up("basic"))
    with borrowed_stage("splitter", lambda _m: None, rt):
        assert rt.run.load().loan.found == "basic"
    assert rt.calls == ["up splitter", "up basic"]
    assert rt.run.load().stage == "basic" and rt.run.load().loan is None


@pytest.mark.parametrize("interruption", [KeyboardInterrupt(), Terminated()])
def test_an_interrupted_bring_up_leaves_no_mesh(tmp_path, interruption):
    rt = FakeRuntime(RunDir(tmp_path), fail_in_up=interruption)
    with pytest.raises(KeyboardInterrupt), borrowed_stage("splitter", lambda _m: None, rt):
        pass
    assert rt.calls == ["up splitter", "down"]
    assert not rt.run.state_file.exists()


# -- a moment Ctrl-C must not cut ------------------------------------------------------------------
@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_in_a_held_moment_is_acted_on_after_it(signum, raised):
    previous = signal.getsignal(signal.SIGTERM)
    previous_int = signal.getsignal(signal.SIGINT)
    install()  # as the CLI does: SIGTERM raises Terminated
    # Ctrl-C raises KeyboardInterrupt, as in any Python program started from a terminal (a
    # shell running pytest in the background would otherwise have it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    finished = False
    try:
        with pytest.raises(raised), signals_held():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            os.kill(os.getpid(), signum)
            time.sleep(0.1)
            finished = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    assert finished
    # A part started in the held moment still stops on SIGTERM (it did not inherit a blocked mask).
    child.terminate()
    assert child.wait(timeout=5) == -signal.SIGTERM
