"""The real parts are found, at the pinned versions, and Nomad's agent starts on loopback."""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest

from loadgen.mesh import toolchain
from tests.integration.parts import missing, required


def test_doctor_finds_every_part(loadgen):
    report = json.loads(loadgen("doctor", "--json").stdout)
    parts = {p["part"]: p for p in report["parts"]}
    assert report["ok"]
    assert parts["consul"]["compatible"] and parts["consul"]["version"].startswith("1.14.")
    assert parts["envoy"]["compatible"] and parts["envoy"]["version"].startswith("1.36.")
    if required():
        assert parts["nomad"]["compatible"], parts["nomad"]


@pytest.fixture(scope="module")
def nomad_bin():
    found = toolchain.find("nomad")
    if not found.ok:
        missing(f"nomad not built (loadgen toolchain install): {found.problems}")
    return found.path


def test_nomad_version(nomad_bin):
    out = subprocess.run([str(nomad_bin), "version"], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.startswith(f"Nomad v{toolchain.NOMAD_VERSION}")


def test_nomad_dev_agent_starts_on_loopback(nomad_bin, tmp_path):
    log = (tmp_path / "nomad.log").open("wb")
    agent = subprocess.Popen(
        [str(nomad_bin), "agent", "-dev", "-bind", "127.0.0.1", "-network-interface", "lo",
         "-data-dir", str(tmp_path / "data")],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        leader = ""
        while time.monotonic() < deadline and not leader:
            assert agent.poll() is None, (tmp_path / "nomad.log").read_text()[-2000:]
            try:
                leader = httpx.get("http://127.0.0.1:4646/v1/status/leader", timeout=1.0).json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
        assert leader.startswith("127.0.0.1:"), leader
        me = httpx.get("http://127.0.0.1:4646/v1/agent/self", timeout=5.0).json()
        assert me["config"]["BindAddr"] == "127.0.0.1"
        nodes = []
        while time.monotonic() < deadline and not nodes:
            nodes = httpx.get("http://127.0.0.1:4646/v1/nodes", timeout=5.0).json()
            time.sleep(0.5)
        assert nodes and nodes[0]["Address"] == "127.0.0.1", nodes
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        log.close()
