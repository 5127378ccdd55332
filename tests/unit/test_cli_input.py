"""Bad input gets one clear line on stderr and a distinct exit code, never a traceback.

These run the real console script in a subprocess (the way users run it), with a
private run directory; none of them needs the mesh.
"""

import os
import subprocess
import sys

import pytest


def run(*args: str, tmp_path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    return subprocess.run([sys.executable, "-m", "loadgen.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("up", "--stage", "canary"), 2, "unknown stage 'canary'; known stages: basic, intentions"),
        (("up",), 2, "Missing option '--stage'"),
        (("up", "--stage", "basic", "--runtime", "kubernetes"), 2, "Invalid value for '--runtime'"),
        (("frobnicate",), 2, "No such command 'frobnicate'"),
        (("logs", "consul"), 2, "no component 'consul'"),
        (("split", "-n", "0"), 2, "Invalid value for '-n'"),
    ],
)
def test_bad_input_one_line(args, code, needle, tmp_path):
    proc = run(*args, tmp_path=tmp_path)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_status_with_nothing_up(tmp_path):
    proc = run("status", tmp_path=tmp_path)
    assert proc.returncode == 4
    assert "no local mesh is running" in proc.stdout


def test_down_with_nothing_up_is_fine(tmp_path):
    proc = run("down", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "nothing to stop" in proc.stderr


def test_help_lists_commands_and_exit_codes(tmp_path):
    proc = run("--help", tmp_path=tmp_path)
    assert proc.returncode == 0
    for word in ("up", "down", "status", "doctor", "toolchain", "Exit codes"):
        assert word in proc.stdout
