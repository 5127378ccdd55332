"""`loadgen run` bad input, without the mesh: one line, exit 2 (usage) or 4 (unreachable)."""

import json
import os
import socket
import subprocess
import sys
import threading

import pytest


def run(*args, tmp_path):
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    return subprocess.run([sys.executable, "-m", "loadgen.cli", "run", *args, "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("--stage", "basic", "--rate", "0"), 2, "rates must be more than 0"),
        (("--stage", "basic", "--rate", "-5"), 2, "rates must be more than 0"),
        (("--stage", "basic", "--duration", "abc"), 2, "'abc' is not a duration"),
        (("--stage", "nope"), 2, "unknown stage 'nope'"),
        ((), 2, "give --stage STAGE"),
        (("--all-stages", "--stage", "basic"), 2, "do not combine"),
        (("--target", "http://127.0.0.1:1/hello_a"), 4, "is unreachable"),
        (("--target", "ftp://127.0.0.1/x"), 2, "is not an http:// or https:// URL"),
        # Checked before the local mesh would be brought up (issue 13).
        (("--stage", "basic", "--run-id", "../../x"), 2, "must be one directory name"),
        (("--stage", "basic", "--record", "/proc/loadgen-no/rec.jsonl"), 2, "cannot write"),
        (("--stage", "basic", "--rate", "nan"), 2, "--rate"),
        (("--stage", "basic", "--header", "Content-Length: 5"), 2, "Content-Length"),
        (("--target", "http://[::1/"), 2, "is not a valid URL"),
    ],
)
def test_bad_input(args, code, needle, tmp_path):
    proc = run(*args, tmp_path=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_target_answering_garbage_is_one_line_exit_4(tmp_path):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve():
        try:
            while True:
                conn, _ = server.accept()
                conn.recv(4096)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
                conn.close()
        except OSError:
            pass

    threading.Thread(target=serve, daemon=True).start()
    try:
        proc = run("--target", f"http://127.0.0.1:{port}/hello_a", "--duration", "1s", tmp_path=tmp_path)
    finally:
        server.close()
    assert proc.returncode == 4, proc.stderr
    assert "does not answer HTTP/1.1" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# -- the request options (--method, --data, --cacert, --insecure, --subset-from) -------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--stage", "basic", "--subset-from", "xml:a"), "give auto, header:NAME, json:PATH"),
        (("--stage", "basic", "--subset-from", "header:"), "give auto, header:NAME, json:PATH"),
        (("--stage", "basic", "--subset-from", "json:"), "give auto, header:NAME, json:PATH"),
        (("--stage", "basic", "--data", "@/nonexistent/body.json"), "--data @/nonexistent/body.json: cannot read"),
        (("--target", "https://127.0.0.1:1/x", "--cacert", "/nonexistent/ca.pem"),
         "--cacert /nonexistent/ca.pem: no such file"),
        (("--stage", "basic", "--insecure"), "are for an https:// --target"),
        (("--target", "http://127.0.0.1:1/x", "--cacert", __file__), "are for an https:// --target"),
        (("--stage", "basic", "--method", "G T"), "is not an HTTP method"),
    ],
)
def test_bad_request_options_are_one_line_exit_2_before_anything_starts(args, needle, tmp_path):
    proc = run(*args, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_request_options_build_the_plans_request():
    from loadgen.commands.request_options import RequestOptions, build_request_options
    from loadgen.load.engine import LoadPlan

    built = build_request_options(None, "a=1", None, False, "json:upstream.app_id", "http://h/x")
    assert (built.method, built.body, built.tls, built.identity.name) == ("POST", b"a=1", None, "upstream.app_id")
    assert build_request_options("put", None, None, True, "envoy", "https://h/x").tls.insecure
    plan = built.apply(LoadPlan(url="http://h/x", rate=1))
    assert (plan.method, plan.body, plan.identity) == ("POST", b"a=1", built.identity)
    assert RequestOptions().apply(plan).method == "GET"
    request = plan.client()._request  # the bytes every request sends, built once
    assert request.startswith(b"POST /x HTTP/1.1\r\n") and request.endswith(b"Content-Length: 3\r\n\r\na=1")


def test_an_https_target_runs_with_the_request_options_and_a_wrong_ca_is_exit_4(tmp_path):
    from tests.unit.test_client_tls import echo_server, make_certs

    (tmp_path / "srv").mkdir()
    with echo_server(tmp_path / "srv") as server:
        proc = run("--target", server.url(), "--cacert", str(server.ca), "--rate", "40", "--duration", "1s",
                   "--data", "hi", "--header", "Content-Type: text/plain", "--subset-from", "header:X-Backend",
                   "--new-connections", "--no-plots", "--json", tmp_path=tmp_path)
        assert proc.returncode == 0, proc.stderr
        (stage,) = json.loads(proc.stdout)["stages"]
        assert stage["requests"]["errors"] == 0 and list(stage["split"]) == ["v2"], stage
        (tmp_path / "other").mkdir()
        other_ca, _, _ = make_certs(tmp_path / "other", "other")
        proc = run("--target", server.url(), "--cacert", str(other_ca), "--duration", "1s", tmp_path=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert "TLS handshake failed" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
