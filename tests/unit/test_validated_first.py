"""Every command checks every option, target URL and output before its first request to Consul
or the target (issue 25, items 2, 7, 9 and 12): a bad one is one line and exit 2, and a stand-in
HTTP server that is Consul, the target and the Envoy admins at once sees no request at all.

Before the fix, `intentions --target ftp://x/hello_b` wrote an allow intention and waited 20 s
before saying the URL was invalid, and `propagation --splitter 50/40` or `shift --service ''`
read Consul first: each case here reached the stand-in."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.request_recorder import RequestRecorder, request_recorder


@pytest.fixture
def recorder():
    with request_recorder() as rec:
        yield rec


def loadgen(rec: RequestRecorder, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``loadgen ARGS`` in this process, with CONSUL_HTTP_ADDR pointing at the stand-in."""
    from loadgen.cli import cli

    args = tuple(a.replace("REC", rec.address) for a in args)
    env = {"LOADGEN_RUN_DIR": str(tmp_path / "run"), "CONSUL_HTTP_ADDR": rec.address, "CONSUL_HTTP_TOKEN": None,
           "CONSUL_HTTP_TOKEN_FILE": None, "NOMAD_ADDR": f"http://{rec.address}"}
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def assert_refused_untouched(proc: subprocess.CompletedProcess[str], rec: RequestRecorder, needle: str,
                             tmp_path: Path) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr, rec.seen)
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert rec.seen == [], rec.seen
    assert not (tmp_path / "run" / "state.json").exists()  # no mesh was brought up either


PROBE_TARGET = ("--target", "http://REC/hello_b", "--consul", "REC", "--envoy-admin", "REC")


# -- item 2: the probes ------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "needle"), [
    (("--target", "ftp://x/hello_b", "--consul", "REC", "--envoy-admin", "REC"), "is not an http:// or https://"),
    (("--target", "http://REC/hello_b", "--consul", "REC", "--envoy-admin", "nonsense"), "--envoy-admin 'nonsense'"),
    (("--target", "http://REC/hello_b", "--consul", "REC", "--envoy-admin", "127.0.0.1:99999"), "--envoy-admin"),
    (("--target", "http://REC/hello_b", "--consul", "127.0.0.1:70000", "--envoy-admin", "REC"), "--consul"),
    (("--target", "http://REC/hello_b", "--consul", "", "--envoy-admin", "REC"), "--consul"),
    ((*PROBE_TARGET, "--json", "{tmp}/same", "--junit", "{tmp}/same"), "both write"),
    ((*PROBE_TARGET, "--plots", "{tmp}/a-file/plots"), "a-file is not a directory"),
    ((*PROBE_TARGET, "--json", "{tmp}/a-file/x.json"), "cannot write"),
])
def test_intentions_refuses_before_writing_an_intention(recorder, tmp_path, args, needle):
    (tmp_path / "a-file").write_text("")
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = loadgen(recorder, tmp_path, "intentions", *args)
    assert_refused_untouched(proc, recorder, needle, tmp_path)


@pytest.mark.parametrize(("weights", "needle"), [
    ("50/40", "add up to 90"), ("", "empty split"), ("nan/nan", "weight nan in 'nan/nan'"), ("-50/150", "-50"),
])
def test_propagation_refuses_bad_weights_before_reading_consul(recorder, tmp_path, weights, needle):
    proc = loadgen(recorder, tmp_path, "propagation", "--splitter", weights, *PROBE_TARGET)
    assert_refused_untouched(proc, recorder, needle, tmp_path)


