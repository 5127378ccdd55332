"""The run directory's bookkeeping and what tells a mesh is (half) up, without a mesh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from loadgen.errors import ExitCode, LoadgenError
from loadgen.interrupts import Terminated, install
from loadgen.mesh.liveness import active_root, trusted_ca_bundles, trusts_root
from loadgen.mesh.runtime.base import ComponentStatus, MeshStatus, half_up_problems
from loadgen.mesh.runtime.process import signals_held
from loadgen.mesh.stages import load_stages
from loadgen.mesh.state import RunDir

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


# -- a moment Ctrl-C must not cut ------------------------------------------------------------------
@pytest.mark.parametrize(("signum", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)])
def test_a_signal_in_a_held_moment_is_acted_on_after_it(signum, raised):
    previous = signal.getsignal(signal.SIGTERM)
    install()  # as the CLI does: SIGTERM raises Terminated
    finished = False
    try:
        with pytest.raises(raised), signals_held():
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            os.kill(os.getpid(), signum)
            time.sleep(0.1)
            finished = True
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert finished
    # A part started in the held moment still stops on SIGTERM (it did not inherit a blocked mask).
    child.terminate()
    assert child.wait(timeout=5) == -signal.SIGTERM
