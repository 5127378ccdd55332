"""Each stage of the reference setup comes up on real Consul + Envoy and behaves as the seed says,
on every runtime (process, docker, nomad: the `mesh_runtime` fixture repeats the module, and every
test here is `per_runtime`: the stage walk is what each runtime must get right on its own).

The tests run in file order on one mesh: basic -> intentions -> basic (deny removed) ->
l7-router -> splitter -> faults -> down, exercising `up` switching stages in place.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import psutil
import pytest

from loadgen.mesh import envoy_admin

pytestmark = [pytest.mark.usefixtures("mesh_runtime"), pytest.mark.per_runtime]

SERVICE_A_ADMIN = 19000
SERVICE_B_ADMINS = (19001, 19002)
INSTANCES = {"service-a", "service-b-1", "service-b-2"}


def _app_ids(responses: list[httpx.Response]) -> Counter[str]:
    return Counter(r.headers["X-App-Id"] for r in responses if r.status_code == 200)


def _pids(loadgen) -> dict[str, int]:
    return {name: rec["pid"] for name, rec in loadgen.state().get("processes", {}).items()}


def _identities(loadgen) -> dict[str, tuple]:
    """What tells a restarted part from the same one: its pid, or (nomad) its allocation's log path."""
    return {c["name"]: (c["pid"], c["log"]) for c in loadgen.json("status")["components"]}


def test_basic_answers_from_both_instances(loadgen, hello, mesh_runtime):
    target = loadgen.json("up", "--stage", "basic")
    assert target["stage"] == "basic"
    assert loadgen.json("status")["runtime"] == mesh_runtime.name
    assert target["service_a_url"] == "http://127.0.0.1:3000/hello_a"
    responses = hello(60)
    assert [r.status_code for r in responses] == [200] * 60
    for r in responses:
        body = r.json()
        assert body["app_id"] in ("1", "2")
        assert body["version"] == {"1": "v1", "2": "v2"}[body["app_id"]]
        assert r.headers["X-App-Id"] == body["app_id"]
    assert set(_app_ids(responses)) == {"1", "2"}


def test_up_twice_is_idempotent(loadgen):
    before = _identities(loadgen)
    wanted = INSTANCES | {f"{i}-sidecar" for i in INSTANCES} | {"consul"}
    assert set(before) >= wanted and set(before) - wanted <= {"nomad"}
    proc = loadgen("up", "--stage", "basic")
    assert _identities(loadgen) == before  # nothing was restarted or replaced
    assert "started" not in proc.stderr
    status = loadgen.json("status")
    assert status["up"] and status["stage"] == "basic"
    assert all(c["running"] for c in status["components"])


def test_intentions_deny_then_allow(loadgen, hello):
    loadgen("up", "--stage", "intentions")
    responses = hello(20)
    for r in responses:
        assert r.status_code in (502, 503), r.text
        body = r.json()  # a JSON reason from service-a, never HTML
        assert body["error"] and body["upstream_url"] == "http://127.0.0.1:9000/hello_b"
    for port in SERVICE_B_ADMINS:
        assert not envoy_admin.rbac_allows(envoy_admin.config_dump(port), "service-a")
    # Removing the deny (back to basic) lets traffic through again.
    loadgen("up", "--stage", "basic")
    for port in SERVICE_B_ADMINS:
        assert envoy_admin.rbac_allows(envoy_admin.config_dump(port), "service-a")
    assert [r.status_code for r in hello(20)] == [200] * 20


def test_l7_router_routes_hello_b_to_service_b(loadgen, hello):
    loadgen("up", "--stage", "l7-router")
    routes = envoy_admin.routes(envoy_admin.config_dump(SERVICE_A_ADMIN))
    hello_b = [r for r in routes if r.prefix == "/hello_b"]
    assert hello_b, routes
    assert envoy_admin.cluster_service(hello_b[0].cluster)[1] == "service-b"
    responses = hello(40)
    assert [r.status_code for r in responses] == [200] * 40
    assert set(_app_ids(responses)) == {"1", "2"}


def test_splitter_weights_reach_envoy_and_traffic(loadgen, hello):
    loadgen("up", "--stage", "splitter")
    split = envoy_admin.weighted_split(envoy_admin.config_dump(SERVICE_A_ADMIN), "service-b")
    assert split == {"v1": 8500, "v2": 1500}
    responses = hello(200)
    assert [r.status_code for r in responses] == [200] * 200
    ids = _app_ids(responses)
    assert set(ids) == {"1", "2"}
    # 85 % of 200 has a standard deviation of 2.5 points; 70 % is six of them away.
    assert 0.70 < ids["1"] / 200 < 0.97, ids


def test_status_lists_components_and_entries(loadgen):
    status = loadgen.json("status")
    assert status["stage"] == "splitter" and status["up"]
    assert {c["name"] for c in status["components"]} >= {"consul", "service-a-sidecar", "service-b-2"}
    entries = {(e["kind"], e["name"]): e for e in status["config_entries"]}
    assert set(entries) == {("service-defaults", "service-a"), ("service-defaults", "service-b"),
                            ("service-router", "service-a"), ("service-resolver", "service-b"),
                            ("service-splitter", "service-b")}
    assert all(e["present"] and e["modify_index"] for e in entries.values())


def test_dead_sidecar_is_reported_and_up_restarts_it(loadgen, hello, mesh_runtime):
    before = _identities(loadgen)["service-b-2-sidecar"]
    old_pid = mesh_runtime.kill_sidecar(loadgen, "service-b-2")
    if mesh_runtime.heals_itself:
        # Nomad restarts the dead task in place (restart block in nomad/service-b.nomad.hcl).
        deadline = time.monotonic() + 30
        while True:
            try:
                if mesh_runtime.sidecar_pid("service-b-2") != old_pid:
                    break
            except AssertionError:
                pass
            assert time.monotonic() < deadline, "Nomad did not restart the sidecar"
            time.sleep(0.2)
    else:
        proc = loadgen("status", "--json", check=False)
        assert proc.returncode == 4
        assert "service-b-2-sidecar" in proc.stdout
        loadgen("up", "--stage", "splitter")
        assert _identities(loadgen)["service-b-2-sidecar"] != before
    deadline = time.monotonic() + 30
    while set(_app_ids(hello(100))) != {"1", "2"}:
        assert time.monotonic() < deadline, "traffic did not reach both instances again"
    # Consul's health check of a restarted sidecar may pass a moment after traffic flows again.
    deadline = time.monotonic() + 30
    while not json.loads(loadgen("status", "--json", check=False).stdout)["up"]:
        assert time.monotonic() < deadline, loadgen("status", "--json", check=False).stdout
        time.sleep(0.5)


def test_down_leaves_nothing(loadgen, mesh_runtime):
    pids = _pids(loadgen)
    assert pids
    loadgen("down")
    assert mesh_runtime.leftovers(loadgen) == []
    for name, pid in pids.items():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, name
    assert loadgen.state() == {}
    for port in (8500, 3000, 3001, 3002, 9000, 19000, 19001, 19002):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1.0)
            raise AssertionError(f"port {port} still answers after down")
        except httpx.ConnectError:
            pass
