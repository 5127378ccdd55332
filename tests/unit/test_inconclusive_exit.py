"""--inconclusive-exit CODE on `canary` and `shift`: an undecided run exits CODE instead of 3 (canary)
or 1 (a shift stopped only undecided); PASS, FAIL, errors and signals keep their codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadgen.commands.options import parse_inconclusive_exit
from loadgen.errors import UsageError
from loadgen.shift.timeline import PhaseRecord, ShiftReport
from tests.unit.cli_in_process import loadgen_in_process


def _recording(path, p, n, seed):
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            app = "1" if rng.random() < p else "2"
            fh.write(json.dumps({"t": i / 500, "status": 200, "app_id": app, "latency_ms": 2.0, "error": None,
                                 "subset": {"1": "v1", "2": "v2"}[app]}) + "\n")


def canary(*args, tmp_path):
    return loadgen_in_process("canary", *args, tmp_path=tmp_path)


def test_an_inconclusive_canary_exits_the_code_asked_and_its_json_says_so(tmp_path):
    rec = tmp_path / "short.jsonl"
    _recording(rec, 0.85, 300, seed=2)  # too few answers for a verdict
    plain = canary("--replay", str(rec), "--expect", "85/15", "--json", "-", tmp_path=tmp_path)
    assert plain.returncode == 3 and json.loads(plain.stdout)["exit_code"] == 3
    for code in (0, 1, 3, 42, 125):
        proc = canary("--replay", str(rec), "--expect", "85/15", "--json", "-", "--inconclusive-exit", str(code),
                      tmp_path=tmp_path)
        result = json.loads(proc.stdout)
        assert proc.returncode == code, proc.stderr
        assert result["verdict"] == "INCONCLUSIVE" and result["exit_code"] == code


def test_pass_and_fail_keep_their_codes(tmp_path):
    rec = tmp_path / "long.jsonl"
    _recording(rec, 0.85, 20_000, seed=1)
    passed = canary("--replay", str(rec), "--expect", "85/15", "--inconclusive-exit", "42", "-q", tmp_path=tmp_path)
    failed = canary("--replay", str(rec), "--expect", "50/50", "--inconclusive-exit", "0", "-q", tmp_path=tmp_path)
    assert (passed.returncode, failed.returncode) == (0, 1)


def test_an_inconclusive_run_mapped_to_0_with_a_lost_output_exits_6(tmp_path):
    """A success whose output was lost becomes 6 (errors.with_output_failure): the same for a mapped 0."""
    rec = tmp_path / "short.jsonl"
    _recording(rec, 0.85, 300, seed=2)
    proc = canary("--replay", str(rec), "--expect", "85/15", "--inconclusive-exit", "0", "--json", "/dev/full",
                  "-q", tmp_path=tmp_path)
    assert proc.returncode == 6, proc.stderr


@pytest.mark.parametrize(("value", "needle"), [
    ("2", "already means something else"), ("4", "already means something else"),
    ("70", "already means something else"), ("126", "above 125"), ("255", "above 125"), ("-1", "not an exit code"),
    ("x", "not an exit code"), ("3.5", "not an exit code"), ("", "not an exit code"),
])
def test_codes_that_mean_something_else_are_refused_with_one_line(value, needle, tmp_path):
    with pytest.raises(UsageError, match=needle):
        parse_inconclusive_exit(value)
    proc = canary("--expect", "85/15", "--replay", "x.jsonl", "--inconclusive-exit", value, tmp_path=tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr
    proc = loadgen_in_process("shift", "--steps", "50", "--subset", "v2", "--inconclusive-exit", value,
                              tmp_path=tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr


def _shift(step_failure: str | None, verdict: str = "INCONCLUSIVE", **kw) -> ShiftReport:
    step = PhaseRecord("step 1", {"v1": 50.0, "v2": 50.0}, started=1.0, verdict=verdict, failure=step_failure,
                       passed=step_failure is None)
    report = ShiftReport(service="service-b", subset="v2", start={"v1": 100.0, "v2": 0.0}, start_entry=None,
                         planned=[{"v1": 50.0, "v2": 50.0}], phases=[PhaseRecord("start", {}, 0.0, passed=True), step],
                         failure=None if step_failure is None else f"step 1 (v2 50 %): {step_failure}", **kw)
    return report


def test_a_shift_stopped_only_undecided_exits_the_code_asked():
    undecided = _shift("split INCONCLUSIVE: budget ran out", rolled_back=True)
    assert undecided.exit_code == 1  # without the option: a failed shift, as before
    undecided.inconclusive_exit = 0
    assert undecided.undecided and undecided.exit_code == 0 and undecided.to_json()["exit_code"] == 0


@pytest.mark.parametrize("report", [
    _shift("gate: v2 p99 80 ms over --max-p99 50 ms; split INCONCLUSIVE: budget ran out", rolled_back=True),
    _shift("split FAIL: v2 outside its band", verdict="FAIL", rolled_back=True),
    _shift("split INCONCLUSIVE: budget ran out", rolled_back=False),  # the rollback failed
    _shift("split INCONCLUSIVE: budget ran out", rolled_back=True, concurrent_change=True),
    _shift("hold: gate: v2 5xx over --max-errors", verdict="PASS", rolled_back=True),
])
def test_a_shift_that_failed_for_anything_else_keeps_1(report):
    report.inconclusive_exit = 0
    assert not report.undecided and report.exit_code == 1


def test_an_interrupted_or_passed_shift_keeps_its_code():
    interrupted = _shift("split INCONCLUSIVE: interrupted", rolled_back=True, signum=15, inconclusive_exit=0)
    assert interrupted.exit_code == 143
    passed = _shift(None, verdict="PASS", inconclusive_exit=7)
    assert passed.exit_code == 0
