"""A stand-in for Consul, a target and an Envoy admin at once: an HTTP server on port 0 that
records every request it gets and answers each with a 500, so a command that reaches it stops
soon after. A test of "nothing is sent before every option is checked" asserts it saw nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class RequestRecorder:
    port: int
    seen: list[str] = field(default_factory=list)  # "METHOD /path" of every request, in order

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"


@contextmanager
def request_recorder() -> Iterator[RequestRecorder]:
    recorder: RequestRecorder

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            recorder.seen.append(f"{self.command} {self.path}")
            body = b'{"error": "stand-in"}'
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _record

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder = RequestRecorder(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
