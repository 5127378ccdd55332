"""A stand-in HTTP agent on a free loopback port: answers each path prefix as told and keeps the
headers it was sent. Enough for a client's side of the contract (what it sends, what it prints
when the agent refuses); Consul's own behaviour needs the real agent (tests/integration)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandInAgent:
    def __init__(self, answers: dict[str, tuple[int, bytes]], default: tuple[int, bytes] = (404, b"")) -> None:
        self.answers = answers  # path prefix -> (status, body); the longest matching prefix wins
        self.default = default
        self.seen: list[dict[str, str]] = []  # each request's headers
        self.address = ""

    def answer(self, path: str) -> tuple[int, bytes]:
        found = [p for p in self.answers if path.startswith(p)]
        return self.answers[max(found, key=len)] if found else self.default


@contextlib.contextmanager
def stand_in_agent(answers: dict[str, tuple[int, bytes]], default: tuple[int, bytes] = (404, b"")
                   ) -> Iterator[StandInAgent]:
    agent = StandInAgent(answers, default)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            agent.seen.append(dict(self.headers))
            status, body = agent.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_DELETE = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll: shutdown() waits for it, and every test stops its agent.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    agent.address = f"127.0.0.1:{server.server_address[1]}"
    try:
        yield agent
    finally:
        server.shutdown()
        server.server_close()
