"""`loadgen serve` and slow clients: each is bounded in time (headers trickled byte by byte are cut
at the keep-alive timeout counted from the connection's start, a trickled body at --body-timeout),
their number by --max-connections (one more is answered 503 at once, reading nothing), and the
server keeps answering others and running its canaries meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import httpx

from loadgen.serve.app import ServeSettings
from loadgen.serve.runs import Runs
from tests.unit.serve_in_thread import serving

DEADLINE_S = 30  # a bound on waiting for the server, not a timed assertion


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


@contextlib.contextmanager
def slow_clients(port: int, n: int) -> Iterator[list[socket.socket]]:
    """``n`` connections that each sent the start of a request's headers and nothing more."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) for _ in range(n)]
    try:
        for sock in socks:
            sock.sendall(b"POST /v1/canaries HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        yield socks
    finally:
        for sock in socks:
            sock.close()


def closed_by_server(sock: socket.socket, trickle: bytes) -> bool:
    """Send ``trickle`` a byte at a time (20 a second) until the server closes the connection;
    False if it never did."""
    for byte in trickle:
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # reset: closed
            return True
        sock.settimeout(0.05)
        try:
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_headers_trickled_byte_by_byte_are_cut_while_others_are_served():
    with serving(keepalive_timeout=0.5) as base, httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        with socket.create_connection(("127.0.0.1", port_of(base)), timeout=DEADLINE_S) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            assert client.get("/healthz").text == "ok\n"  # answered while the slow one hangs
            # Bytes keep coming, yet the headers' deadline counts from the connection's start: it is cut
            # within the 600 bytes (30 s) it could trickle.
            assert closed_by_server(slow, b"X-Slow: " + b"a" * 600)
        assert client.get("/healthz").text == "ok\n"


def test_a_body_trickled_byte_by_byte_is_cut_at_the_body_timeout_and_starts_nothing():
    runs = Runs(max_runs=4)
    with serving(ServeSettings(body_timeout=0.3), runs) as base, \
            socket.create_connection(("127.0.0.1", port_of(base)), timeout=DEADLINE_S) as slow:
        slow.sendall(b"POST /v1/canaries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")
        answer = b""
        for _ in range(600):  # a space every 50 ms: each read gets a byte, the whole body never comes
            slow.sendall(b" ")
            slow.settimeout(0.05)
            with contextlib.suppress(TimeoutError):
                answer = slow.recv(4096)
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within 0.3 s" in answer
        assert runs.running() == [] and runs.with_metrics() == []


def test_connections_over_the_cap_are_refused_at_once_and_open_ones_are_still_served():
    runs = Runs(max_runs=4)
    with serving(runs=runs, max_connections=4, keepalive_timeout=DEADLINE_S) as base, \
            httpx.Client(base_url=base, timeout=DEADLINE_S) as client:
        assert client.get("/healthz").status_code == 200  # the client's pooled connection: one of the 4
        with slow_clients(port_of(base), 3):  # three slow ones fill the rest
            with socket.create_connection(("127.0.0.1", port_of(base)), timeout=DEADLINE_S) as extra:
                extra.settimeout(DEADLINE_S)
                refused = extra.recv(4096)  # answered before it sent anything, then closed
                assert extra.recv(4096) == b""
            assert refused.startswith(b"HTTP/1.1 503"), refused[:200]
            assert b"--max-connections" in refused and b"Retry-After: 5" in refused
            assert client.get("/healthz").status_code == 200  # an open connection is still served
        # The slow ones gone, new connections are served again (once the server has seen them close).
        deadline = time.monotonic() + DEADLINE_S
        while True:
            with httpx.Client(base_url=base, timeout=DEADLINE_S) as fresh, contextlib.suppress(httpx.TransportError):
                if fresh.get("/healthz").status_code == 200:
                    break
            assert time.monotonic() < deadline, "new connections were still refused"
            time.sleep(0.05)
        assert runs.running() == []


def test_connections_in_their_tls_handshake_count_until_made_or_past_the_handshake_timeout():
    """Accepted connections aiohttp has not been handed yet (a TLS handshake in progress) count too, so
    clients that connect and never say hello cannot get past the cap; one that never completes its
    handshake is forgotten after ``handshake_s`` (asyncio closes it then)."""
    from loadgen.serve.connections import ConnectionCap

    class Server:  # the two things ConnectionCap uses of aiohttp's web.Server
        def __init__(self) -> None:
            self.connections: list[object] = []

        def connection_made(self, handler: object, _transport: object) -> None:
            self.connections.append(handler)

        def __call__(self) -> object:
            return object()

    server = Server()
    cap = ConnectionCap(server, limit=2, handshake_s=60)  # type: ignore[arg-type]
    first, _second = cap(), cap()  # accepted, handshakes in progress
    assert isinstance(cap(), asyncio.Protocol)  # the third is refused (a _Refused protocol; handlers are not)
    server.connection_made(first, None)  # through the cap's hook: counted once, as aiohttp's connection
    assert cap.live() == 2
    server.connections.remove(first)  # it closed
    assert cap.live() == 1 and not isinstance(cap(), asyncio.Protocol)
    cap.handshake_s = 0.0
    time.sleep(0.01)  # only so that both handshakes are older than 0 s
    assert cap.live() == 0
