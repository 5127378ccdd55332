"""A canary stopped during its set-up -- here, while the reachability probe waits on a target
that does not answer yet -- still writes every output it was asked for: INCONCLUSIVE, n = 0,
"... before any request was sent", and the signal's exit code (143 SIGTERM, 130 Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from loadgen.canary.options import CanaryOptions
from loadgen.canary.unstarted import unstarted_result
from loadgen.stats import JudgeConfig
from tests.integration.local_target import local_target


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(("signum", "code", "said"), [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                                      (signal.SIGINT, 130, "interrupted")])
def test_a_signal_during_set_up_writes_every_output(tmp_path, signum, code, said):
    out_json, out_xml = tmp_path / "r.json", tmp_path / "r.xml"
    env = {**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")}
    env.pop("CONSUL_HTTP_ADDR", None)
    with local_target(delay_ms=600_000) as target:  # answers in ten minutes: the probe waits
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadgen.cli", "canary", "--target", target.url, "--consul",
             f"127.0.0.1:{_closed_port()}", "--map", "1=v1,2=v2", "--expect", "85/15", "--timeout", "10m",
             "--json", str(out_json), "--junit", str(out_xml), "-q"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while target.count() == 0:  # the reachability probe has reached the target: set-up, not the run
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.05)
            proc.send_signal(signum)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert target.count() == 1  # only the probe: no request of the run was sent
    assert proc.returncode == code, (stdout, stderr)
    result = json.loads(out_json.read_text())
    assert result["verdict"] == "INCONCLUSIVE" and result["judge"]["n"] == 0 and result["requests"] == 0
    assert result["reason"] == f"{said} before any request was sent"
    assert result["interrupted_by"] == signal.Signals(signum).name and result["exit_code"] == code
    assert result["expected"] == {"v1": 0.85, "v2": 0.15}
    junit = out_xml.read_text()
    assert "<testsuite" in junit and f"{said} before any request was sent" in junit


def test_expect_consul_stopped_before_consul_was_read_has_no_expected_split():
    options = CanaryOptions(expect="consul", target="http://127.0.0.1:1/hello_a", config=JudgeConfig())
    result = unstarted_result(options, signal.SIGTERM)
    doc = result.to_json()
    assert doc["expected"] is None and doc["plan"]["fixed_n"] is None and doc["judge"]["n"] == 0
    assert doc["verdict"] == "INCONCLUSIVE" and doc["exit_code"] == 143
    assert "terminated (SIGTERM) before any request was sent" in result.junit()
