"""Conditions a user can cause in the probes end as one line and a LoadgenError's code, never 70."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from loadgen.cli import cli
from loadgen.errors import ExitCode, LoadgenError, UnreachableError
from loadgen.load.sample import Sample
from loadgen.probes import intentions
from loadgen.probes.intentions import IntentionProbe
from loadgen.probes.watch import Observation

URL = "http://127.0.0.1:1/hello_b"


class _Traffic:
    """Stands in for ProbeTraffic: a steady stream of one kind of answer, sent 'now'."""

    def __init__(self, ok: bool, error: str | None) -> None:
        self.ok, self.error = ok, error

    def since(self, t0: float) -> list[Observation]:
        now = time.perf_counter()
        sample = Sample(t=0.0, status=200 if self.ok else None, app_id="1" if self.ok else None, latency_ms=1.0,
                        error=self.error)
        return [Observation("new", now - i * 0.002, sample) for i in range(50) if now - i * 0.002 >= t0]


@pytest.fixture(autouse=True)
def _short_phases(monkeypatch):
    monkeypatch.setattr(intentions, "PHASE_MAX_S", 0.3)


def test_traffic_that_never_succeeds_is_unreachable_not_a_bug():
    probe = IntentionProbe(consul=None, sidecar_admin={}, upstream=URL)  # type: ignore[arg-type]
    with pytest.raises(UnreachableError) as caught:
        probe._settle(_Traffic(ok=False, error="connect"), "ok")
    assert isinstance(caught.value, LoadgenError) and caught.value.code == ExitCode.UNREACHABLE == 4
    message = str(caught.value)
    assert "\n" not in message and URL in message and "did not steadily succeed" in message
    assert "0 ok, 0 denied, 50 error" in message


def test_a_deny_that_never_bites_is_unreachable_too():
    probe = IntentionProbe(consul=None, sidecar_admin={}, upstream=URL)  # type: ignore[arg-type]
    with pytest.raises(UnreachableError) as caught:
        probe._settle(_Traffic(ok=True, error=None), "denied")
    assert caught.value.code == ExitCode.UNREACHABLE
    assert "the deny did not stop new connections" in str(caught.value) and "50 ok" in str(caught.value)


def test_settled_traffic_returns_at_once():
    probe = IntentionProbe(consul=None, sidecar_admin={}, upstream=URL)  # type: ignore[arg-type]
    start = time.perf_counter()
    probe._settle(_Traffic(ok=False, error="reset"), "denied")  # a reset is how a tcp deny looks
    assert time.perf_counter() - start < 0.3


class _FakeConsul(BaseHTTPRequestHandler):
    """Accepts every config write and delete, as a Consul agent would, and has no entry to read."""

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"true"
        self.send_response(200)
        self.send_header("X-Consul-Index", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_consul():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeConsul)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cli_says_one_line_and_exits_4_when_traffic_never_settles(fake_consul, tmp_path, monkeypatch):
    monkeypatch.setattr("loadgen.interrupts.install", lambda: None)  # leave pytest's SIGTERM alone
    result = CliRunner().invoke(cli, ["intentions", "--repeat", "1", "--target", URL, "--consul", fake_consul,
                                      "--envoy-admin", "b1=127.0.0.1:1", "--plots", str(tmp_path)])
    assert result.exit_code == ExitCode.UNREACHABLE, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("loadgen: error: requests to " + URL) and "Traceback" not in result.output


@pytest.mark.parametrize(("args", "needle"), [
    (("--json", "-", "--junit", "-"), "cannot both go to stdout"),
    (("--junit", "/proc/loadgen-no/x.xml"), "cannot write /proc/loadgen-no/x.xml"),
])
def test_intentions_outputs_are_checked_before_anything_changes(args, needle, monkeypatch):
    monkeypatch.setattr("loadgen.interrupts.install", lambda: None)
    result = CliRunner().invoke(cli, ["intentions", "--repeat", "1", *args])
    assert result.exit_code == ExitCode.USAGE, (result.stdout, result.stderr)
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
