"""`loadgen canary` input handling and replay, without any network."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from tests.unit.cli_in_process import loadgen_in_process

UNREACHABLE = "http://127.0.0.1:1/hello_a"  # nothing listens on port 1


def run(*args, tmp_path, cwd=None):
    """`loadgen canary ARGS` in-process (the judge's imports paid once), or as a subprocess when
    the case needs its own working directory: that is also how users run it."""
    if cwd is None:
        return loadgen_in_process("canary", *args, tmp_path=tmp_path)
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    return subprocess.run([sys.executable, "-m", "loadgen.cli", "canary", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=cwd)


@pytest.mark.parametrize("spec", ["85/16", "85", "abc", "-5/105", "85/15/0/x", "v1=50,v1=50"])
def test_bad_specs_exit_2_with_one_line(spec, tmp_path):
    proc = run("--expect", spec, "--target", UNREACHABLE, "--map", "1=v1,2=v2", tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadgen: error:"), proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--tolerance", "0"), "tolerance must be between"),
        (("--confidence", "100"), "confidence must be between"),
        (("--map", "1=v1,1=v2"), "mapped twice"),
        (("--max-time", "soon"), "is not a duration"),
        (("--header", "nocolon"), "is not 'Name: value'"),
        (("--rate", "0"), "Invalid value for '--rate'"),
    ],
)
def test_bad_options_exit_2(args, needle, tmp_path):
    base = {"--map": "1=v1,2=v2"}
    extra = list(args)
    if "--map" not in extra:
        extra += ["--map", base["--map"]]
    proc = run("--expect", "85/15", "--target", UNREACHABLE, *extra, tmp_path=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr


def test_unreachable_target_exits_4(tmp_path):
    proc = run("--expect", "85/15", "--target", UNREACHABLE, "--map", "1=v1,2=v2", tmp_path=tmp_path)
    assert proc.returncode == 4
    assert f"target {UNREACHABLE} is unreachable" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _recording(path, p, n, seed, with_subsets=True, errors=0):
    rng = np.random.default_rng(seed)
    with path.open("w") as fh:
        for i in range(n):
            app = "1" if rng.random() < p else "2"
            row = {"t": i / 500, "status": 200, "app_id": app, "latency_ms": 2.0, "error": None}
            if with_subsets:
                row["subset"] = {"1": "v1", "2": "v2"}[app]
            fh.write(json.dumps(row) + "\n")
        for i in range(errors):
            fh.write(json.dumps({"t": (n + i) / 500, "status": 503, "app_id": None, "latency_ms": 1.0,
                                 "error": "http_503"}) + "\n")


def test_replay_pass_and_fail_with_outputs(tmp_path):
    rec = tmp_path / "run.jsonl"
    _recording(rec, 0.85, 20_000, seed=1)
    out_json, out_xml = tmp_path / "r.json", tmp_path / "r.xml"
    proc = run("--replay", str(rec), "--expect", "85/15", "--json", str(out_json), "--junit", str(out_xml),
               tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out_json.read_text())
    assert result["verdict"] == "PASS" and result["mapping"]["app_ids"] == {"1": "v1", "2": "v2"}
    assert result["judge"]["n"] <= 20_000
    suite = ET.parse(out_xml).getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "0"
    assert [c.get("name") for c in suite.iter("testcase")] == ["subset v1", "subset v2", "verdict"]

    proc = run("--replay", str(rec), "--expect", "v1=50,v2=50", "--junit", str(out_xml), tmp_path=tmp_path)
    assert proc.returncode == 1
    suite = ET.parse(out_xml).getroot()
    assert suite.get("failures") == "3"


def test_replay_inconclusive_when_the_recording_is_short(tmp_path):
    rec = tmp_path / "short.jsonl"
    _recording(rec, 0.85, 300, seed=2)
    proc = run("--replay", str(rec), "--expect", "85/15", "--json", "-", tmp_path=tmp_path)
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["verdict"] == "INCONCLUSIVE"


def test_replay_needs_a_map_when_none_was_recorded(tmp_path):
    rec = tmp_path / "foreign.jsonl"
    _recording(rec, 0.85, 100, seed=3, with_subsets=False)
    proc = run("--replay", str(rec), "--expect", "85/15", tmp_path=tmp_path)
    assert proc.returncode == 2 and "give --map" in proc.stderr
    proc = run("--replay", str(rec), "--expect", "85/15", "--map", "1=v1,2=v2", "-q", tmp_path=tmp_path)
    assert proc.returncode == 3  # 100 samples: not enough for a verdict


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("not json", "not a JSON object"),
        ("[1, 2]", "expected a JSON object"),
        ('{"t": 1, "status": 200, "app_id": "1", "latency_ms": 2.0}', "missing field(s) error"),
        ('{"t": "x", "status": 200, "app_id": "1", "latency_ms": 2.0, "error": null}', "t must be a number"),
        ('{"t": 1, "status": "200", "app_id": "1", "latency_ms": 2.0, "error": null}', "status must be an integer"),
    ],
)
def test_malformed_recording_names_the_line(line, needle, tmp_path):
    rec = tmp_path / "bad.jsonl"
    _recording(rec, 0.85, 3, seed=4)
    with rec.open("a") as fh:
        fh.write(line + "\n")
    proc = run("--replay", str(rec), "--expect", "85/15", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert f"bad.jsonl:4: {needle}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_errors_in_a_recording_are_counted_apart(tmp_path):
    rec = tmp_path / "errs.jsonl"
    _recording(rec, 0.85, 2_000, seed=5, errors=400)
    proc = run("--replay", str(rec), "--expect", "85/15", "--json", "-", tmp_path=tmp_path)
    result = json.loads(proc.stdout)
    # Judged as it was recorded: the FAIL comes at the first look where the errors are proven too many.
    assert 0 < result["errors"]["http_503"] <= 400 and result["stopped_by"] == "verdict"
    assert proc.returncode == 1 and "were errors" in result["reason"]


def test_plan(tmp_path):
    proc = run("--expect", "85/15", "--plan", tmp_path=tmp_path)
    assert proc.returncode == 0
    assert "fixed test n" in proc.stdout and "80%" in proc.stdout


def test_unknown_app_ids_fail_the_run(tmp_path):
    rec = tmp_path / "unmapped.jsonl"
    _recording(rec, 0.85, 3_000, seed=6, with_subsets=False)
    # APP_ID 2 is not in the map: its answers are unknown, not v2's.
    proc = run("--replay", str(rec), "--expect", "v1=85,v2=15", "--map", "1=v1,3=v2", "--json", "-",
               tmp_path=tmp_path)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert "unknown APP_IDs" in result["reason"] and "v2 has not answered once" in result["reason"]
