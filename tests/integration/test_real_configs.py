"""Verifying real configs on the real mesh (process runtime): the split Consul compiled
(nested splitters, DefaultSubset, header routes, decimal weights), the client sidecar's
Envoy (a stale proxy FAILs), backends named without X-App-Id, and an HTTPS target."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from loadgen.mesh import toolchain

CONSUL = "http://127.0.0.1:8500"
SERVICE_A = "http://127.0.0.1:3000/hello_a"
LOCAL = ("--target", SERVICE_A, "--consul", CONSUL, "--envoy-admin", "127.0.0.1:19000")


# `splitter_mesh` is the session's shared process mesh at stage splitter (tests/integration/conftest.py).


def canary(loadgen, *args: str) -> tuple[int, dict, str]:
    # What is verified here is the split Consul compiled and Envoy holds, not precision: +-5 points.
    tolerance = () if "--tolerance" in args else ("--tolerance", "5")
    proc = loadgen("canary", *args, *tolerance, "--json", "-", "-q", check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"canary exited {proc.returncode} without JSON:\n{proc.stdout}\n{proc.stderr}") from None
    return proc.returncode, result, proc.stderr


def put(entry: dict) -> None:
    assert httpx.put(f"{CONSUL}/v1/config", json=entry, timeout=5).json() is True


def delete(kind: str, name: str) -> None:
    httpx.delete(f"{CONSUL}/v1/config/{kind}/{name}", timeout=5).raise_for_status()


def splitter(*splits: tuple[float, str]) -> dict:
    return {"Kind": "service-splitter", "Name": "service-b",
            "Splits": [{"Weight": w, "ServiceSubset": s} for w, s in splits]}


REFERENCE = splitter((85, "v1"), (15, "v2"))


def envoy_weights(admin: int = 19000) -> dict[str, int] | None:
    """The sidecar's weights toward service-b ({} without a split; None while its admin is down)."""
    from loadgen.mesh import envoy_admin

    try:
        return envoy_admin.weighted_split(envoy_admin.config_dump(admin), "service-b") or {}
    except httpx.HTTPError:
        return None


