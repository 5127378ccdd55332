"""A lean HTTP/1.1 client for the hot path: asyncio Protocols, llhttp (httptools), keep-alive.

A full client (aiohttp's ClientSession) spends most of a request's CPU on features a load
generator does not need. This one sends one prebuilt request (any method, fixed headers,
an optional body) over persistent connections, plain or TLS (SNI, a CA file or no
verification), and parses responses with llhttp, so the generator stays cheaper than the
mesh it measures. It handles Content-Length, chunked and read-until-close bodies,
``Connection: close``, connect and response timeouts, resets, malformed responses, and
a fresh-connection-per-request mode (intentions are checked when a connection is set up).

Errors are raised as :class:`RequestError` with a short ``kind``: dns_error, connect_refused,
connect_failed, connect_timeout, tls_error, timeout, reset, bad_response.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import httptools

from loadgen.errors import UsageError
from loadgen.shown import shown
from loadgen.url_userinfo import refuse_userinfo

_PRINTABLE_ASCII = "".join(map(chr, range(0x21, 0x7F)))  # left as they are in a path; the rest percent-encoded


class RequestError(Exception):
    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


@dataclass(slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    new_connection: bool  # this request opened its connection


@dataclass(frozen=True)
class TlsOptions:
    """How an https:// target is verified: a CA file (default: the system's trust store), or
    not at all (``insecure``). ``server_name`` overrides the SNI / verified host name."""

    cacert: str | None = None
    insecure: bool = False
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        """The client context; a CA file that cannot be read is one line (exit 2)."""
        if self.cacert is not None and not Path(self.cacert).is_file():
            raise UsageError(f"--cacert {self.cacert}: no such file")
        try:
            ctx = ssl.create_default_context(cafile=self.cacert)
        except (ssl.SSLError, OSError) as exc:
            raise UsageError(f"--cacert {self.cacert} is not a PEM CA certificate ({exc})") from None
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    path: str  # with query
    scheme: str = "http"

    @classmethod
    def parse(cls, url: str, source: str = "the URL") -> Endpoint:
        """The parts of ``url`` (given by ``source``, e.g. --target), or one line (exit 2)."""
        refuse_userinfo(url, source)  # first: the messages below echo the URL
        try:
            parts = urlsplit(url)
            port = parts.port  # raises on a port that is not a number in 0-65535
        except ValueError as exc:
            raise UsageError(f"{shown(url)} is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"{shown(url)} is not an http:// or https:// URL like http://127.0.0.1:3000/hello_a")
        if any(c.isspace() or ord(c) < 0x20 for c in url):
            raise UsageError(f"{shown(url)} contains whitespace or control characters")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        # The request line is ASCII (RFC 3986): a non-ASCII path or query is sent percent-encoded
        # as UTF-8 (/héllo -> /h%C3%A9llo), as browsers and curl do, never as raw latin-1 bytes.
        path = quote(path, safe=_PRINTABLE_ASCII)
        host = parts.hostname
        if not host.isascii():
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise UsageError(f"{shown(url)}: its host name is not a valid internationalized name") from None
        return cls(host, port or (443 if parts.scheme == "https" else 80), path, parts.scheme)


class _Connection(asyncio.Protocol):
    """One TCP connection; one request at a time (no pipelining)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, head: bool = False) -> None:
        self._loop = loop
        # An answer to HEAD has a Content-Length but no body; llhttp cannot be told (httptools
        # has no skip-body hook), so the message ends with its headers (see on_headers_complete).
        self._head = head
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._done: asyncio.Future[Response] | None = None
        self._reset_message()

    def _reset_message(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._header_name = b""
        self._body: list[bytes] = []
        self._status = 0
        self._headers_complete = False
        self._chunked_or_length = False
        self.got_bytes = False

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._done is None or self._done.done():
            # Bytes nobody asked for (or after a timeout): this connection cannot be trusted.
            self._abort()
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(RequestError("bad_response", str(exc)[:120]))
            self._abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            if self._headers_complete and not self._chunked_or_length and exc is None:
                # A body delimited by the end of the connection (no length, not chunked).
                self._complete()
            else:
                self._fail(RequestError("reset", str(exc) if exc else "connection closed mid-response"))

    # -- llhttp callbacks -----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").title()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_complete = True
        self._status = self._parser.get_status_code()
        self._chunked_or_length = "Content-Length" in self._headers or "chunked" in self._headers.get(
            "Transfer-Encoding", ""
        ).lower()
        if self._head:
            # No body follows; waiting for Content-Length bytes would end every HEAD in a timeout.
            # The next request gets a fresh parser, so the one left mid-message does no harm.
            self.keep_alive = self._parser.should_keep_alive()
            self._complete()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self._parser.should_keep_alive()
        self._complete()

    # -- helpers --------------------------------------------------------------------------
    def _complete(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(Response(self._status, self._headers, b"".join(self._body), False))

    def _fail(self, err: RequestError) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(err)

    def _abort(self) -> None:
        self.closed = True
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()

    def send(self, request: bytes) -> asyncio.Future[Response]:
        self._reset_message()
        self._done = self._loop.create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self._done

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass
class Client:
    """Sends one request (``method``, ``headers``, ``body``) to one URL over a pool of keep-alive
    connections (or a new one per request), plain or TLS."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    connect_timeout: float = 2.0
    new_connection: bool = False
    method: str = "GET"
    body: bytes | None = None
    tls: TlsOptions | None = None  # https:// only; None there means the system's trust store
    _idle: list[_Connection] = field(default_factory=list, init=False)
    _request: bytes = field(default=b"", init=False)

    def __post_init__(self) -> None:
        self.endpoint = Endpoint.parse(self.url)
        if not (self.method.isascii() and self.method.isalpha() and self.method.isupper()):
            raise UsageError(f"{self.method!r} is not an HTTP method (GET, POST, PUT, ...)")
        self._head = self.method == "HEAD"
        self._ssl: ssl.SSLContext | None = None
        self._server_name: str | None = None
        if self.endpoint.scheme == "https":
            tls = self.tls or TlsOptions()
            self._ssl = _shared_context(tls)  # built once: every handshake reuses it
            self._server_name = tls.server_name or self.endpoint.host
        name = f"[{self.endpoint.host}]" if ":" in self.endpoint.host else self.endpoint.host  # IPv6
        default_port = 443 if self.endpoint.scheme == "https" else 80
        host = name if self.endpoint.port == default_port else f"{name}:{self.endpoint.port}"
        # A user's Host or User-Agent replaces ours (a Host header routes on many gateways).
        given = {k.lower(): v for k, v in self.headers.items()}
        lines = [f"{self.method} {self.endpoint.path} HTTP/1.1", f"Host: {given.get('host', host)}",
                 f"User-Agent: {given.get('user-agent', 'loadgen')}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()
                  if k.lower() not in ("host", "user-agent", "content-length")]
        if self.body is not None:
            lines.append(f"Content-Length: {len(self.body)}")
        if self.new_connection:
            lines.append("Connection: close")
        self._request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (self.body or b"")

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        """A new connection: TCP, then the TLS handshake for https://, each failure named for what
        it is -- a name that does not resolve (dns_error), a refusal, a TCP connect that does not
        finish (connect_timeout), or a handshake that fails or is never answered (tls_error: a
        plain-HTTP server never answers a ClientHello), all within ``connect_timeout``."""
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        started = loop.time()
        try:
            transport, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop, self._head), self.endpoint.host, self.endpoint.port),
                self.connect_timeout,
            )
        except TimeoutError:
            raise RequestError("connect_timeout", where) from None
        except socket.gaierror as exc:  # before OSError, which it is too: no address, nothing refused
            raise RequestError("dns_error", f"{self.endpoint.host}: {exc.strerror or exc}") from None
        except ConnectionRefusedError:
            raise RequestError("connect_refused", where) from None
        except OSError as exc:  # no route, network down, ...: not a refusal
            raise RequestError("connect_failed", f"{where}: {exc.strerror or exc}") from None
        if self._ssl is None:
            return conn
        remaining = max(0.001, self.connect_timeout - (loop.time() - started))
        try:
            tls = await asyncio.wait_for(
                loop.start_tls(transport, conn, self._ssl, server_hostname=self._server_name), remaining)
        except TimeoutError:
            transport.abort()
            raise RequestError("tls_error", f"{where}: no answer to the TLS handshake within "
                                            f"{self.connect_timeout:g}s (does it speak plain HTTP?)") from None
        except ssl.SSLError as exc:
            transport.abort()
            why = getattr(exc, "verify_message", None) or exc.reason or str(exc)  # "Hostname mismatch, ..."
            raise RequestError("tls_error", f"{where}: {why}") from None
        except OSError as exc:  # closed during the handshake
            transport.abort()
            raise RequestError("tls_error", f"{where}: the connection closed during the TLS handshake "
                                            f"({exc.strerror or exc or 'no reason given'})") from None
        if tls is None:  # the connection was closed while the handshake was under way
            raise RequestError("tls_error", f"{where}: the connection closed during the TLS handshake")
        conn.transport = tls  # type: ignore[assignment]
        return conn

    async def send(self) -> Response:
        """Send the request once; the response, or :class:`RequestError`."""
        loop = asyncio.get_running_loop()
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        if conn is None:
            return await self._exchange(await self._connect(loop), opened=True, loop=loop)
        try:
            return await self._exchange(conn, opened=False, loop=loop)
        except RequestError as exc:
            if exc.kind == "reset" and not conn.got_bytes:
                # A kept-alive connection the server had already closed: not the server's
                # answer to this request. Retry once on a fresh connection.
                return await self._exchange(await self._connect(loop), opened=True, loop=loop)
            raise

    async def _exchange(self, conn: _Connection, opened: bool, loop: asyncio.AbstractEventLoop) -> Response:
        """One request on ``conn``; the connection goes back to the pool only if it can be reused."""
        done = conn.send(self._request)
        timer = loop.call_later(self.timeout, _expire, done)
        try:
            response = await done
        except RequestError:
            conn.close()
            raise
        finally:
            timer.cancel()
        response.new_connection = opened
        if self.new_connection or not conn.keep_alive or conn.closed:
            conn.close()
        else:
            self._idle.append(conn)
        return response

    # The request is fixed at construction (any method), so these are one operation; get() is
    # the original name, kept for the callers that use it.
    request = send
    get = send

    def close(self) -> None:
        for conn in self._idle:
            with contextlib.suppress(Exception):
                conn.close()
        self._idle.clear()


@functools.lru_cache(maxsize=8)
def _shared_context(tls: TlsOptions) -> ssl.SSLContext:
    """One context per TLS setting in a process: building one reads the whole trust store
    (about 25 ms), and a closed-loop run makes a Client per connection (--concurrency 1000
    would spend 25 s before its first request). A context is safe to share between them."""
    return tls.context()


def _expire(done: asyncio.Future[Response]) -> None:
    if not done.done():
        done.set_exception(RequestError("timeout", "no complete response in time"))
