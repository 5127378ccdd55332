"""service-a: calls service-b through its sidecar and reports who answered.

GET /hello_a -> GET {SIDECAR_URL}/hello_b; answers JSON carrying service-b's
``app_id`` and ``version`` unchanged (and the same ``X-App-Id`` header).
When the upstream fails it answers 502 (upstream answered with an error status or
garbage) or 503 (connection refused / reset / timeout) with a JSON reason -- never
a hang and never HTML. An upstream error answer that names its instance (service-b's
injected 500 carries its ``app_id``) keeps that name in ``X-App-Id``: a client can tell
which backend failed, as it can tell which one answered. Configured by PORT (3000), SIDECAR_URL
(http://127.0.0.1:9000), UPSTREAM_TIMEOUT seconds (5), UPSTREAM_KEEPALIVE (0) and
PROPAGATE_HEADERS.

Like real services, it passes request headers on to its upstream call -- tracing
(W3C ``traceparent``/``tracestate``, B3), baggage, canary flags -- so a service-router
route that matches a header (the header-route stage) sees the header a client sent to
service-a. PROPAGATE_HEADERS is a comma-separated list of header names or glob patterns,
case-insensitive (default ``x-*,traceparent,tracestate,b3``: B3's multi-header form is
``x-b3-*``; ``PROPAGATE_HEADERS=""`` passes none). Hop-by-hop and framing headers
(connection, keep-alive, transfer-encoding, te, trailer, upgrade, proxy-*, host,
content-length) are never passed on, even when a pattern such as ``*`` matches them.

By default every /hello_a opens a fresh connection to the sidecar, as the seed's
service-a did: in the basic stage Envoy proxies TCP and balances per *connection*, and
intentions are checked when a connection is set up, so a pooled connection would pin
every request to one service-b instance and keep flowing after a deny.
UPSTREAM_KEEPALIVE=1 pools connections instead (to study exactly that behaviour).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from fnmatch import fnmatchcase

import aiohttp
from aiohttp import web

UPSTREAM_PATH = "/hello_b"
# A typed application key where aiohttp has them (>= 3.9: no NotAppKeyWarning); the docker
# runtime's image runs Debian bookworm's aiohttp 3.8, which has none, so a plain string there.
SESSION = web.AppKey("session", aiohttp.ClientSession) if hasattr(web, "AppKey") else "session"
DEFAULT_PROPAGATE = "x-*,traceparent,tracestate,b3"
# Hop-by-hop (RFC 9110 7.6.1) and framing headers belong to one connection, never to the next;
# every proxy-* header (Proxy-Authorization, Proxy-Connection, ...) speaks to one hop's proxy.
NEVER_PROPAGATED = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
                              "content-length"})
NEVER_PROPAGATED_PREFIX = "proxy-"


def propagation_rule(spec: str) -> tuple[str, ...]:
    """PROPAGATE_HEADERS as lower-case glob patterns."""
    return tuple(p.strip().lower() for p in spec.split(",") if p.strip())


def propagated(headers: Mapping[str, str], patterns: tuple[str, ...]) -> dict[str, str]:
    """The request headers that go on to the upstream call."""
    return {k: v for k, v in headers.items() if _may_propagate(k.lower(), patterns)}


def _may_propagate(name: str, patterns: tuple[str, ...]) -> bool:
    """``name`` (lower case) matches a pattern and is not hop-by-hop, whatever the patterns say."""
    if name in NEVER_PROPAGATED or name.startswith(NEVER_PROPAGATED_PREFIX):
        return False
    return any(fnmatchcase(name, p) for p in patterns)


def _failure(
    status: int, reason: str, detail: str, upstream: str, upstream_status: int | None = None,
    upstream_app_id: str | None = None,
) -> web.Response:
    body: dict[str, object] = {"service": "service-a", "error": reason, "detail": detail, "upstream_url": upstream}
    if upstream_status is not None:
        body["upstream_status"] = upstream_status
    headers = {"X-App-Id": upstream_app_id} if upstream_app_id else None
    return web.json_response(body, status=status, headers=headers)


def _named_app_id(text: str) -> str | None:
    """The ``app_id`` an upstream error body names, if it is a JSON object that names one."""
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    named = payload.get("app_id") if isinstance(payload, dict) else None
    if isinstance(named, bool) or not isinstance(named, str | int):
        return None
    return str(named) if str(named).strip() else None


def make_app(sidecar_url: str, timeout_s: float, keepalive: bool = False,
             propagate: str = DEFAULT_PROPAGATE) -> web.Application:
    upstream = sidecar_url.rstrip("/") + UPSTREAM_PATH
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    patterns = propagation_rule(propagate)

    async def on_startup(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(force_close=not keepalive)
        app[SESSION] = aiohttp.ClientSession(timeout=timeout, connector=connector)

    async def on_cleanup(app: web.Application) -> None:
        await app[SESSION].close()

    async def hello(request: web.Request) -> web.Response:
        session = request.app[SESSION]
        try:
            async with session.get(upstream, headers=propagated(request.headers, patterns)) as resp:
                text = await resp.text()
                if resp.status != 200:
                    return _failure(502, "upstream_status", text[:200], upstream, resp.status, _named_app_id(text))
                try:
                    payload = await resp.json(content_type=None)
                except ValueError:
                    return _failure(502, "upstream_bad_response", text[:200], upstream, resp.status)
        except aiohttp.ClientConnectorError as exc:
            return _failure(503, "connection_refused", str(exc), upstream)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            return _failure(503, "connection_reset", str(exc) or type(exc).__name__, upstream)
        except TimeoutError:
            return _failure(503, "timeout", f"no answer from {upstream} within {timeout_s}s", upstream)
        except aiohttp.ClientError as exc:
            return _failure(502, "upstream_bad_response", str(exc) or type(exc).__name__, upstream)
        if not isinstance(payload, dict) or "app_id" not in payload:
            return _failure(502, "upstream_bad_response", text[:200], upstream, resp.status)
        app_id = str(payload["app_id"])
        body = {
            "service": "service-a",
            "app_id": app_id,
            "version": payload.get("version"),
            "upstream": payload,
        }
        return web.json_response(body, headers={"X-App-Id": app_id})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/hello_a", hello)
    app.router.add_get("/healthz", healthz)
    return app


def main() -> None:
    port = int(os.environ.get("PORT", "3000"))
    sidecar_url = os.environ.get("SIDECAR_URL", "http://127.0.0.1:9000")
    timeout_s = float(os.environ.get("UPSTREAM_TIMEOUT", "5"))
    host = os.environ.get("BIND_ADDR", "127.0.0.1")
    keepalive = os.environ.get("UPSTREAM_KEEPALIVE", "0") == "1"
    propagate = os.environ.get("PROPAGATE_HEADERS", DEFAULT_PROPAGATE)
    web.run_app(make_app(sidecar_url, timeout_s, keepalive, propagate), host=host, port=port, print=None)


if __name__ == "__main__":
    main()
