"""The lean client over TLS and with any method and body, against a real TLS listener on
loopback (certificates made by Consul's own `consul tls` commands, as tls_front does)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from loadgen.errors import UsageError
from loadgen.load.client import Client, RequestError, TlsOptions
from tests.integration.tls_front import make_certs


@contextlib.contextmanager
def echo_server(where: Path) -> Iterator[tuple[int, Path, list[int]]]:
    """HTTPS on a free port answering each request with its method, body and Host; yields the
    port, the CA file and the list of client ports seen (one per TLS connection)."""
    ca, cert, key = make_certs(where)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    peers: list[int] = []

    async def echo(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername")[1] if request.transport else 0
        if peer not in peers:
            peers.append(peer)
        body = {"method": request.method, "body": (await request.read()).decode(), "host": request.host}
        return web.json_response(body, headers={"X-App-Id": "1"})

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield port, ca, peers
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with echo_server(tmp_path_factory.mktemp("tls")) as found:
        yield found


async def _send(client: Client, n: int) -> list:
    try:
        return [await client.get() for _ in range(n)]
    finally:
        client.close()


def test_keep_alive_over_tls_uses_one_connection_with_sni_and_verification(server):
    port, ca, peers = server
    peers.clear()
    responses = asyncio.run(_send(Client(f"https://localhost:{port}/x", tls=TlsOptions(cacert=str(ca))), 5))
    assert [r.status for r in responses] == [200] * 5 and len(peers) == 1
    assert [r.new_connection for r in responses] == [True, False, False, False, False]
    assert json.loads(responses[0].body)["host"] == f"localhost:{port}"


def test_fresh_connection_mode_over_tls_opens_one_per_request(server):
    port, ca, peers = server
    peers.clear()
    client = Client(f"https://localhost:{port}/x", tls=TlsOptions(cacert=str(ca)), new_connection=True)
    responses = asyncio.run(_send(client, 4))
    assert all(r.new_connection for r in responses) and len(peers) == 4


def test_a_certificate_from_another_ca_is_a_tls_error_and_insecure_skips_the_check(server, tmp_path):
    port, _, _ = server
    other_ca, _, _ = make_certs(tmp_path)
    with pytest.raises(RequestError) as err:
        asyncio.run(_send(Client(f"https://localhost:{port}/x", tls=TlsOptions(cacert=str(other_ca))), 1))
    assert err.value.kind == "tls_error" and "certificate" in err.value.detail.lower()
    (resp,) = asyncio.run(_send(Client(f"https://localhost:{port}/x", tls=TlsOptions(insecure=True)), 1))
    assert resp.status == 200


def test_a_host_name_the_certificate_does_not_name_is_a_tls_error(server):
    port, ca, _ = server
    with pytest.raises(RequestError) as err:
        asyncio.run(_send(Client(f"https://localhost:{port}/x",
                                 tls=TlsOptions(cacert=str(ca), server_name="shop.example")), 1))
    assert err.value.kind == "tls_error" and "mismatch" in err.value.detail.lower()


def test_any_method_with_a_body(server):
    port, ca, _ = server
    client = Client(f"https://localhost:{port}/x", method="POST", body=b'{"n": 1}',
                    headers={"Content-Type": "application/json"}, tls=TlsOptions(cacert=str(ca)))
    (resp,) = asyncio.run(_send(client, 1))
    assert json.loads(resp.body) == {"method": "POST", "body": '{"n": 1}', "host": f"localhost:{port}"}


def test_a_missing_ca_file_is_a_usage_error():
    with pytest.raises(UsageError, match="--cacert /nope: no such file"):
        Client("https://localhost:1/x", tls=TlsOptions(cacert="/nope"))
