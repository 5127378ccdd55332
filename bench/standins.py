"""Loopback stand-ins for the hostile sweep (bench/hostile_sweep.py): a target or a Consul on port
0, in a thread, answering in one of a few faulty ways and counting what reaches it.

Raw sockets rather than http.server: the faults (garbage, a cut half-way through an answer, a
connection that never answers) are below what an HTTP framework lets a handler do, and the raw
request lines are kept to tell whether a client sent non-ASCII bytes.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field

MODES = ("ok", "500", "garbage", "hang", "halfcut", "slow", "consul500")
SLOW_S = 1.0


@dataclass
class StandIn:
    """One server. ``mode``: ok (85/15 APP_IDs, keep-alive), 500 (every answer), garbage (bytes
    that are not HTTP), hang (reads, never answers), halfcut (half the answers cut off after
    its status line, at random), slow (ok after SLOW_S), consul500 (Consul's plain-text error, 500)."""

    mode: str = "ok"
    requests: int = 0
    request_lines: list[bytes] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(self.mode)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(512)
        self.port: int = self._sock.getsockname()[1]
        self._closed = threading.Event()
        self._rng = random.Random()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/hello_a") -> str:
        return f"http://{self.address}{path}"

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        buf = b""
        try:
            while not self._closed.is_set():
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                    if len(buf) > 1 << 20:
                        return
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = _content_length(head)
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                buf = buf[length:]
                with self._lock:
                    self.requests += 1
                    if len(self.request_lines) < 200:
                        self.request_lines.append(head.split(b"\r\n", 1)[0])
                if not self._answer(conn):
                    return
        except OSError:
            return
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def _answer(self, conn: socket.socket) -> bool:
        """Answer one request; False: the connection is done."""
        mode = self.mode
        if mode == "hang":
            self._closed.wait(120)
            return False
        if mode == "garbage":
            conn.sendall(b"\x00\xffnot http at all\r\n\r\n\x01\x02")
            return False
        if mode == "halfcut" and self._rng.random() < 0.5:  # any answer, the first one too
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"app_")
            return False
        if mode == "500":
            body = b'{"error": "stand-in 500"}'
            conn.sendall(_response(500, body, {}))
            return True
        if mode == "consul500":
            conn.sendall(_response(500, b"rpc error making call: stand-in Consul is failing\x1b[31m\n",
                                   {"Content-Type": "text/plain"}))
            return True
        if mode == "slow":
            time.sleep(SLOW_S)
        app_id = "1" if self._rng.random() < 0.85 else "2"
        conn.sendall(_response(200, json.dumps({"app_id": app_id}).encode(), {"X-App-Id": app_id,
                                                                             "Content-Type": "application/json"}))
        return True


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return max(0, int(value.strip()))
            except ValueError:
                return 0
    return 0


def _response(status: int, body: bytes, headers: dict[str, str]) -> bytes:
    reason = {200: "OK", 500: "Internal Server Error"}.get(status, "X")
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
