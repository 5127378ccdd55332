"""loadgen's own stages (header-route, nested-splitter) on real Consul + Envoy, process runtime:
each comes up live, Consul compiles the discovery chain they mean, traffic follows it, and
`loadgen down` removes every config entry they wrote.

The mesh uses a Consul agent loadgen did not start (`--consul`), so that after `down` the
agent is still there to be asked whether any entry was left behind (a dev agent that
loadgen started is gone with everything in it). Its ports are apart from the dev agent's and
test_external_consul's, grpc_tls off, so a stray agent on either cannot stop it starting.
One `up` per stage: header-route first, then a switch in place to nested-splitter, whose
`down` is the hard case for the removal order (service-b's splitter points at
service-b-canary, which needs its http service-defaults).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.external_consul import consul_agent

PORTS = {"http": 28500, "grpc": 28502, "grpc_tls": -1, "dns": 28600, "serf_lan": 28301, "serf_wan": 28302,
         "server": 28300}
CONSUL = "127.0.0.1:28500"
HTTP = f"http://{CONSUL}"
SERVICE_A = "http://127.0.0.1:3000/hello_a"
V1 = "resolver:v1.service-b.default.default.dc1"
V2 = "resolver:v2.service-b.default.default.dc1"
KINDS = ("service-defaults", "service-router", "service-splitter", "service-resolver", "service-intentions")


@pytest.fixture(scope="module")
def mesh(loadgen, tmp_path_factory) -> Iterator[Any]:
    loadgen("down", "-q")
    loadgen.extra_env["LOADGEN_RUNTIME"] = "process"
    try:
        with consul_agent(tmp_path_factory.mktemp("consul"), PORTS):
            yield loadgen
            loadgen("down", "-q", check=False)
    finally:
        loadgen.extra_env.pop("LOADGEN_RUNTIME", None)


def _chain() -> dict[str, Any]:
    """What Consul compiled for service-a's upstream (service-a's own virtual service)."""
    return httpx.get(f"{HTTP}/v1/discovery-chain/service-a", timeout=5.0).json()["Chain"]


def _splitters(chain: dict[str, Any]) -> dict[str, list[tuple[float, str]]]:
    return {name: [(s["Weight"], s["NextNode"]) for s in node["Splits"]]
            for name, node in chain["Nodes"].items() if node["Type"] == "splitter"}


def _routes(chain: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    router = chain["Nodes"][chain["StartNode"]]
    assert router["Type"] == "router", chain["StartNode"]
    return [(r["Definition"]["Match"]["HTTP"], r["NextNode"]) for r in router["Routes"]]


def _app_ids(n: int, headers: dict[str, str] | None = None) -> Counter[str]:
    """APP_IDs of ``n`` GET /hello_a (each on a fresh connection, as the canary's are); all must be 200."""
    ids: Counter[str] = Counter()
    with httpx.Client(timeout=5.0) as client:
        for _ in range(n):
            r = client.get(SERVICE_A, headers={"Connection": "close", **(headers or {})})
            assert r.status_code == 200, r.text
            ids[r.headers["X-App-Id"]] += 1
    return ids


def _entries() -> set[tuple[str, str]]:
    return {(kind, e["Name"]) for kind in KINDS
            for e in httpx.get(f"{HTTP}/v1/config/{kind}", timeout=5.0).json()}


def test_header_route_sends_the_canary_header_to_v2_through_service_a(mesh):
    mesh("up", "--stage", "header-route", "--consul", CONSUL, "-q")
    chain = _chain()
    # The header route comes first; plain /hello_b goes on to the 85/15 splitter.
    assert _routes(chain) == [
        ({"PathPrefix": "/hello_b", "Header": [{"Name": "x-canary", "Exact": "1"}]}, V2),
        ({"PathPrefix": "/hello_b"}, "splitter:service-b.default.default"),
        ({"PathPrefix": "/"}, "resolver:service-a.default.default.dc1"),  # Consul's default route
    ]
    assert _splitters(chain) == {"splitter:service-b.default.default": [(85, V1), (15, V2)]}
    # The client sends x-canary to service-a; only service-a's propagation puts it on /hello_b.
    assert _app_ids(40, {"x-canary": "1"}) == Counter({"2": 40})
    # Without it the splitter decides: at 15 % v2, 100 requests miss APP_ID 2 with p = 9e-8.
    assert set(_app_ids(100)) == {"1", "2"}


def test_nested_splitter_compiles_to_75_25(mesh):
    mesh("up", "--stage", "nested-splitter", "-q")  # switches in place from header-route
    chain = _chain()
    # nested-splitter's router replaced header-route's: no header route is left.
    assert _routes(chain) == [({"PathPrefix": "/hello_b"}, "splitter:service-b.default.default"),
                              ({"PathPrefix": "/"}, "resolver:service-a.default.default.dc1")]
    # Consul 1.14.8 flattens the nested splitter into service-b's: 50 % v1 direct, and
    # service-b-canary's 50/50 of the other half as 25 % v1 + 25 % v2 -- v1 75 / v2 25 in effect.
    splitters = _splitters(chain)
    assert splitters == {"splitter:service-b.default.default": [(50, V1), (25, V1), (25, V2)]}, splitters
    ids = _app_ids(200)
    # 75 % of 200 has a standard deviation of 3.1 points; 58-92 % is more than five of them.
    assert set(ids) == {"1", "2"} and 0.58 < ids["1"] / 200 < 0.92, ids


def test_down_removes_every_entry_the_stage_wrote(mesh):
    written = {(e["kind"], e["name"]) for e in mesh.json("status")["config_entries"]}
    assert written == {("service-defaults", "service-a"), ("service-defaults", "service-b"),
                       ("service-defaults", "service-b-canary"), ("service-router", "service-a"),
                       ("service-resolver", "service-b"), ("service-splitter", "service-b"),
                       ("service-splitter", "service-b-canary")}
    assert _entries() == written  # what loadgen recorded is what Consul holds
    proc = mesh("down")
    assert "could not remove" not in proc.stdout + proc.stderr, proc.stderr
    assert _entries() == set()
    assert mesh.state() == {}
