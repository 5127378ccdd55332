"""The lean HTTP client against real Envoy and the real services: bodies, connections, failures."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from loadgen.load.client import Client, RequestError

VIA_ENVOY = "http://127.0.0.1:9000"  # service-a's upstream listener: Envoy -> mTLS -> service-b
DIRECT = "http://127.0.0.1:3001"


@pytest.fixture(scope="module", autouse=True)
def basic_stage(loadgen):
    loadgen("up", "--stage", "basic")
    yield


def run(coro):
    return asyncio.run(coro)


async def _get(url: str, n: int = 1, **kwargs) -> list:
    client = Client(url, **kwargs)
    try:
        return [await client.get() for _ in range(n)]
    finally:
        client.close()


@pytest.mark.parametrize("base", [VIA_ENVOY, DIRECT])
def test_chunked_body(base):
    (resp,) = run(_get(f"{base}/test/chunked"))
    assert resp.status == 200
    assert resp.headers.get("Transfer-Encoding", "").lower() == "chunked"
    body = json.loads(resp.body)
    assert body["service"] == "service-b" and body["app_id"] == resp.headers["X-App-Id"]


@pytest.mark.parametrize("base", [VIA_ENVOY, DIRECT])
def test_keep_alive_reuses_one_connection(base):
    responses = run(_get(f"{base}/hello_b", n=30))
    assert [r.status for r in responses] == [200] * 30
    assert [r.new_connection for r in responses] == [True] + [False] * 29


def test_fresh_connection_mode():
    responses = run(_get(f"{VIA_ENVOY}/hello_b", n=10, new_connection=True))
    assert all(r.new_connection for r in responses) and {r.status for r in responses} == {200}


def test_connection_close_is_honoured():
    responses = run(_get(f"{DIRECT}/test/close", n=3))
    assert [r.new_connection for r in responses] == [True, True, True]


@pytest.mark.parametrize("base", [VIA_ENVOY, DIRECT])
def test_malformed_response_is_bad_response(base):
    with pytest.raises(RequestError) as exc:
        run(_get(f"{base}/test/garbage"))
    assert exc.value.kind in ("bad_response", "reset")


def test_timeout_and_recovery():
    httpx.post(f"{DIRECT}/test/stall?seconds=1.5", timeout=5)
    with pytest.raises(RequestError) as exc:
        run(_get(f"{DIRECT}/hello_b", timeout=0.3))
    assert exc.value.kind == "timeout"
    # The stall ends; the service answers again.
    async def later():
        await asyncio.sleep(1.5)
        return await _get(f"{DIRECT}/hello_b")
    (resp,) = run(later())
    assert resp.status == 200


def test_connect_refused():
    with pytest.raises(RequestError) as exc:
        run(_get("http://127.0.0.1:1/"))
    assert exc.value.kind == "connect_refused"


def test_closed_pooled_connection_is_skipped():
    async def scenario():
        client = Client(f"{DIRECT}/hello_b")
        try:
            first = await client.get()
            for conn in client._idle:  # the pooled connection goes away between requests
                conn.close()
            second = await client.get()
            return first, second
        finally:
            client.close()

    first, second = run(scenario())
    assert first.status == second.status == 200 and second.new_connection
