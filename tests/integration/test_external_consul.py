"""`--consul ADDR`: loadgen uses an agent it did not start, and leaves it as it found it."""

from __future__ import annotations

import httpx

from tests.integration.external_consul import consul_agent

# Ports apart from the dev agent's (8500...), so this agent can never be mistaken for one.
PORTS = {"http": 18500, "grpc": 18502, "dns": 18600, "serf_lan": 18301, "serf_wan": 18302, "server": 18300}
HTTP = "http://127.0.0.1:18500"


def _services() -> set[str]:
    return set(httpx.get(f"{HTTP}/v1/agent/services", timeout=5.0).json())


def _entries(kind: str) -> list:
    return httpx.get(f"{HTTP}/v1/config/{kind}", timeout=5.0).json()


def test_down_removes_registrations_and_entries_but_keeps_the_agent(loadgen, hello, tmp_path):
    loadgen("down", "-q")
    with consul_agent(tmp_path, PORTS):
        loadgen("up", "--stage", "splitter", "--consul", "127.0.0.1:18500")
        assert _services() >= {"service-a", "service-b-1", "service-b-2", "service-b-1-sidecar-proxy"}
        assert [e["Name"] for e in _entries("service-splitter")] == ["service-b"]
        assert {r.status_code for r in hello(10)} == {200}
        status = loadgen.json("status")
        assert status["consul"] == HTTP and "consul" not in {c["name"] for c in status["components"]}

        loadgen("down")
        assert _services() == set()
        for kind in ("service-defaults", "service-router", "service-resolver", "service-splitter"):
            assert _entries(kind) == [], kind
        # The agent is the user's: still running and answering.
        assert httpx.get(f"{HTTP}/v1/status/leader", timeout=5.0).json()


def test_consul_without_connect_is_one_clear_line(loadgen, tmp_path):
    loadgen("down", "-q")
    with consul_agent(tmp_path, PORTS, connect=False):
        proc = loadgen("up", "--stage", "basic", "--consul", "127.0.0.1:18500", check=False)
        assert proc.returncode == 4
        assert proc.stderr.strip().splitlines()[-1] == (
            "loadgen: error: Consul at http://127.0.0.1:18500 has Connect disabled; enable it (connect { enabled = "
            "true })"
        )
        assert "Traceback" not in proc.stderr
        # The failed first `up` took down what it had started.
        assert loadgen.state() == {}
        assert _services() == set()
