"""The aiohttp application of ``loadgen serve``: routes, and the checks every request passes first.

Routes (fixed: scripts use them):

- ``POST /v1/canaries`` -- the canary's options as JSON -> ``201 {"id": ...}``
- ``GET /v1/canaries/{id}`` -- `canary --json`'s JSON plus ``id``, ``state`` (RUNNING, then PASS /
  FAIL / INCONCLUSIVE) and ``options``; while running, ``progress`` (the latest look). ``?wait=S``
  (at most 9) waits up to S seconds for the verdict first, within a caller's 10 s timeout.
- ``DELETE /v1/canaries/{id}`` -- cancels: the run stops, judges what it collected (``stopped_by``
  "cancelled") -> 202 with the run's JSON so far
- ``POST /v1/gate`` -- a Flagger webhook (loadgen.serve.gate)
- ``GET /healthz`` -- "ok", without a token (for liveness probes)
- ``GET /metrics`` -- only when a handler is given (``metrics``); mounted here, written elsewhere

Before any route: a request to a loopback server must name a loopback Host (a web page's DNS
rebinding cannot reach it), the token when one is set (``Authorization: Bearer``, constant-time
comparison: 401 otherwise), ``Content-Type: application/json`` on a POST (415: a browser cannot
send that cross-site without a preflight, which this server never grants), a body of at most
``max_body`` bytes (413) read within ``body_timeout`` (408), and JSON that parses (400). Errors are
``{"error": one line}``; nothing the server answers or logs holds the token.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from loadgen.serve.body import BodyError, TargetAllowList, parse_canary
from loadgen.serve.gate import answer_gate
from loadgen.serve.listen import check_bearer, is_loopback
from loadgen.serve.runs import Runs, TooManyRuns

__all__ = ["ServeSettings", "build_app"]

log = logging.getLogger("loadgen.serve")

MetricsHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RUNS: web.AppKey[Runs] = web.AppKey("runs", Runs)
MAX_WAIT_S = 9.0  # GET ?wait: under the 10 s timeout of Argo Rollouts' Web provider
MAX_JSON_DEPTH = 8  # the deepest a body needs: Flagger's {"metadata": {...}}, a header list in it


@dataclass(frozen=True)
class ServeSettings:
    token: str | None = field(default=None, repr=False)
    loopback: bool = True  # the server listens on loopback only: Host must be a loopback name
    max_body: int = 16 * 1024
    body_timeout: float = 10.0
    allow: TargetAllowList = field(default_factory=TargetAllowList)
    max_time_limit: float | None = 600.0  # the longest max_time a posted canary may ask for
    gate_wait: float = 8.0  # how long a gate call waits for the verdict (Flagger's webhook timeout is longer)
    gate_reuse: float = 300.0  # an ended, unreported run is reported to a gate call this long after


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _host_is_loopback(host_header: str | None) -> bool:
    if not host_header:
        return False
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    else:
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return is_loopback(host)


def _middlewares(settings: ServeSettings) -> list[Any]:
    @web.middleware
    async def guard(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        if settings.loopback and not _host_is_loopback(request.headers.get("Host")):
            return _error(421, "this server answers loopback names only (Host: 127.0.0.1, localhost or [::1])")
        if request.path != "/healthz" and settings.token is not None and not check_bearer(
                request.headers.get("Authorization"), settings.token):
            given = "Authorization" in request.headers
            return _error(401, "wrong token" if given else "this server needs a token: Authorization: Bearer "
                          "<LOADGEN_API_TOKEN>", **{"WWW-Authenticate": 'Bearer realm="loadgen"'})
        if request.method == "POST":
            if request.content_type != "application/json":
                return _error(415, "send the body as JSON (Content-Type: application/json)")
            if request.content_length is not None and request.content_length > settings.max_body:
                return _error(413, f"the body is over this server's {settings.max_body:,} bytes")
        try:
            response = await handler(request)
        except web.HTTPException:
            raise
        except Exception:  # a bug in a handler: one line to the client, the trace to the server's log
            log.exception("loadgen serve: internal error on %s %s", request.method, request.path)
            return _error(500, "internal error (the server's log has the details)")
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return [guard]


async def _json_body(request: web.Request, settings: ServeSettings) -> object:
    """The body as JSON, read within the size and time limits."""
    async def read() -> bytes:
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > settings.max_body:  # a chunked body gives no Content-Length to refuse it by
                raise BodyError(f"the body is over this server's {settings.max_body:,} bytes", status=413)
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        raw = await asyncio.wait_for(read(), settings.body_timeout)
    except TimeoutError:
        raise BodyError(f"the body did not arrive within {settings.body_timeout:g} s", status=408) from None
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise BodyError(f"the body is not JSON{where}") from None
    except RecursionError:  # [[[[... a few thousand deep: the decoder recurses per level
        raise BodyError(f"the body nests deeper than the {MAX_JSON_DEPTH} levels a canary's options need") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise BodyError("the body holds a number of more digits than any option takes") from None
    if _depth(body) > MAX_JSON_DEPTH:  # refused here, before anything walks it recursively (json.dumps)
        raise BodyError(f"the body nests deeper than the {MAX_JSON_DEPTH} levels a canary's options need")
    return body


def _depth(value: object) -> int:
    """How deeply lists and objects nest in ``value`` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in children)
    return deepest


