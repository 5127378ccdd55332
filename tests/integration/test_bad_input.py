"""Bad input and a broken environment: one clear line, a distinct exit code, nothing left running."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import httpx
import pytest


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _nothing_running(loadgen) -> None:
    state = loadgen.state()
    assert not state.get("processes"), state
    with pytest.raises(httpx.ConnectError):
        httpx.get("http://127.0.0.1:8500/v1/status/leader", timeout=1.0)


@pytest.fixture(autouse=True)
def mesh_down(loadgen):
    loadgen("down", "-q")
    yield
    loadgen("down", "-q")


def test_port_taken(loadgen):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 3001))
        sock.listen()
        proc = loadgen("up", "--stage", "basic", check=False)
    assert proc.returncode == 5
    line = _one_line(proc.stderr)
    assert "port 3001 (for service-b-1) is already in use" in line
    _nothing_running(loadgen)


def test_consul_unreachable(loadgen):
    proc = loadgen("up", "--stage", "basic", "--consul", "127.0.0.1:1", check=False)
    assert proc.returncode == 4
    assert "Consul at http://127.0.0.1:1 is unreachable" in _one_line(proc.stderr)
    _nothing_running(loadgen)


def test_missing_consul_binary(loadgen, tmp_path: Path):
    # No consul anywhere: not in LOADGEN_CONSUL, not on PATH, not in the (empty) cache.
    env = loadgen.env(LOADGEN_CONSUL=str(tmp_path / "no-such-consul"), LOADGEN_CACHE=str(tmp_path / "cache"),
                      PATH=os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]))
    proc = loadgen("up", "--stage", "basic", env=env, check=False)
    assert proc.returncode == 5
    line = _one_line(proc.stderr)
    assert "consul 1.14.8.x is missing" in line or "consul 1.14" in line
    assert "loadgen toolchain install" in line
    _nothing_running(loadgen)
    doctor = loadgen("doctor", env=env, check=False)
    assert doctor.returncode == 5
