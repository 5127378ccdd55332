"""Issue 25, item 4: reachability is a property of several attempts, and once the options are
valid every requested output is written, whatever the exit -- an unreachable target's too."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from loadgen.errors import UnreachableError
from loadgen.load.reachable import ATTEMPTS, check_reachable
from tests.unit.cli_in_process import loadgen_in_process
from tests.unit.standin_target import standin_target

LOCAL_MAP = ("--map", "1=v1,2=v2")


def test_a_target_that_cuts_its_first_answers_is_reachable():
    with standin_target(lambda n: "cut" if n < 2 else (200, "1")) as url:
        assert check_reachable(url, {}, timeout=2.0) == 3


def test_a_target_that_never_answers_is_unreachable_after_every_attempt():
    with standin_target(lambda n: "cut") as url, pytest.raises(UnreachableError, match=rf"{ATTEMPTS} attempts"):
        check_reachable(url, {}, timeout=2.0)


def test_a_canary_on_a_target_cutting_half_its_answers_is_judged_not_unreachable(tmp_path):
    """The first answer is cut (the old single probe said "unreachable", exit 4): the run goes on
    and the judge sees the failures (FAIL over --max-errors, or INCONCLUSIVE in so short a run: the
    client retries a cut kept-alive connection once, so fewer than half the requests fail)."""
    with standin_target(lambda n: "cut" if n % 2 == 0 else (200, "1" if n % 20 < 17 else "2")) as url:
        result = loadgen_in_process("canary", "--target", url, "--consul", "127.0.0.1:9", *LOCAL_MAP,
                                    "--expect", "85/15", "--rate", "400", "--max-time", "0.5s", "--warmup", "0",
                                    "-q", "--json", str(tmp_path / "r.json"), tmp_path=tmp_path)
    doc = json.loads((tmp_path / "r.json").read_text())
    assert result.returncode in (1, 3), result.stderr
    assert doc["exit_code"] == result.returncode and doc["requests"] > 0 and doc["errors"]
    assert doc["stopped_by"] != "error"


def test_an_unreachable_target_still_writes_every_output(tmp_path):
    out_json, out_xml = tmp_path / "r.json", tmp_path / "r.xml"
    with standin_target(lambda n: "cut") as url:
        result = loadgen_in_process("canary", "--target", url, "--consul", "127.0.0.1:9", *LOCAL_MAP,
                                    "--expect", "85/15", "-q", "--json", str(out_json), "--junit", str(out_xml),
                                    tmp_path=tmp_path)
    assert result.returncode == 4
    assert "unreachable" in result.stderr or "did not answer" in result.stderr, result.stderr
    doc = json.loads(out_json.read_text())
    assert doc["exit_code"] == 4 and doc["verdict"] == "INCONCLUSIVE" and doc["requests"] == 0
    assert doc["stopped_by"] == "error" and "no verdict" in doc["reason"]
    suite = ET.fromstring(out_xml.read_text())
    assert suite.get("failures") == "1"  # CI shows the canary did not run, not only skipped cases


def test_an_unreachable_target_still_writes_json_to_stdout(tmp_path):
    with standin_target(lambda n: "cut") as url:
        result = loadgen_in_process("canary", "--target", url, "--consul", "127.0.0.1:9", *LOCAL_MAP,
                                    "--expect", "85/15", "--json", "-", tmp_path=tmp_path)
    assert result.returncode == 4
    assert json.loads(result.stdout)["exit_code"] == 4


def test_run_json_says_why_a_stage_could_not_run(tmp_path):
    with standin_target(lambda n: "cut") as url:
        result = loadgen_in_process("run", "--target", url, "--duration", "1s", "--json", "--out", str(tmp_path),
                                    tmp_path=tmp_path)
    assert result.returncode == 4
    doc = json.loads(result.stdout)
    assert doc["stages"] == [] and doc["error"]["exit_code"] == 4 and "attempts" in doc["error"]["message"]