def build_app(runs: Runs, settings: ServeSettings, metrics: MetricsHandler | None = None) -> web.Application:
    """The application. ``metrics``: the handler of ``GET /metrics`` (the Prometheus exposition,
    written in its own module); None leaves the route out."""
    app = web.Application(middlewares=_middlewares(settings), client_max_size=settings.max_body)
    app[RUNS] = runs

    async def post_canary(request: web.Request) -> web.Response:
        try:
            posted = parse_canary(await _json_body(request, settings), settings.allow, settings.max_time_limit)
            run = runs.start(posted)
        except BodyError as exc:
            return _error(exc.status, exc.message)
        except TooManyRuns as exc:
            return _error(429, str(exc), **{"Retry-After": "10"})
        log.info("canary %s started: %s", run.id, posted.options.expect)
        return web.json_response({"id": run.id}, status=201, headers={"Location": f"/v1/canaries/{run.id}"})

    async def get_canary(request: web.Request) -> web.Response:
        run = runs.get(request.match_info["id"])
        if run is None:
            return _error(404, "no canary with that id (ended ones are kept for a while: loadgen serve --keep)")
        wait = request.query.get("wait")
        if wait is not None:
            try:
                seconds = min(float(wait), MAX_WAIT_S)
                if not seconds >= 0:
                    raise ValueError
            except ValueError:
                return _error(400, f"wait must be a number of seconds, 0 to {MAX_WAIT_S:g}")
            deadline = asyncio.get_running_loop().time() + seconds
            while not run.done.is_set() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
        return web.json_response(run.to_json())

    async def delete_canary(request: web.Request) -> web.Response:
        run = runs.get(request.match_info["id"])
        if run is None:
            return _error(404, "no canary with that id")
        run.cancel.set()
        log.info("canary %s cancelled", run.id)
        return web.json_response(run.to_json(), status=202 if run.result is None else 200)

    async def gate(request: web.Request) -> web.Response:
        try:
            answer = await answer_gate(await _json_body(request, settings), runs, settings.allow,
                                       settings.gate_wait, settings.gate_reuse, settings.max_time_limit)
        except BodyError as exc:
            return web.Response(status=exc.status, text=exc.message + "\n")
        except TooManyRuns as exc:
            return web.Response(status=429, text=f"{exc}\n", headers={"Retry-After": "10"})
        headers = {"Retry-After": str(answer.retry_after_s)} if answer.retry_after_s else None
        log.info("gate: %s %s", answer.status, answer.line[:200])
        return web.Response(status=answer.status, text=answer.line + "\n", headers=headers)

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def on_shutdown(_app: web.Application) -> None:
        runs.cancel_all()  # each run stops at its next look and judges what it collected
        await asyncio.to_thread(runs.wait_all, 10.0)

    app.router.add_post("/v1/canaries", post_canary)
    app.router.add_get("/v1/canaries/{id}", get_canary)
    app.router.add_delete("/v1/canaries/{id}", delete_canary)
    app.router.add_post("/v1/gate", gate)
    app.router.add_get("/healthz", healthz)
    # The single place /metrics is mounted: the Prometheus exposition is its own module.
    if metrics is not None:
        app.router.add_get("/metrics", metrics)
    app.on_shutdown.append(on_shutdown)
    return app