def wait_envoy(expected: dict[str, int], admin: int = 19000, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while envoy_weights(admin) != expected:
        assert time.monotonic() < deadline, f"Envoy did not get {expected} (has {envoy_weights(admin)})"
        time.sleep(0.1)


# -- the split Consul compiled -------------------------------------------------------------

def test_decimal_weights_pass_against_consul(splitter_mesh):
    put(splitter((66.67, "v1"), (33.33, "v2")))
    try:
        wait_envoy({"v1": 6667, "v2": 3333})
        code, result, err = canary(splitter_mesh, "--expect", "consul", *LOCAL)
        assert code == 0, (result["reason"], err)
        assert result["expected"] == {"v1": 0.6667, "v2": 0.3333}
        rows = result["three_way"]["subsets"]
        assert rows["v1"]["consul"] == 0.6667 and rows["v1"]["envoy"] == 0.6667
    finally:
        put(REFERENCE)
        wait_envoy({"v1": 8500, "v2": 1500})


def test_default_subset_without_a_splitter_passes_at_0_100(splitter_mesh):
    delete("service-splitter", "service-b")
    resolver = httpx.get(f"{CONSUL}/v1/config/service-resolver/service-b", timeout=5).json()
    put({**{k: resolver[k] for k in ("Kind", "Name", "Subsets")}, "DefaultSubset": "v2"})
    try:
        deadline = time.monotonic() + 30
        while httpx.get(SERVICE_A, timeout=5).headers.get("x-app-id") != "2" or envoy_weights():
            assert time.monotonic() < deadline, "service-a's sidecar did not route to v2 alone"
            time.sleep(0.2)
        code, result, err = canary(splitter_mesh, "--expect", "consul", *LOCAL)
        assert code == 0, (result["reason"], err)
        assert result["expected"] == {"v1": 0.0, "v2": 1.0}
        assert "DefaultSubset v2" in result["three_way"]["consul"]["paths"]["v2"]
        assert result["app_id_counts"].keys() == {"2"}
    finally:
        put({**{k: resolver[k] for k in ("Kind", "Name", "Subsets")}, "DefaultSubset": "v1"})
        put(REFERENCE)
        wait_envoy({"v1": 8500, "v2": 1500})


def test_nested_splitters_pass_at_the_effective_weights_and_show_the_path(splitter_mesh):
    code, result, err = canary(splitter_mesh, "--expect", "consul", "--stage", "nested-splitter")
    assert code == 0, (result["reason"], err)
    consul = result["three_way"]["consul"]
    # The top splitter says 50/50; Consul compiles 50 % v1 + 50 % x (50/50) = 75/25.
    assert result["expected"] == consul["shares"] == {"v1": 0.75, "v2": 0.25}
    assert any(" > splitter " in path for path in consul["paths"].values()), consul["paths"]
    assert result["three_way"]["stale"] is None
    envoy = {name: row["envoy"] for name, row in result["three_way"]["subsets"].items()}
    assert envoy == pytest.approx(consul["shares"], abs=1e-3)
    # The stage was borrowed and put back.
    assert splitter_mesh.json("status")["stage"] == "splitter"


def test_a_header_route_sends_the_canary_header_to_v2_and_the_rest_through_the_splitter(splitter_mesh):
    code, result, err = canary(splitter_mesh, "--expect", "consul", "--stage", "header-route",
                               "--header", "x-canary: 1")
    assert code == 0, (result["reason"], err)
    assert result["expected"] == {"v1": 0.0, "v2": 1.0} and result["app_id_counts"].keys() == {"2"}
    assert "x-canary" in result["three_way"]["consul"]["route"]
    code, result, err = canary(splitter_mesh, "--expect", "consul", "--stage", "header-route")
    assert code == 0, (result["reason"], err)
    assert result["expected"] == {"v1": 0.85, "v2": 0.15}


# -- the client sidecar's Envoy --------------------------------------------------------------

class FreezableRelay:
    """A TCP relay between a sidecar and Consul's gRPC port that can stop passing bytes while
    keeping its connections open, so the sidecar's xDS stream silently stops getting updates."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.frozen = threading.Event()
        self.loop = asyncio.new_event_loop()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                while self.frozen.is_set():
                    await asyncio.sleep(0.05)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def __enter__(self) -> FreezableRelay:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(asyncio.start_server(self._client, "127.0.0.1", self.port),
                                         self.loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.frozen.clear()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_a_stale_client_sidecar_fails_even_when_traffic_matches(splitter_mesh, tmp_path):
    state = splitter_mesh.state()
    original = state["processes"]["service-a-sidecar"]["pid"]
    consul_bin, envoy_bin = toolchain.find("consul").path, toolchain.find("envoy").path
    with FreezableRelay(8502) as relay:
        # service-a's sidecar, restarted with its xDS stream through the relay (same admin port).
        subprocess.run(["kill", str(original)], check=True)
        deadline = time.monotonic() + 15
        while _port_open(19000):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        log = (tmp_path / "sidecar.log").open("w")
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
            code, result, err = canary(splitter_mesh, "--expect", "85/15", *LOCAL)
            assert code == 1, (result, err)
            three = result["three_way"]
            assert three["stale"] and "127.0.0.1:19000" in three["stale"]
            assert "v1 85 % / v2 15 %" in three["stale"] and "v1 50 % / v2 50 %" in three["stale"]
            assert three["envoy"]["version"], three["envoy"]
            assert result["verdict"] == "FAIL" and "the traffic alone: PASS" in result["reason"]
            relay.frozen.clear()
            wait_envoy({"v1": 5000, "v2": 5000})
        finally:
            relay.frozen.clear()
            put(REFERENCE)
            sidecar.send_signal(signal.SIGTERM)
            sidecar.wait(10)
            log.close()
    # Give the mesh its own sidecar back for the tests after this one.
    splitter_mesh("down", "-q")
    splitter_mesh("up", "--stage", "splitter", "-q")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- naming the backend without X-App-Id -----------------------------------------------------

@pytest.mark.parametrize("subset_from", ["header:X-App-Id", "json:upstream.app_id", "envoy"])
def test_subset_from_passes_the_splitter_and_fails_50_50(splitter_mesh, subset_from):
    code, result, err = canary(splitter_mesh, "--expect", "85/15", "--subset-from", subset_from, *LOCAL)
    assert code == 0, (result["reason"], err)
    assert result["subset_from"] == subset_from
    code, result, err = canary(splitter_mesh, "--expect", "50/50", "--subset-from", subset_from, *LOCAL)
    assert code == 1, (result["reason"], err)
    if subset_from == "envoy":
        counters = {n: r["envoy_counters"]["requests"] for n, r in result["three_way"]["subsets"].items()}
        assert counters["v1"] > counters["v2"] > 0


def test_a_subset_from_that_never_matches_stops_with_one_line(splitter_mesh):
    proc = splitter_mesh("canary", "--expect", "85/15", "--subset-from", "header:X-Nothing", *LOCAL, "-q",
                         check=False)
    assert proc.returncode == 2, proc.stderr
    assert "--subset-from header:X-Nothing named no backend" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_bad_real_config_input_is_one_line(splitter_mesh):
    for args, code, text in [
        (("--expect", "consul", "--upstream", "no-such-service"), 2, "knows no service 'no-such-service'"),
        (("--expect", "85/15", "--envoy-admin", "127.0.0.1:1"), 4, "127.0.0.1:1"),
        (("--expect", "85/15", "--subset-from", "xml:a"), 2, "--subset-from"),
    ]:
        proc = splitter_mesh("canary", *args, "--target", SERVICE_A, "--consul", CONSUL, "-q", check=False)
        assert proc.returncode == code, (args, proc.stderr)
        assert text in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert httpx.get(f"{CONSUL}/v1/config/service-splitter/service-b", timeout=5).json()["Splits"][0]["Weight"] == 85


# -- an HTTPS target -------------------------------------------------------------------------

def test_an_https_target_passes(splitter_mesh, tmp_path):
    from tests.integration.tls_front import tls_front

    with tls_front(tmp_path, "http://127.0.0.1:3000") as (url, cacert):
        code, result, err = canary(splitter_mesh, "--expect", "85/15", "--target", f"{url}/hello_a",
                                   "--cacert", str(cacert), "--consul", CONSUL, "--envoy-admin", "127.0.0.1:19000")
        assert code == 0, (result["reason"], err)
        assert result["target"].startswith("https://")


def test_switching_to_and_from_loadgens_own_stages_leaves_no_entry_behind(splitter_mesh):
    splitter_mesh("up", "--stage", "nested-splitter", "-q")
    splitter_mesh("up", "--stage", "header-route", "-q")
    assert httpx.get(f"{CONSUL}/v1/config/service-splitter/service-b-canary", timeout=5).status_code == 404
    splitter_mesh("up", "--stage", "nested-splitter", "-q")
    # `down` removes each entry it wrote; Consul refuses a removal that breaks a chain still in
    # force (service-b-canary's http defaults while service-b's splitter points at it).
    proc = splitter_mesh("down")
    assert "removed service-defaults/service-b-canary" in proc.stderr + proc.stdout
    assert "could not remove" not in proc.stderr + proc.stdout, proc.stderr
    splitter_mesh("up", "--stage", "splitter", "-q")
