"""`loadgen run` bad input, without the mesh: one line, exit 2 (usage) or 4 (unreachable)."""

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
