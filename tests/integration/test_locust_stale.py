"""The Locust gate's final verdict is `loadgen canary`'s (canary/final.py): a stale client sidecar
(Consul and Envoy disagree) makes the headless gate exit 1, whatever the traffic did."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadgen.mesh import toolchain
from tests.integration.test_locust import locust, locust_sees_the_mesh_of
from tests.integration.test_real_configs import (
    CONSUL,
    REFERENCE,
    FreezableRelay,
    _port_open,
    envoy_weights,
    put,
    splitter,
    wait_envoy,
)


@pytest.fixture(scope="module")
def own_process_mesh(loadgen):
    """A process mesh of this module's own: the test replaces service-a's sidecar, so the mesh
    is taken down afterwards rather than handed on."""
    loadgen("down", "-q")
    loadgen.extra_env["LOADGEN_RUNTIME"] = "process"
    loadgen("up", "--stage", "splitter", "-q")
    with locust_sees_the_mesh_of(loadgen):
        yield loadgen
    loadgen("down", "-q", check=False)
    loadgen.extra_env.pop("LOADGEN_RUNTIME", None)


@contextlib.contextmanager
def stale_client_sidecar(loadgen, log_path: Path) -> Iterator[None]:
    """service-a's sidecar restarted with its xDS stream through a relay that is then frozen, and
    the splitter changed to 50/50 in Consul: the sidecar keeps routing 85/15."""
    original = loadgen.state()["processes"]["service-a-sidecar"]["pid"]
    consul_bin, envoy_bin = toolchain.find("consul").path, toolchain.find("envoy").path
    with FreezableRelay(8502) as relay, log_path.open("w") as log:
        subprocess.run(["kill", str(original)], check=True)
        deadline = time.monotonic() + 15
        while _port_open(19000):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        sidecar = subprocess.Popen([str(consul_bin), "connect", "envoy", "-sidecar-for", "service-a",
                                    "-admin-bind", "127.0.0.1:19000", "-http-addr", CONSUL,
                                    "-grpc-addr", f"127.0.0.1:{relay.port}", "-envoy-binary", str(envoy_bin)],
                                   stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_envoy({"v1": 8500, "v2": 1500})
            relay.frozen.set()
            put(splitter((50, "v1"), (50, "v2")))
            time.sleep(2)  # far longer than an update takes through a live stream (~100 ms)
            assert envoy_weights() == {"v1": 8500, "v2": 1500}, "the relay did not hold the update back"
            yield
        finally:
            relay.frozen.clear()
            put(REFERENCE)
            with contextlib.suppress(AssertionError):
                wait_envoy({"v1": 8500, "v2": 1500})
            sidecar.send_signal(signal.SIGTERM)
            sidecar.wait(10)


def test_a_stale_client_sidecar_fails_the_headless_locust_gate(own_process_mesh, tmp_path):
    out_json, out_xml = tmp_path / "l.json", tmp_path / "l.xml"
    with stale_client_sidecar(own_process_mesh, tmp_path / "sidecar.log"):
        proc = locust("--headless", "-u", "10", "-r", "10", "-t", "60s", "--expect", "85/15", "--stop-on-verdict",
                      "--canary-json", str(out_json), "--canary-junit", str(out_xml), "--only-summary")
    assert proc.returncode == 1, proc.stderr[-2000:]
    result = json.loads(out_json.read_text())
    stale = result["three_way"]["stale"]
    assert stale and "127.0.0.1:19000" in stale
    assert "v1 85 % / v2 15 %" in stale and "v1 50 % / v2 50 %" in stale
    # The traffic followed the sidecar, so on its own it passed; the final verdict is FAIL.
    assert result["verdict"] == "FAIL" and "the traffic alone: PASS" in result["reason"]
    assert result["exit_code"] == 1 and "loadgen canary: FAIL -- stale proxy" in proc.stderr
    assert 'name="client sidecar routes as Consul compiled"' in out_xml.read_text()
