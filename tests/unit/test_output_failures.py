"""Issue 25, item 5: an output that fails never loses the verdict, the other outputs or its code.

The verdict is printed first, every other output is written even when one fails, and the code
is the verdict's -- a success whose output failed is OUTPUT_FAILED (6), a FAIL or INCONCLUSIVE
keeps its own (errors.with_output_failure). The stdout cases run `python -m loadgen.cli` as users
do: what is under test is the process's own descriptor 1.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from loadgen.errors import ExitCode, with_output_failure
from tests.unit.cli_in_process import loadgen_in_process

ROOT = Path(__file__).resolve().parents[2]
JUDGE = ("--expect", "85/15", "--map", "1=v1,2=v2", "--tolerance", "5")


def _recording(path: Path, share_of_1: float, n: int) -> Path:
    rng = random.Random(7)
    with path.open("w") as fh:
        for i in range(n):
            app_id = "1" if rng.random() < share_of_1 else "2"
            fh.write(json.dumps({"t": i * 0.002, "status": 200, "app_id": app_id, "latency_ms": 1.0,
                                 "error": None}) + "\n")
    return path


@pytest.fixture
def passing(tmp_path) -> Path:
    return _recording(tmp_path / "pass.jsonl", 0.85, 5000)


@pytest.fixture
def undecided(tmp_path) -> Path:
    return _recording(tmp_path / "few.jsonl", 0.85, 60)


def _canary(*args: str, **popen: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **popen.pop("env", {})}  # type: ignore[dict-item]
    return subprocess.run([sys.executable, "-m", "loadgen.cli", "canary", *JUDGE, *args], env=env, text=True,
                          stderr=subprocess.PIPE, timeout=120, **popen)  # type: ignore[call-overload]


@pytest.mark.parametrize(("code", "combined"), [(ExitCode.OK, ExitCode.OUTPUT_FAILED), (ExitCode.FAIL, ExitCode.FAIL),
                                                (ExitCode.INCONCLUSIVE, ExitCode.INCONCLUSIVE),
                                                (ExitCode.UNREACHABLE, ExitCode.UNREACHABLE),
                                                (ExitCode.TERMINATED, ExitCode.TERMINATED)])
def test_an_output_failure_never_hides_a_non_zero_verdict(code, combined):
    assert with_output_failure(code) == combined


def test_a_json_on_a_full_device_keeps_the_verdict_and_the_junit(tmp_path, passing):
    junit = tmp_path / "j.xml"
    result = loadgen_in_process("canary", *JUDGE, "--replay", str(passing), "--json", "/dev/full",
                                "--junit", str(junit), tmp_path=tmp_path)
    assert "verdict: PASS" in " ".join(result.stdout.split())  # printed first
    assert junit.read_text().startswith("<?xml")  # written although --json failed before it
    assert "--json /dev/full" in result.stderr and "No space left on device" in result.stderr
    assert result.returncode == ExitCode.OUTPUT_FAILED


def test_a_fail_keeps_its_code_when_an_output_fails(tmp_path):
    failing = _recording(tmp_path / "fail.jsonl", 0.5, 2000)
    result = loadgen_in_process("canary", *JUDGE, "--replay", str(failing), "--json", "/dev/full", tmp_path=tmp_path)
    assert result.returncode == ExitCode.FAIL, result.stderr


def test_stdout_on_a_full_device_is_output_failed_not_an_internal_error(passing, tmp_path):
    junit = tmp_path / "j.xml"
    with open("/dev/full", "w") as full:
        proc = _canary("--replay", str(passing), "--junit", str(junit), stdout=full)
    assert proc.returncode == ExitCode.OUTPUT_FAILED, proc.stderr
    assert "the verdict" in proc.stderr and "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    assert junit.exists()


def test_a_closed_stdout_is_output_failed_not_an_abort(passing):
    proc = _canary("--replay", str(passing), stdout=subprocess.DEVNULL, pass_fds=(),
                   preexec_fn=lambda: os.close(1))
    assert proc.returncode == ExitCode.OUTPUT_FAILED, proc.stderr
    assert "stdout was closed" in proc.stderr


def test_a_reader_that_closes_the_pipe_leaves_the_verdict_code(undecided):
    """`loadgen canary ... | head -1`: the reader leaves before the table is written (EPIPE).
    That is the reader's choice, not a failure: INCONCLUSIVE stays 3 (it was 1, the FAIL code)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", "canary", *JUDGE, "--replay", str(undecided)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == ExitCode.INCONCLUSIVE, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def test_an_ascii_only_stdout_shows_the_verdict(passing, tmp_path):
    """A backend whose APP_ID is not ASCII, on a stream that only takes ASCII: shown as '?'."""
    named = tmp_path / "named.jsonl"
    named.write_text(passing.read_text().replace('"app_id": "2"', '"app_id": "zw\\u00f6lf"'))
    proc = _canary("--replay", str(named), "--map", "1=v1,zw\u00f6lf=v2", stdout=subprocess.PIPE,
                   env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "verdict: PASS" in " ".join(proc.stdout.split()) and "zw?lf" in proc.stdout


def test_run_writes_every_report_file_it_can_and_says_which_failed(tmp_path):
    from tests.unit.standin_target import standin_target

    stage_dir = tmp_path / "out" / "r1" / "target"
    (stage_dir / "summary.json").mkdir(parents=True)  # summary.json cannot be written there
    with standin_target(lambda n: (200, "1")) as url:
        result = loadgen_in_process("run", "--target", url, "--rate", "50", "--duration", "0.3s", "--no-plots",
                                    "--out", str(tmp_path / "out"), "--run-id", "r1", "--overwrite", "-q",
                                    tmp_path=tmp_path)
    assert result.returncode == ExitCode.OUTPUT_FAILED, result.stderr
    assert (stage_dir / "timeseries.csv").is_file() and (stage_dir / "histogram.hgrm").is_file()
    assert "summary.json" in result.stderr and "requests" in result.stdout  # the table was printed


def test_every_exit_code_is_documented_where_users_look():
    import loadgen.errors
    from loadgen.cli import EXIT_CODES_HELP

    readme = (ROOT / "README.md").read_text()
    for code in ExitCode:
        assert f"\n{int(code):<3} " in loadgen.errors.__doc__, code  # the module's table
        assert f"\n| {int(code)} |" in readme, code  # the README's table
        assert f" {int(code)} " in EXIT_CODES_HELP, code  # loadgen --help
