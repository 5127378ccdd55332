"""`loadgen canary` checks every option before it starts anything, writes its outputs through
to what the path is, and judges replays with the same rules (issue 13). No network: a run
that got past validation would try to reach port 1 or bring a mesh up, and fail differently."""

import json
import os
import stat
import subprocess
import sys

import pytest

from tests.integration.parts import missing
from tests.unit.test_canary_cli import UNREACHABLE, _recording, run

LOCAL_MAP = ("--map", "1=v1,2=v2")


def _no_mesh_was_started(tmp_path) -> bool:
    return not (tmp_path / "run" / "state.json").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        # Without --target the local mesh would be brought up first: the split must be refused before.
        (("--expect", "85/16"), "add up to 101, not 100"),
        (("--expect", "85/15", "--map", ""), "--map is empty"),
        (("--expect", "85/15", "--json", "/proc/loadgen-no/x.json"), "cannot write"),
        (("--expect", "85/15", "--junit", "/proc/loadgen-no/x.xml"), "cannot write"),
        (("--expect", "85/15", "--record", "/proc/loadgen-no/rec.jsonl"), "cannot"),
        (("--expect", "85/15", "--header", "Content-Length: 5"), "Content-Length"),
        (("--expect", "85/15", "--header", "X-A: 1\r\nX-Injected: 2"), "--header"),
        (("--expect", "85/15", "--header", "Bad Name: 1"), "--header"),
        (("--expect", "85/15", "--method", "fixed", "--tolerance", "0.01"), "more than 10 million"),
        (("--expect", "85/15", "--json", "-", "--junit", "-"), "cannot both go to stdout"),
    ],
)
def test_bad_input_is_refused_before_anything_starts(args, needle, tmp_path):
    proc = run(*args, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert _no_mesh_was_started(tmp_path)


@pytest.mark.parametrize(
    ("target", "needle"),
    [("http://[::1/", "is not a valid URL"), ("ftp://127.0.0.1:1/hello_a", "is not an http:// or https:// URL"),
     ("http://127.0.0.1:99999/", "is not a valid URL")],
)
def test_bad_targets_are_one_line_and_exit_2_at_once(target, needle, tmp_path):
    proc = run("--expect", "85/15", "--target", target, *LOCAL_MAP, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_an_unwritable_output_is_found_before_the_target_is_tried(tmp_path):
    # The target is unreachable (exit 4 once tried): exit 2 proves the path was checked first.
    (tmp_path / "a-file").write_text("")
    proc = run("--expect", "85/15", "--target", UNREACHABLE, *LOCAL_MAP, "--json", str(tmp_path / "a-file" / "c.json"),
               tmp_path=tmp_path)
    assert proc.returncode == 2 and "cannot write" in proc.stderr, proc.stderr


def test_binary_replay_file_is_an_input_error(tmp_path):
    rec = tmp_path / "binary.jsonl"
    rec.write_bytes(bytes(range(256)) * 64)
    proc = run("--replay", str(rec), "--expect", "85/15", tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "binary.jsonl" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_outputs_are_written_through_symlinks_devices_and_fifos(tmp_path):
    rec = tmp_path / "run.jsonl"
    _recording(rec, 0.85, 20_000, seed=11)
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to("real.json")
    null = tmp_path / "mynull"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError as exc:  # a failure in CI (root), a skip on a dev machine
        missing(f"cannot mknod here: {exc}")
    proc = run("--replay", str(rec), "--expect", "85/15", "--json", str(link), "-q",
               *(("--junit", str(null)) if null else ()), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and json.loads(real.read_text())["verdict"] == "PASS"
    if null:
        assert stat.S_ISCHR(null.lstat().st_mode) and null.read_bytes() == b""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    writer = subprocess.Popen([sys.executable, "-m", "loadgen.cli", "canary", "--replay", str(rec), "--expect",
                               "85/15", "--json", str(fifo), "-q"], env=env, stderr=subprocess.PIPE, text=True)
    with fifo.open() as fh:
        body = fh.read()
    assert writer.wait(timeout=60) == 0
    assert json.loads(body)["verdict"] == "PASS" and stat.S_ISFIFO(fifo.lstat().st_mode)


def test_junit_dash_goes_to_stdout(tmp_path):
    rec = tmp_path / "run.jsonl"
    _recording(rec, 0.85, 20_000, seed=12)
    proc = run("--replay", str(rec), "--expect", "85/15", "--junit", "-", cwd=tmp_path, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("<?xml") and "<testsuite" in proc.stdout
    assert not (tmp_path / "-").exists()


def test_max_errors_zero_allows_none(tmp_path):
    rec = tmp_path / "errs.jsonl"
    _recording(rec, 0.85, 20_000, seed=13)
    error = {"t": 0.0, "status": 503, "app_id": None, "latency_ms": 1.0, "error": "http_503"}
    rec.write_text(json.dumps(error) + "\n" + rec.read_text())  # one failed request, the first
    proc = run("--replay", str(rec), "--expect", "85/15", "--max-errors", "0", "--json", "-", tmp_path=tmp_path)
    result = json.loads(proc.stdout)
    assert proc.returncode == 1 and "1 request was errors (none allowed)" in result["reason"], proc.stderr


def test_replay_warmup_is_reported_and_not_judged(tmp_path):
    rec = tmp_path / "glitch.jsonl"
    with rec.open("w") as fh:  # half a second of 502s while the sidecars connect, then a healthy 85/15
        for i in range(250):
            fh.write(json.dumps({"t": i / 500, "status": 502, "app_id": None, "latency_ms": 1.0,
                                 "error": "http_502"}) + "\n")
    body = rec.read_text()
    _recording(rec, 0.85, 20_000, seed=14)
    shifted = [json.loads(line) for line in rec.read_text().splitlines()]
    rec.write_text(body + "".join(json.dumps({**row, "t": row["t"] + 0.5}) + "\n" for row in shifted))
    judged_all = run("--replay", str(rec), "--expect", "85/15", "--json", "-", tmp_path=tmp_path)
    assert judged_all.returncode == 1 and "were errors" in json.loads(judged_all.stdout)["reason"]
    warm = run("--replay", str(rec), "--expect", "85/15", "--warmup", "0.5s", "--json", "-", tmp_path=tmp_path)
    result = json.loads(warm.stdout)
    assert warm.returncode == 0, result["reason"]
    assert result["warmup"]["requests"] == 250 and result["warmup"]["errors"] == {"http_502": 250}
    assert result["errors"] == {"http_502": 250}  # reported with the rest, just not judged
