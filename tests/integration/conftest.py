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


# The runtimes the stage, canary and run tests are repeated on. The process runtime always
# runs; docker and nomad need their engine/agent prerequisites (a failure in CI, a skip elsewhere).
MESH_RUNTIMES = ("process", "docker", "nomad")


@pytest.fixture(scope="module", params=MESH_RUNTIMES)
def mesh_runtime(request, loadgen):
    """Runs the module's tests on one runtime: nothing runs before, `up` defaults to it, `down` after."""
    from tests.integration.runtimes import PARTS

    parts = PARTS[request.param]()
    parts.require()
    loadgen("down", "-q")
    loadgen.extra_env["LOADGEN_RUNTIME"] = request.param
    yield parts
    loadgen("down", "-q", check=False)
    loadgen.extra_env.pop("LOADGEN_RUNTIME", None)
