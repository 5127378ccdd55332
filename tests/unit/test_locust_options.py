"""The Locust plugin checks every option before the first user spawns (issue 25, item 10): a bad
--expect/--map/--tolerance/--canary-json is one line and exit 2 at start, not after the whole -t;
and the local sidecar's Envoy admin is read only when the test is aimed at the local mesh."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from loadgen.errors import ExitCode, UsageError
from loadgen.locust_options import LOCAL_ENVOY_ADMIN, aimed_at_local_mesh, settings_from

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfiles" / "mesh.py"
RUN_TIME_S = 30  # -t of the subprocess runs: a bad option must end the process well before it


def _opts(**given: object) -> SimpleNamespace:
    """Locust's parsed options as the plugin's parser leaves them by default."""
    defaults: dict[str, object] = {"expect": "", "tolerance": "2", "confidence": 99.0, "map": "",
                                   "consul": "127.0.0.1:8500", "envoy_admin": None, "canary_json": "",
                                   "canary_junit": "", "stop_on_verdict": False, "json_file": None,
                                   "html_file": None, "logfile": None}
    return SimpleNamespace(**{**defaults, **given})


REMOTE = "http://10.0.0.5:3000"


@pytest.mark.parametrize(("given", "needle"), [
    ({"expect": "85/1"}, "add up to"),
    ({"expect": "eighty/20"}, "not a number"),
    ({"expect": "85/15", "tolerance": "nan"}, "--tolerance"),
    ({"expect": "85/15", "tolerance": "two"}, "--tolerance"),
    ({"expect": "85/15", "confidence": float("nan")}, "--confidence"),
    ({"expect": "85/15", "confidence": 100.0}, "--confidence"),
    ({"expect": "85/15", "map": "1:v1"}, "1:v1"),
    ({"map": " "}, "--map is empty"),
    ({"expect": "85/15", "envoy_admin": "sidecar"}, "--envoy-admin"),
    ({"expect": "85/15", "envoy_admin": "127.0.0.1:http"}, "--envoy-admin"),
    ({"latency": "p99"}, "give the split with --expect"),
    ({"expect": "85/15", "latency": "p100"}, "is not a quantile"),
    ({"expect": "85/15", "latency": "p99", "latency_margin": "ten"}, "is not a latency margin"),
    ({"expect": "85/15", "error_margin": "nan"}, "--error-margin"),
    ({"expect": "85/15", "map": "1=v1,2=v2", "latency": "p99", "baseline": "v3"}, "--baseline 'v3'"),
])
def test_bad_options_are_one_usage_error(given, needle):
    with pytest.raises(UsageError) as caught:
        settings_from(_opts(**given), REMOTE, local_mesh=False)
    assert needle in caught.value.message and "\n" not in caught.value.message


def test_outputs_are_checked_at_start(tmp_path):
    with pytest.raises(UsageError, match="is a directory"):
        settings_from(_opts(expect="85/15", canary_json=str(tmp_path)), REMOTE, local_mesh=False)
    same = str(tmp_path / "out.json")
    with pytest.raises(UsageError, match="same file"):
        settings_from(_opts(expect="85/15", canary_json=same, canary_junit=same), REMOTE, local_mesh=False)
    with pytest.raises(UsageError, match="same file"):  # Locust adds .json to its own --json-file
        settings_from(_opts(expect="85/15", canary_json=same, json_file=str(tmp_path / "out")), REMOTE,
                      local_mesh=False)


def test_host_must_be_a_base_url():
    with pytest.raises(UsageError):
        settings_from(_opts(expect="85/15"), "ftp://10.0.0.5:3000", local_mesh=False)
    with pytest.raises(UsageError, match="base URL"):
        settings_from(_opts(expect="85/15"), "http://10.0.0.5:3000/hello_a", local_mesh=False)


@pytest.mark.parametrize(("host", "local_mesh", "admin"), [
    ("http://127.0.0.1:3000", True, LOCAL_ENVOY_ADMIN),
    ("http://localhost:3000/", True, LOCAL_ENVOY_ADMIN),
    ("http://127.0.0.1:3000", False, None),  # nothing is up locally: no sidecar to read
    (REMOTE, True, None),  # another deployment: the local sidecar says nothing about its proxies
    ("http://127.0.0.1:3001", True, None),
    ("https://127.0.0.1:3000", True, None),
])
def test_envoy_admin_defaults_to_the_local_sidecar_only_for_the_local_mesh(host, local_mesh, admin):
    assert settings_from(_opts(expect="85/15"), host, local_mesh=local_mesh).envoy_admin == admin


def test_envoy_admin_given_is_kept_and_empty_means_none():
    assert settings_from(_opts(envoy_admin="http://10.0.0.5:19000/"), REMOTE, local_mesh=True).envoy_admin \
        == "10.0.0.5:19000"
    assert settings_from(_opts(envoy_admin=""), "http://127.0.0.1:3000", local_mesh=True).envoy_admin is None


def test_aimed_at_local_mesh():
    assert aimed_at_local_mesh("http://127.0.0.1:3000") and aimed_at_local_mesh("http://localhost:3000")
    assert not aimed_at_local_mesh("http://127.0.0.1:99999") and not aimed_at_local_mesh(REMOTE)


# -- the real thing: `locust --headless -t 30s` with a bad option ---------------------------------
class _Counting(BaseHTTPRequestHandler):
    """A stand-in target answering APP_ID 1 to GET /hello_a (404 to anything else, as a Consul
    without the service would), counting every request."""

    count = 0

    def do_GET(self) -> None:
        type(self).count += 1
        ok = self.path == "/hello_a"
        body = b'{"app_id": "1"}' if ok else b"not found"
        self.send_response(200 if ok else 404)
        self.send_header("X-App-Id", "1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def counting_server():
    handler = type("Handler", (_Counting,), {"count": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("bad", [
    ("--expect", "85/1", "--map", "1=v1,2=v2"),  # (the other bad options take the same path: tests above)
    ("--expect", "85/15", "--map", "1=v1,2=v2", "--canary-json", "/tmp"),
])
def test_headless_locust_refuses_a_bad_option_before_any_request(bad, counting_server, tmp_path):
    port, handler = counting_server
    started = time.monotonic()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("locust")), "-f", str(LOCUSTFILE), "--headless", "-u", "2", "-r", "2",
         "-t", f"{RUN_TIME_S}s", "--host", f"http://127.0.0.1:{port}", "--consul", f"127.0.0.1:{port}",
         "--only-summary", *bad],
        capture_output=True, text=True, timeout=RUN_TIME_S * 3, cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert proc.returncode == ExitCode.USAGE, proc.stderr[-2000:]
    assert elapsed < RUN_TIME_S, f"exit 2 came only after the run ({elapsed:.0f} s)"
    assert handler.count == 0, "requests reached the target or Consul before the options were refused"
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if "loadgen:" in line]) == 1, proc.stderr[-2000:]


def test_the_comparison_options_are_kept_when_given():
    settings = settings_from(_opts(expect="85/15", latency=" p99 ", latency_margin="5ms", error_margin="",
                                   baseline=None), REMOTE)
    assert (settings.latency, settings.latency_margin, settings.error_margin, settings.baseline) == \
        ("p99", "5ms", None, None)
    assert settings.compares and not settings_from(_opts(expect="85/15"), REMOTE).compares
