"""wait_hello_a counts what it saw, so a stage that is not live says which answers came back."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loadgen.mesh.liveness import seen_app_ids, wait_hello_a


@pytest.fixture
def hello_a():
    """A loopback stand-in for service-a whose v2 leg fails: APP_ID 1 twice, then a 503."""
    answers = itertools.cycle([(200, "1"), (200, "1"), (503, None)])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, app_id = next(answers)
            body = json.dumps({"app_id": app_id} if app_id else {"error": "upstream"}).encode()
            self.send_response(status)
            if app_id:
                self.send_header("X-App-Id", app_id)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hello_a"
    server.shutdown()


def test_a_missing_app_id_times_out_with_every_answer_counted(hello_a):
    live, last, answers = wait_hello_a(hello_a, "ok", ("1", "2"), timeout=0.6)
    assert not live and last is not None
    assert set(answers) == {"APP_ID 1", "HTTP 503"} and seen_app_ids(answers) == {"1"}
    assert answers["APP_ID 1"] >= 2 * answers["HTTP 503"] - 2


def test_live_when_every_expected_app_id_answered(hello_a):
    live, _last, answers = wait_hello_a(hello_a, "ok", ("1",), timeout=5, consecutive=2)
    assert live and seen_app_ids(answers) == {"1"}
