"""A stand-in for Consul, a target and an Envoy admin at once: an HTTP server on port 0 that
records every request it gets and answers each with a 500 (or, for a path given in ``answers``,
that JSON), so a command that reaches it stops soon after. A test of "nothing is sent before every
option is checked" asserts it saw nothing; one of "nothing is written" that it saw no write."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
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

    @property
    def writes(self) -> list[str]:
        return [r for r in self.seen if not r.startswith(("GET ", "HEAD "))]


@contextmanager
def request_recorder(answers: Mapping[str, object] | None = None) -> Iterator[RequestRecorder]:
    """``answers``: a GET of one of these paths (query left out) is answered 200 with its JSON."""
    recorder: RequestRecorder

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            recorder.seen.append(f"{self.command} {self.path}")
            path = self.path.partition("?")[0]
            known = self.command == "GET" and answers is not None and path in answers
            body = json.dumps(answers[path]).encode() if known and answers else b'{"error": "stand-in"}'
            self.send_response(200 if known else 500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _record

        def log_message(self, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder = RequestRecorder(server.server_address[1])
    # shutdown() waits for serve_forever's next poll: 0.5 s by default, on every test that uses this.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
