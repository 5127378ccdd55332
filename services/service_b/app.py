"""service-b: answers who it is.

GET /hello_b (and /) -> JSON {"service", "app_id", "version", "instance"} plus an
``X-App-Id`` header, so a load generator can read the backend from either.
Configured by environment: PORT (3001), APP_ID (1), VERSION (v1), INSTANCE_ID.
"""

from __future__ import annotations

import os
import socket

from aiohttp import web


def make_app(app_id: str, version: str, instance: str) -> web.Application:
    body = {"service": "service-b", "app_id": app_id, "version": version, "instance": instance}
    headers = {"X-App-Id": app_id, "X-Version": version}

    async def hello(_request: web.Request) -> web.Response:
        return web.json_response(body, headers=headers)

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/hello_b", hello)
    app.router.add_get("/healthz", healthz)
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