def test_propagation_refuses_a_subset_the_resolver_does_not_define_before_writing(tmp_path):
    consul = {
        "/v1/config/service-resolver/service-b": {"Kind": "service-resolver", "Name": "service-b", "Subsets": {
            "v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}}},
        "/v1/health/service/service-b": [],
        "/v1/config/service-splitter/service-b": {"Kind": "service-splitter", "Name": "service-b", "Splits": [
            {"Weight": 85, "ServiceSubset": "v1"}, {"Weight": 15, "ServiceSubset": "v2"}]},
    }
    with request_recorder(consul) as rec:
        proc = loadgen(rec, tmp_path, "propagation", "--splitter", "v1=50,v9=50", *PROBE_TARGET)
    assert proc.returncode == 2 and "--splitter names v9, which service-b's resolver does not define" in proc.stderr, \
        (proc.returncode, proc.stderr, rec.seen)
    assert rec.seen and rec.writes == [], rec.seen  # Consul was read, nothing was written


@pytest.mark.parametrize(("args", "needle"), [
    (("--target", "ftp://x/hello_b", "--consul", "REC", "--envoy-admin", "REC"), "is not an http:// or https://"),
    ((*PROBE_TARGET, "--json", "{tmp}"), "is a directory"),
    ((*PROBE_TARGET, "--plots", "{tmp}/a-file/plots"), "a-file is not a directory"),
])
def test_propagation_refuses_bad_targets_and_outputs_first(recorder, tmp_path, args, needle):
    (tmp_path / "a-file").write_text("")
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = loadgen(recorder, tmp_path, "propagation", "--splitter", "50/50", *args)
    assert_refused_untouched(proc, recorder, needle, tmp_path)


# -- item 2 and item 9: the shift ----------------------------------------------------------------
SHIFT = ("shift", "--subset", "v2", "--steps", "25,50", "--target", "http://REC/hello_a", "--consul", "REC")


@pytest.mark.parametrize(("args", "needle"), [
    (("--service", ""), "is not a service name"),
    (("--service", "../../x y"), "is not a service name"),
    (("--max-p99", "inf"), "--max-p99 'inf' must be a finite latency"),
    (("--max-p99", "nan"), "--max-p99 'nan' must be a finite latency"),
    (("--max-p99", "-5ms"), "--max-p99 '-5ms'"),
    (("--max-p99-ratio", "nan"), "--max-p99-ratio 'nan' must be a finite ratio"),
    (("--max-p99-ratio", "inf"), "--max-p99-ratio 'inf' must be a finite ratio"),
    (("--max-p99-ratio", "0.5"), "at least 1"),
    (("--max-errors", "nan"), "--max-errors 'nan'"),
    (("--max-errors", "-1%"), "--max-errors '-1%'"),
    (("--envoy-admin", "not-an-address"), "--envoy-admin 'not-an-address'"),
    (("--apply-cmd", " "), "--apply-cmd is empty"),
    (("--verify-time", "0.2s"), "--verify-time 0.2s"),
    (("--json", "{tmp}/same", "--junit", "{tmp}/same"), "both write"),
    (("--html", "{tmp}/a-file/html"), "a-file is not a directory"),
])
def test_shift_refuses_before_the_lock_or_consul(recorder, tmp_path, args, needle):
    (tmp_path / "a-file").write_text("")
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = loadgen(recorder, tmp_path, *SHIFT, *args)
    assert_refused_untouched(proc, recorder, needle, tmp_path)
    assert not (tmp_path / "run" / "locks").exists() or not any((tmp_path / "run" / "locks").iterdir())


@pytest.mark.parametrize(("steps", "needle"), [("25,20", "must go up"), ("nan", "'nan'"), ("", "--steps is empty")])
def test_shift_refuses_steps_it_cannot_take_before_reading_the_splitter(recorder, tmp_path, steps, needle):
    proc = loadgen(recorder, tmp_path, "shift", "--subset", "v2", "--steps", steps, "--target", "http://REC/hello_a",
                   "--consul", "REC")
    assert_refused_untouched(proc, recorder, needle, tmp_path)


def test_shift_refuses_a_consul_it_would_ignore(recorder, tmp_path):
    # Without --target the local mesh's Consul is the one written: a --consul was silently ignored.
    proc = loadgen(recorder, tmp_path, "shift", "--subset", "v2", "--steps", "25", "--consul", "REC")
    assert_refused_untouched(proc, recorder, "--consul goes with --target", tmp_path)


def test_shift_refuses_whole_splits_that_are_not_splits_first(recorder, tmp_path):
    proc = loadgen(recorder, tmp_path, "shift", "--steps", "90/20,50/50", "--target", "http://REC/hello_a",
                   "--consul", "REC")
    assert_refused_untouched(proc, recorder, "step 1 '90/20'", tmp_path)


# -- item 7 and item 12: the canary ---------------------------------------------------------------
CANARY = ("canary", "--target", "http://REC/hello_a", "--map", "1=v1,2=v2")


@pytest.mark.parametrize(("args", "needle"), [
    # Item 7: budgets that leave the judge nothing it could decide on.
    (("--expect", "85/15", "--warmup", "10s", "--max-time", "2s"), "--warmup 10s leaves nothing of --max-time 2s"),
    (("--expect", "85/15", "--max-requests", "10"), "--max-requests 10 is too few"),
    (("--expect", "85/15", "--max-time", "0.0001s", "--warmup", "0"),
     "--max-time 0.0001s at --rate 500/s sends at most"),
    (("--expect", "85/15", "--max-time", "0.0001s"), "leaves nothing of --max-time"),
    (("--expect", "50/50", "--rate", "10", "--max-time", "3s"), "sends at most 20 judged requests after the 1s"),
    # Item 12.
    (("--expect", "v1=85,v3=15"), "no APP_ID in --map belongs to it"),
    (("--expect", "85/15", "--json", "{tmp}/same", "--junit", "{tmp}/same"), "--json and --junit both write"),
    (("--expect", "85/15", "--json", "{tmp}/same", "--record", "{tmp}/./same"), "--json and --record both write"),
    (("--expect", "85/15", "--junit", "{tmp}/same", "--record", "{tmp}/same"), "--junit and --record both write"),
    (("--expect", "85/15", "--stage", "basic"), "--stage picks a stage of the local mesh"),
    (("--expect", "85/15", "--consul", "127.0.0.1:99999"), "--consul"),
    (("--expect", "85/15", "--upstream", ""), "--upstream '' is not a service name"),
    (("--expect", "85/15", "--path", "hello_b"), "--path 'hello_b' is not a path"),
    (("--expect", "85/15", "--envoy-admin", "127.0.0.1:19000/x"), "--envoy-admin '127.0.0.1:19000/x'"),
    (("--expect", "85/15", "--expect", "x" * 100_000), "more characters)"),
])
def test_canary_refuses_before_sending(recorder, tmp_path, args, needle):
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = loadgen(recorder, tmp_path, *CANARY, *args)
    assert_refused_untouched(proc, recorder, needle, tmp_path)
    assert len(proc.stderr) < 400, len(proc.stderr)  # no input is echoed whole


def test_a_warmup_the_time_budget_can_hold_is_still_accepted():
    from loadgen.canary.options import CanaryOptions, check_budget, judged_by_time, warmup_requests
    from loadgen.stats import SplitSpec

    assert warmup_requests(500, 1.0) == 500 and warmup_requests(3, 0.5) == 2 and warmup_requests(500, 0) == 0
    options = CanaryOptions(expect="85/15", rate=500, max_time=2.0, warmup=1.0)
    assert judged_by_time(options) == 500
    check_budget(options, SplitSpec.parse("85/15"), 5000)  # no error


@pytest.mark.parametrize("extra", [("--target", "http://REC/hello_a"), ("--consul", "REC"), ("--stage", "basic"),
                                   ("--envoy-admin", "REC")])
def test_replay_refuses_the_options_it_would_ignore(recorder, tmp_path, extra):
    rec = tmp_path / "run.jsonl"
    rec.write_text('{"t": 0.0, "status": 200, "app_id": "1", "latency_ms": 1.0}\n')
    proc = loadgen(recorder, tmp_path, "canary", "--expect", "85/15", "--replay", str(rec), "--map", "1=v1,2=v2",
                   *extra)
    assert_refused_untouched(proc, recorder, "--replay judges a recording without any network: drop", tmp_path)


def test_replay_and_plan_and_an_output_over_the_recording_are_refused(recorder, tmp_path):
    rec = tmp_path / "run.jsonl"
    rec.write_text('{"t": 0.0, "status": 200, "app_id": "1", "latency_ms": 1.0}\n')
    proc = loadgen(recorder, tmp_path, "canary", "--expect", "85/15", "--replay", str(rec), "--plan")
    assert_refused_untouched(proc, recorder, "--plan plans a live run and --replay judges a recording", tmp_path)
    proc = loadgen(recorder, tmp_path, "canary", "--expect", "85/15", "--replay", str(rec), "--json", str(rec))
    assert_refused_untouched(proc, recorder, "--json would overwrite --replay", tmp_path)
    assert rec.read_text().startswith('{"t": 0.0')


# -- item 12: run ---------------------------------------------------------------------------------
RUN = ("run", "--target", "http://REC/hello_a", "--duration", "1s", "--no-plots", "-q")


@pytest.mark.parametrize(("args", "needle"), [
    (("--duration", ""), "is not a duration"),
    (("--rate", "100", "--concurrency", "4"), "--rate is the open loop's schedule and --concurrency"),
    (("--out", "/dev/null"), "--out /dev/null: it is not a directory"),
    (("--out", "{tmp}/a-file/reports"), "a-file is not a directory"),
])
def test_run_refuses_before_sending(recorder, tmp_path, args, needle):
    (tmp_path / "a-file").write_text("")
    args = tuple(a.replace("{tmp}", str(tmp_path)) for a in args)
    proc = loadgen(recorder, tmp_path, *RUN, *args)
    assert_refused_untouched(proc, recorder, needle, tmp_path)


def test_run_refuses_a_run_id_that_holds_reports_unless_asked(recorder, tmp_path):
    earlier = tmp_path / "reports" / "nightly" / "target"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text("{}")
    proc = loadgen(recorder, tmp_path, *RUN, "--out", str(tmp_path / "reports"), "--run-id", "nightly")
    assert_refused_untouched(proc, recorder, "--run-id nightly: ", tmp_path)
    assert (earlier / "summary.json").read_text() == "{}"
    # --overwrite is asking: the run goes on (and reaches the stand-in, which answers 500s).
    proc = loadgen(recorder, tmp_path, *RUN, "--out", str(tmp_path / "reports"), "--run-id", "nightly", "--overwrite",
                   "--duration", "0.1s")
    assert recorder.seen, proc.stderr


def test_the_default_run_id_takes_the_next_free_name(tmp_path):
    from loadgen.commands.run import report_dir

    first = report_dir(tmp_path, None, False)
    (first / "target").mkdir(parents=True)
    second = report_dir(tmp_path, None, False)
    assert second != first and second.name.startswith(first.name) and second.name.endswith("-2")
    assert report_dir(tmp_path, "given", False) == tmp_path / "given"


def test_the_recorder_sees_what_reaches_it(recorder, tmp_path):
    # The stand-in itself: a command that gets past its checks does reach it (so an empty list
    # above means nothing was sent, not that the stand-in was deaf).
    proc = loadgen(recorder, tmp_path, "propagation", "--splitter", "50/50", *PROBE_TARGET)
    assert proc.returncode != 2 and recorder.seen, (proc.returncode, proc.stderr)
    assert os.environ.get("CONSUL_HTTP_ADDR") != recorder.address  # the environment was the runner's only


def test_the_warmup_comes_on_top_of_the_fixed_tests_n(tmp_path):
    # Item 7: --method fixed plans n answers to judge; the warm-up's requests used to be taken out
    # of them (n = 4,331 planned, 3,831 judged), under-powering the test by its own calculation.
    import json
    import socket

    from loadgen.cli import cli
    from tests.integration.local_target import local_target

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    out = tmp_path / "c.json"
    with local_target() as target:  # APP_IDs 1 and 2 in turn: exactly 50/50
        result = CliRunner().invoke(cli, [
            "canary", "--target", target.url, "--consul", f"127.0.0.1:{closed}", "--map", "1=v1,2=v2",
            "--expect", "50/50", "--method", "fixed", "--tolerance", "10", "--warmup", "0.1s", "--rate", "2000",
            "--json", str(out), "-q"], env={"LOADGEN_RUN_DIR": str(tmp_path / "run")}, catch_exceptions=False)
    data = json.loads(out.read_text())
    planned = data["plan"]["fixed_n"]
    assert result.exit_code == 0 and data["verdict"] == "PASS", result.stderr
    assert data["warmup"]["requests"] == 200  # 0.1 s at 2,000/s
    assert data["judge"]["n"] == planned == data["plan"]["max_requests"]
    assert data["requests"] == planned + 200


# -- up and split -------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "needle"), [
    (("up", "--stage", "splitter", "--consul", "REC", "--timeout", "nan"), "--timeout nan must be a finite"),
    (("up", "--stage", "splitter", "--consul", "REC", "--timeout", "-1"), "--timeout -1 must be a finite"),
    (("up", "--stage", "splitter", "--consul", "127.0.0.1:99999"), "--consul"),
    (("split", "--url", "ftp://REC/hello_a"), "is not an http:// or https://"),
])
def test_up_and_split_refuse_before_anything_starts(recorder, tmp_path, args, needle):
    proc = loadgen(recorder, tmp_path, *args)
    assert_refused_untouched(proc, recorder, needle, tmp_path)


def test_shift_refuses_a_verification_too_short_to_decide_before_writing(tmp_path):
    # Item 7 for the shift: 2 s at 1/s leaves one judged request after the 0.5 s warm-up; 50/50 needs 47.
    consul = {
        "/v1/config/service-resolver/service-b": {"Kind": "service-resolver", "Name": "service-b", "Subsets": {
            "v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}}},
        "/v1/config/service-splitter/service-b": {"Kind": "service-splitter", "Name": "service-b", "ModifyIndex": 7,
                                                  "Splits": [{"Weight": 85, "ServiceSubset": "v1"},
                                                             {"Weight": 15, "ServiceSubset": "v2"}]},
    }
    with request_recorder(consul) as rec:
        proc = loadgen(rec, tmp_path, "shift", "--subset", "v2", "--steps", "50", "--rate", "1", "--verify-time", "2s",
                       "--force", "--target", "http://REC/hello_a", "--consul", "REC")
    assert proc.returncode == 2 and "--verify-time 2s at --rate 1/s judges at most 1 request after" in proc.stderr, \
        (proc.returncode, proc.stderr, rec.seen)
    assert "step 1 (50/50) needs at least 47" in proc.stderr
    assert rec.seen and rec.writes == [], rec.seen
