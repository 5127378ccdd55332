"""Integration tests run the real `loadgen` command against a real Consul agent and real
Envoy sidecars, which it starts itself. They share fixed loopback ports (8500, 3000-3002,
9000, 19000-19002), so they run one after another, never in parallel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from loadgen.mesh import toolchain
from tests.integration.parts import missing as missing_part

pytestmark = pytest.mark.integration


@dataclass
class Loadgen:
    """Runs `loadgen` as users do, with a private run directory."""

    run_dir: Path
    extra_env: dict[str, str]

    def env(self, **overrides: str) -> dict[str, str]:
        return {**os.environ, "LOADGEN_RUN_DIR": str(self.run_dir), **self.extra_env, **overrides}

    def __call__(self, *args: str, timeout: float = 300, env: dict[str, str] | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "loadgen.cli", *args], capture_output=True, text=True,
                              env=env or self.env(), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"loadgen {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str, **kwargs) -> dict:
        return json.loads(self(*args, "--json", **kwargs).stdout)

    def state(self) -> dict:
        path = self.run_dir / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}


def _require_parts() -> None:
    """In CI a missing part fails the run instead of skipping it (tests/integration/parts.py)."""
    missing = [n for n in ("consul", "envoy") if not toolchain.find(n).ok]
    if missing:
        missing_part(f"missing real parts: {', '.join(missing)} (run scripts/bootstrap.sh)")


@pytest.fixture(scope="session")
def loadgen(tmp_path_factory) -> Loadgen:
    _require_parts()
    lg = Loadgen(run_dir=tmp_path_factory.mktemp("run"), extra_env={})
    yield lg
    lg("down", "-q", check=False)


@pytest.fixture
def hello():
    def get(n: int = 1) -> list[httpx.Response]:
        out = []
        with httpx.Client(timeout=5.0) as client:
            for _ in range(n):
                out.append(client.get("http://127.0.0.1:3000/hello_a", headers={"Connection": "close"}))
        return out

    return get


# The runtimes the per-runtime tests are repeated on. The process runtime always runs; docker
# and nomad need their engine/agent prerequisites (a failure in CI, a skip elsewhere).
MESH_RUNTIMES = ("process", "docker", "nomad")
RUNTIME_ORDER = {name: i for i, name in enumerate(MESH_RUNTIMES)}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "per_runtime: repeat this test on every runtime of `mesh_runtime` (the others run on process only)")
    config.addinivalue_line(
        "markers", "runtime(name): the module's tests need this runtime's mesh (groups them with its other tests)")


def _runtime_of(item) -> str:
    """Which runtime's mesh a test uses: its `mesh_runtime`/`runtime` parameter, or its module's mark."""
    callspec = getattr(item, "callspec", None)
    for name in ("mesh_runtime", "runtime"):
        if callspec is not None and name in callspec.params:
            return callspec.params[name]
    mark = item.get_closest_marker("runtime")
    return mark.args[0] if mark else "process"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Only what differs per runtime runs on docker and nomad, and each runtime is brought up once.

    A test of a `mesh_runtime` module runs on docker and nomad only when marked `per_runtime`;
    the rest run on process (the code they exercise is the same on every runtime). Then the items
    are grouped by runtime (process, docker, nomad), keeping file order inside each group, with
    the modules that start from nothing (marked `runtime(...)`, no shared mesh) first in their
    group: the shared mesh of a runtime then stays up from its first shared test to its last.
    """
    kept, dropped = [], []
    for item in items:
        runtime = _runtime_of(item)
        uses_shared = "mesh_runtime" in getattr(item, "fixturenames", ())
        if uses_shared and runtime != "process" and item.get_closest_marker("per_runtime") is None:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    order = {id(item): i for i, item in enumerate(kept)}

    def key(item):
        runtime = _runtime_of(item)
        starts_from_nothing = runtime != "process" and item.get_closest_marker("runtime") is not None
        return (RUNTIME_ORDER.get(runtime, 0), 0 if starts_from_nothing else 1, order[id(item)])

    items[:] = sorted(kept, key=key) if any(_runtime_of(i) != "process" for i in kept) else kept


class SharedMesh:
    """The mesh the tests share: brought up once per runtime and switched between stages with
    `up --stage`, instead of a fresh bring-up per module.

    `use(stage, runtime)` reuses the mesh when it is exactly as the last user handed it back
    (same runtime, same state.json: nobody took it down or changed it since), and otherwise
    takes down whatever is there and brings the stage up from nothing. `hand_back()` records how
    it was left. A test that needs a fresh machine calls `loadgen("down", "-q")` itself.
    """

    def __init__(self, loadgen: Loadgen) -> None:
        self.loadgen = loadgen
        self.left: tuple[str, dict] | None = None

    def use(self, stage: str = "splitter", runtime: str = "process") -> Loadgen:
        lg = self.loadgen
        lg.extra_env["LOADGEN_RUNTIME"] = runtime
        if self.left != (runtime, lg.state()):
            lg("down", "-q")
        lg("up", "--stage", stage, "-q")
        return lg

    def hand_back(self) -> None:
        runtime = self.loadgen.extra_env.pop("LOADGEN_RUNTIME", "process")
        self.left = (runtime, self.loadgen.state())


@pytest.fixture(scope="session")
def shared_mesh(loadgen) -> SharedMesh:
    """The session's one mesh (see SharedMesh); taken down when the session ends (`loadgen`)."""
    return SharedMesh(loadgen)


@pytest.fixture(scope="module")
def splitter_mesh(shared_mesh) -> Loadgen:
    """The shared process mesh at stage splitter, for a module that only needs it up."""
    lg = shared_mesh.use("splitter")
    yield lg
    shared_mesh.hand_back()


@pytest.fixture(scope="module")
def runtime(request, shared_mesh) -> str:
    """The shared mesh at stage splitter on the runtime a module names, for a module whose tests
    run on given runtimes only: `pytestmark = pytest.mark.parametrize("runtime", ["nomad"],
    indirect=True, scope="module")`. Grouped with that runtime's other tests, not brought up anew."""
    from tests.integration.runtimes import PARTS

    PARTS[request.param]().require()
    shared_mesh.use("splitter", request.param)
    yield request.param
    shared_mesh.hand_back()


@pytest.fixture(scope="module", params=MESH_RUNTIMES)
def mesh_runtime(request, shared_mesh):
    """Runs the module's tests on one runtime (only `per_runtime` tests on docker and nomad):
    `up` defaults to it, and the runtime's shared mesh is reused from the module before when
    that left it up (the items are grouped by runtime, see pytest_collection_modifyitems)."""
    from tests.integration.runtimes import PARTS

    parts = PARTS[request.param]()
    parts.require()
    lg = shared_mesh.loadgen
    if shared_mesh.left is None or shared_mesh.left != (request.param, lg.state()):
        lg("down", "-q")
    lg.extra_env["LOADGEN_RUNTIME"] = request.param
    yield parts
    shared_mesh.hand_back()
