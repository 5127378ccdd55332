"""service-b: answers who it is.

GET /hello_b (and /) -> JSON {"service", "app_id", "version", "instance"} plus an
``X-App-Id`` header, so a load generator can read the backend from either.
Configured by environment: PORT (3001), APP_ID (1), VERSION (v1), INSTANCE_ID.

Test endpoints, for checking clients and generators against awkward answers:
``/test/chunked`` (a chunked body), ``/test/close`` (``Connection: close``),
``/test/garbage`` (bytes that are not HTTP), ``/test/stall?seconds=S`` (every request
to /hello_b waits until S seconds from now: a service pause).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from aiohttp import web


def make_app(app_id: str, version: str, instance: str) -> web.Application:
    body = {"service": "service-b", "app_id": app_id, "version": version, "instance": instance}
    headers = {"X-App-Id": app_id, "X-Version": version}

    stall_until = [0.0]

    async def hello(_request: web.Request) -> web.Response:
        wait = stall_until[0] - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return web.json_response(body, headers=headers)

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={**headers, "Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        text = web.json_response(body).text or ""
        for i in range(0, len(text), 7):
            await resp.write(text[i : i + 7].encode())
        await resp.write_eof()
        return resp

    async def close(_request: web.Request) -> web.Response:
        return web.json_response(body, headers={**headers, "Connection": "close"})

    async def garbage(request: web.Request) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            transport.write(b"HTTP/1.1 2x0 NOPE\r\nContent-Length: banana\r\n\r\n{")
            transport.close()
        return web.Response()  # never sent: the connection is gone

    async def stall(request: web.Request) -> web.Response:
        seconds = float(request.query.get("seconds", "1"))
        stall_until[0] = time.monotonic() + max(0.0, min(seconds, 30.0))
        return web.json_response({"stall_seconds": seconds})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/hello_b", hello)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/test/chunked", chunked)
    app.router.add_get("/test/close", close)
    app.router.add_get("/test/garbage", garbage)
    app.router.add_post("/test/stall", stall)
    return app


def main() -> None:
    port = int(os.environ.get("PORT", "3001"))
    app_id = os.environ.get("APP_ID", "1")
    version = os.environ.get("VERSION", "v1")
    instance = os.environ.get("INSTANCE_ID", f"{socket.gethostname()}:{port}")
    host = os.environ.get("BIND_ADDR", "127.0.0.1")
    web.run_app(make_app(app_id, version, instance), host=host, port=port, print=None)


if __name__ == "__main__":
    main()
