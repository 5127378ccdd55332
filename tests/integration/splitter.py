"""The reference splitter written straight to Consul, and a wait until service-a's sidecar routes it:
what tests do to change the split under a running canary (another operator's write)."""

from __future__ import annotations

import time

import httpx

CONSUL = "http://127.0.0.1:8500"


def put_splitter(weights: tuple[int, int]) -> None:
    entry = {"Kind": "service-splitter", "Name": "service-b",
             "Splits": [{"Weight": weights[0], "ServiceSubset": "v1"}, {"Weight": weights[1], "ServiceSubset": "v2"}]}
    assert httpx.put(f"{CONSUL}/v1/config", json=entry, timeout=5).json() is True


def wait_envoy_split(expected: dict[str, int], admin_port: int = 19000) -> None:
    """Until the client sidecar's weighted clusters for service-b are ``expected`` (out of 10000)."""
    from loadgen.mesh import envoy_admin

    deadline = time.monotonic() + 30
    while envoy_admin.weighted_split(envoy_admin.config_dump(admin_port), "service-b") != expected:
        assert time.monotonic() < deadline, "Envoy did not get the new weights"
        time.sleep(0.1)
