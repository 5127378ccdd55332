"""A stand-in target on a loopback port 0: each request gets what ``answer(n)`` says (n counts from 0).

``answer`` returns (status, APP_ID or None), or one of the faults ``"cut"`` (the connection is
closed without an answer) and ``"garbage"`` (bytes that are not HTTP).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = tuple[int, "str | None"] | str


@contextlib.contextmanager
def standin_target(answer: Callable[[int], Answer], path: str = "/hello_a") -> Iterator[str]:
    counter = itertools.count()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with lock:
                n = next(counter)
            what = answer(n)
            if what == "cut":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if what == "garbage":
                self.close_connection = True
                self.wfile.write(b"this is not HTTP\r\n\r\n")
                return
            status, app_id = what
            body = json.dumps({"app_id": app_id} if app_id is not None else {"error": "upstream"}).encode()
            self.send_response(status)
            if app_id is not None:
                self.send_header("X-App-Id", app_id)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_HEAD = do_GET

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
