"""Where `loadgen serve` may listen: loopback by default; elsewhere only with a token and TLS; the
token compared in constant time and never printed. One subprocess test runs the command itself
(TLS, the token, SIGTERM): that is how users run it."""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys

import httpx
import pytest

from loadgen.errors import UsageError
from loadgen.serve.body import TargetAllowList
from loadgen.serve.listen import check_bearer, listen_settings, parse_listen
from tests.unit.test_client_tls import make_certs

TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(("listen", "env", "tls", "needle"), [
    ("0.0.0.0:8089", {}, False, "needs a token (LOADGEN_API_TOKEN) and TLS"),
    ("0.0.0.0:8089", {"LOADGEN_API_TOKEN": TOKEN}, False, "needs TLS"),
    ("10.0.0.5:8089", {}, True, "needs a token"),
    ("0.0.0.0:8089", {"LOADGEN_API_TOKEN": "short"}, True, "shorter than 16"),
    ("127.0.0.1:8089", {"LOADGEN_API_TOKEN": " "}, False, "set but empty"),
    ("127.0.0.1:8089", {"LOADGEN_API_TOKEN": "a b"}, False, "without spaces"),
    ("8089", {}, False, "is not HOST:PORT"),
    ("example.com:8089", {}, False, "give an IP address"),
    ("127.0.0.1:99999", {}, False, "is not HOST:PORT"),
])
def test_listening_beyond_loopback_needs_a_token_and_tls(listen, env, tls, needle, tmp_path):
    cert = key = None
    if tls:
        _ca, cert, key = map(str, make_certs(tmp_path))
    with pytest.raises(UsageError, match=re.escape(needle)) as caught:
        listen_settings(listen, cert, key, env=env)
    assert TOKEN not in caught.value.message


def test_loopback_needs_nothing_and_elsewhere_works_with_both(tmp_path):
    assert listen_settings("127.0.0.1:8089", None, None, env={}).loopback
    assert listen_settings("[::1]:0", None, None, env={}).host == "::1"
    _ca, cert, key = map(str, make_certs(tmp_path))
    there = listen_settings("0.0.0.0:8089", cert, key, env={"LOADGEN_API_TOKEN": TOKEN})
    assert not there.loopback and there.tls is not None and TOKEN not in repr(there)
    assert parse_listen("localhost:0") == ("localhost", 0)


def test_bearer_check():
    assert check_bearer(f"Bearer {TOKEN}", TOKEN) and check_bearer(f"bearer  {TOKEN} ", TOKEN)
    assert not any(check_bearer(h, TOKEN) for h in (None, "", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x",
                                                     "Bearer ", "Bearer \udcff"))


def test_the_target_allow_list():
    allow = TargetAllowList(("http://service-a:3000/", "10.0.0.0/8", "canary.internal"))
    assert allow.allows("http://service-a:3000/hello_a") and allow.allows("http://10.2.3.4:3000/x")
    assert allow.allows("https://canary.internal/hello_a") and allow.allows("10.0.0.9:19000")
    assert not allow.allows("http://service-a:3001/hello_a") and not allow.allows("http://11.0.0.1/")
    assert not allow.allows("http://canary.internal.evil/") and TargetAllowList().allows("http://anything/")


@pytest.mark.parametrize(("entry", "url", "allowed"), [
    # A prefix written without its trailing slash is not a text prefix of other hosts or ports.
    ("http://service-a", "http://service-a.evil.example/hello_a", False),
    ("http://10.0.0.1:3000", "http://10.0.0.1:30001/hello_a", False),
    ("http://service-a:3000", "http://service-a:3000@evil.example/hello_a", False),
    ("http://service-a:3000", "http://service-a:3000/hello_a", True),
    # Paths by whole segments, as the target's server resolves them.
    ("http://service-a:3000/api", "http://service-a:3000/api-admin", False),
    ("http://service-a:3000/api", "http://service-a:3000/api/hello_a", True),
    ("http://service-a:3000/api/", "http://service-a:3000/api/../admin", False),
    ("http://service-a:3000/api/", "http://service-a:3000/api/%2e%2e/admin", False),
    # Same origin however it is spelled; a different scheme is a different origin.
    ("http://service-a:3000/", "HTTP://Service-A:3000/hello_a", True),
    ("http://service-a/", "http://service-a:80/hello_a", True),
    ("https://service-a/", "http://service-a:443/hello_a", False),
    ("http://service-a:3000/", "service-a:3000", True),  # envoy_admin is host:port
    ("http://service-a:3000/", "http://service-a:bad/", False),
])
def test_a_url_prefix_allows_its_own_origin_and_the_paths_under_it(entry, url, allowed):
    assert TargetAllowList((entry,)).allows(url) is allowed


def test_serve_over_tls_with_a_token_then_sigterm(tmp_path):
    ca, cert, key = make_certs(tmp_path)
    env = {**os.environ, "LOADGEN_API_TOKEN": TOKEN, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", "serve", "--listen", "127.0.0.1:0", "--tls-cert",
                             str(cert), "--tls-key", str(key)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        match = re.search(r"listening on (https://127\.0\.0\.1:\d+) \(token required", line)
        assert match, line
        trust = ssl.create_default_context(cafile=str(ca))
        with httpx.Client(base_url=match.group(1), verify=trust, timeout=10) as client:
            assert client.get("/v1/canaries/x").status_code == 401
            assert client.get("/v1/canaries/x", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404
            bad = client.post("/v1/canaries", json={"expect": "85/15", "record": "/tmp/x"},
                              headers={"Authorization": f"Bearer {TOKEN}"})
            assert bad.status_code == 400
        proc.send_signal(signal.SIGTERM)
        out, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "loadgen serve: stopped" in rest
    assert TOKEN not in line + out + rest  # nor in the access log lines


def test_the_server_log_takes_info_from_its_own_lines_only_not_every_request_a_canary_makes(tmp_path):
    """httpx logs each request at INFO: with the root logger at INFO the server's log got a line for
    every Consul read each canary made (the integration test saw ~20 a run). Here `serve` configures
    its log and stops at a port already taken (exit 5), in-process; the root logger is emptied first
    so that its basicConfig takes effect, and restored after."""
    import logging
    import socket

    from tests.unit.cli_in_process import loadgen_in_process

    root = logging.getLogger()
    names = ("httpx", "loadgen", "loadgen.serve", "aiohttp.access")
    saved = (root.handlers[:], root.level, {n: logging.getLogger(n).level for n in names})
    root.handlers[:] = []
    try:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            proc = loadgen_in_process("serve", "--listen", f"127.0.0.1:{port}", tmp_path=tmp_path,
                                      env={"LOADGEN_API_TOKEN": None, "CONSUL_HTTP_ADDR": None})
        enabled = {n: logging.getLogger(n).isEnabledFor(logging.INFO) for n in names}
    finally:
        root.handlers[:] = saved[0]  # drops the handler serve's basicConfig added
        root.setLevel(saved[1])
        for n, level in saved[2].items():
            logging.getLogger(n).setLevel(level)
    assert proc.returncode == 5 and f"cannot listen on 127.0.0.1:{port}" in proc.stderr, proc.stderr
    assert enabled == {"httpx": False, "loadgen": True, "loadgen.serve": True, "aiohttp.access": True}
