"""An HTTPS listener in front of service-a, as an ingress or API gateway would be: TLS ends
here and each request is passed on to service-a over plain HTTP. The CA and the server
certificate (SANs localhost and 127.0.0.1) are made with Consul's own `consul tls` commands."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp import web

from loadgen.mesh import toolchain


def make_certs(where: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) in ``where``."""
    consul = str(toolchain.find("consul").path)
    subprocess.run([consul, "tls", "ca", "create"], cwd=where, check=True, capture_output=True)
    subprocess.run([consul, "tls", "cert", "create", "-server", "-additional-ipaddress", "127.0.0.1",
                    "-additional-dnsname", "localhost"], cwd=where, check=True, capture_output=True)
    return where / "consul-agent-ca.pem", where / "dc1-server-consul-0.pem", where / "dc1-server-consul-0-key.pem"


@contextlib.contextmanager
def tls_front(where: Path, backend: str) -> Iterator[tuple[str, Path]]:
    """Serve HTTPS on a free loopback port, passing every request to ``backend``; yields the
    base URL and the CA file that signs its certificate."""
    ca, cert, key = make_certs(where)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    loop = asyncio.new_event_loop()
    state: dict[str, web.AppRunner] = {}

    async def forward(request: web.Request) -> web.Response:
        session: aiohttp.ClientSession = request.app["session"]
        async with session.request(request.method, backend + request.path_qs, data=await request.read(),
                                   headers={k: v for k, v in request.headers.items() if k.lower() != "host"}) as up:
            return web.Response(status=up.status, body=await up.read(),
                                headers={k: v for k, v in up.headers.items()
                                         if k.lower() in ("content-type", "x-app-id")})

    async def start() -> None:
        app = web.Application()
        app["session"] = aiohttp.ClientSession()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        state["runner"] = runner

    async def stop() -> None:
        runner = state["runner"]
        await runner.app["session"].close()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield f"https://localhost:{port}", ca
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
