"""service-b: answers who it is.

GET /hello_b (and /) -> JSON {"service", "app_id", "version", "instance"} plus an
``X-App-Id`` header, so a load generator can read the backend from either.
Configured by environment: PORT (3001), APP_ID (1), VERSION (v1), INSTANCE_ID.

Test endpoints, for checking clients and generators against awkward answers:
``/test/chunked`` (a chunked body), ``/test/close`` (``Connection: close``),
``/test/garbage`` (bytes that are not HTTP), ``/test/stall?seconds=S`` (every request
to /hello_b waits until S seconds from now: a service pause).

Fault injection, off by default, for rehearsing a bad release (``loadgen shift`` must roll it
back): ``FAULT_ERROR_RATE`` (0-1: that share of /hello_b answers are 500, still carrying the
X-App-Id) and ``FAULT_DELAY_MS`` (added to every /hello_b answer) from the environment, or at
run time ``POST /test/fault?error_rate=R&delay_ms=D`` (``GET /test/fault`` shows them; both 0
turns the fault off).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time

from aiohttp import web


def _fault_value(raw: str | None, name: str, upper: float) -> float:
    try:
        value = float(raw or 0)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not 0 <= value <= upper:
        raise ValueError(f"{name} must be between 0 and {upper:g}, got {raw}")
    return value


def make_app(app_id: str, version: str, instance: str, error_rate: float = 0.0,
             delay_ms: float = 0.0) -> web.Application:
    body = {"service": "service-b", "app_id": app_id, "version": version, "instance": instance}
    headers = {"X-App-Id": app_id, "X-Version": version}

    stall_until = [0.0]
    fault = {"error_rate": error_rate, "delay_ms": delay_ms}

    async def hello(_request: web.Request) -> web.Response:
        wait = stall_until[0] - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if fault["delay_ms"]:
            await asyncio.sleep(fault["delay_ms"] / 1000)
        if fault["error_rate"] and random.random() < fault["error_rate"]:
            return web.json_response({**body, "error": "injected fault"}, status=500, headers=headers)
        return web.json_response(body, headers=headers)

    async def set_fault(request: web.Request) -> web.Response:
        try:
            rate = _fault_value(request.query.get("error_rate"), "error_rate", 1.0)
            delay = _fault_value(request.query.get("delay_ms"), "delay_ms", 30_000.0)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        fault.update(error_rate=rate, delay_ms=delay)
        return web.json_response(fault)

    async def get_fault(_request: web.Request) -> web.Response:
        return web.json_response(fault)

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
    app.router.add_post("/test/fault", set_fault)
    app.router.add_get("/test/fault", get_fault)
    return app


def main() -> None:
    port = int(os.environ.get("PORT", "3001"))
    app_id = os.environ.get("APP_ID", "1")
    version = os.environ.get("VERSION", "v1")
    instance = os.environ.get("INSTANCE_ID", f"{socket.gethostname()}:{port}")
    host = os.environ.get("BIND_ADDR", "127.0.0.1")
    error_rate = _fault_value(os.environ.get("FAULT_ERROR_RATE"), "FAULT_ERROR_RATE", 1.0)
    delay_ms = _fault_value(os.environ.get("FAULT_DELAY_MS"), "FAULT_DELAY_MS", 30_000.0)
    web.run_app(make_app(app_id, version, instance, error_rate, delay_ms), host=host, port=port, print=None)


if __name__ == "__main__":
    main()
