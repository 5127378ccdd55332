"""At most ``max_connections`` client connections at once, for ``loadgen serve``.

Each slow client is bounded in time already: headers must be complete within the keep-alive
timeout counted from the connection's start (aiohttp closes it otherwise, however many bytes
trickle in), a body within ``--body-timeout`` (408), a TLS handshake within ``HANDSHAKE_S``. What
bounds their number is this cap: without it, clients that each open a connection and send a byte
now and then (no token needed: the token is read from headers they never finish) hold a file
descriptor apiece, and once the process runs out of them the canaries it is running cannot open
their own connections to the target. A connection over the cap gets one line (503, ``Retry-After``)
and is closed at once, before anything of its request is read.

Counted: the connections aiohttp's server holds (``web.Server.connections``) plus those accepted
and not yet handed to it (a TLS handshake in progress), the latter for at most ``HANDSHAKE_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

__all__ = ["HANDSHAKE_S", "CappedSite", "ConnectionCap"]

log = logging.getLogger("loadgen.serve")

HANDSHAKE_S = 10.0  # asyncio's default TLS handshake timeout is 60 s: a silent client would hold a slot that long
LOG_EVERY_S = 10.0  # a flood of refusals is one log line per this long, not one per connection


class ConnectionCap:
    """The protocol factory of a listening socket: ``server``'s handlers while under ``limit``."""

    def __init__(self, server: web.Server, limit: int, handshake_s: float = HANDSHAKE_S) -> None:
        self.server = server
        self.limit = limit
        self.handshake_s = handshake_s
        self.refused = 0
        self._unmade: dict[Any, float] = {}  # handler -> when accepted, until its connection_made
        self._logged_at = -LOG_EVERY_S
        made = server.connection_made

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            self._unmade.pop(handler, None)
            made(handler, transport)

        server.connection_made = connection_made  # type: ignore[method-assign]

    def live(self) -> int:
        now = time.monotonic()
        for handler, accepted in list(self._unmade.items()):
            if now - accepted > self.handshake_s:  # its handshake failed or timed out: never made
                del self._unmade[handler]
        return len(self.server.connections) + len(self._unmade)

    def __call__(self) -> asyncio.Protocol:
        if self.live() >= self.limit:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged_at >= LOG_EVERY_S:
                self._logged_at = now
                log.warning("loadgen serve: %d connections open, this server's limit (--max-connections): "
                            "refusing more (%d so far)", self.limit, self.refused)
            return _Refused(self.limit)
        handler = self.server()
        self._unmade[handler] = time.monotonic()
        return handler  # type: ignore[no-any-return]


class _Refused(asyncio.Protocol):
    """Answers 503 in one line and closes, reading nothing."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        body = json.dumps({"error": f"{self.limit} connections are open, this server's limit (loadgen serve "
                                    "--max-connections): try again shortly"}).encode() + b"\n"
        head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                "\r\nRetry-After: 5\r\nConnection: close\r\n\r\n").encode()
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(head + body)
        transport.close()


class CappedSite(web.BaseSite):
    """aiohttp's TCPSite with the cap, and a TLS handshake bounded by ``HANDSHAKE_S``."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, max_connections: int, *,
                 ssl_context: Any = None) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self.max_connections = max_connections
        self.cap: ConnectionCap | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self.cap = ConnectionCap(server, self.max_connections)
        self._server = await asyncio.get_running_loop().create_server(
            self.cap, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            ssl_handshake_timeout=HANDSHAKE_S if self._ssl_context else None)
