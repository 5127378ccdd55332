"""--metrics-linger: the /metrics page stays up after the verdict and every output are out, so a
Prometheus scraping every 15 s reads how a short CLI run ended; Ctrl-C ends the wait at once and
the exit code stays the verdict's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from loadgen.commands import metrics_option
from loadgen.errors import ExitCode
from loadgen.report.metrics_server import close_all, serving
from tests.unit.cli_in_process import loadgen_in_process
from tests.unit.standin_target import standin_target
from tests.unit.test_prometheus_metrics import scrape, state, total

MAP = ("--map", "1=v1,2=v2")
FAIL_FAST = ("--expect", "50/50", "--tolerance", "5", "--rate", "1000", "--warmup", "0")  # all v1: FAIL in ~100


@pytest.fixture(autouse=True)
def _close_pages() -> Iterator[None]:
    yield
    close_all()


def test_the_page_lingers_after_the_verdict_and_its_outputs(tmp_path, monkeypatch):
    seen: list[tuple[float, dict, bool]] = []

    def wait(seconds: float) -> None:  # the linger's wait: scrape the page as Prometheus would meanwhile
        (server,) = serving()
        seen.append((seconds, scrape(server.url), (tmp_path / "r.json").exists()))

    monkeypatch.setattr(metrics_option, "_wait", wait)
    with standin_target(lambda n: (200, "1")) as target:
        result = loadgen_in_process("canary", "--target", target, "--consul", "127.0.0.1:9", *MAP, *FAIL_FAST,
                                    "--json", str(tmp_path / "r.json"), "--metrics-listen", "127.0.0.1:0",
                                    "--metrics-linger", "45s", tmp_path=tmp_path)
    assert result.returncode == ExitCode.FAIL, result.stderr
    ((seconds, page, json_written),) = seen
    assert seconds == 45 and json_written  # every output is out before the wait
    n = json.loads((tmp_path / "r.json").read_text())["judge"]["n"]
    assert state(page) == "FAIL" and total(page, "loadgen_verdict_final") == 1
    assert total(page, "loadgen_answers_total") >= n > 0
    assert "stays up 45s more (Ctrl-C ends it)" in result.stderr


def test_run_lingers_too(tmp_path, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(metrics_option, "_wait", waits.append)
    with standin_target(lambda n: (200, "1")) as target:
        result = loadgen_in_process("run", "--target", target, "--rate", "200", "--duration", "0.1s", "-q",
                                    "--no-plots", "--out", str(tmp_path / "r"), "--metrics-listen", "127.0.0.1:0",
                                    "--metrics-linger", "2m", tmp_path=tmp_path)
    assert result.returncode == ExitCode.OK, result.stderr
    assert waits == [120]


def test_a_signal_ends_the_linger_and_keeps_the_verdict():
    said: list[str] = []

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    metrics_option.serve_metrics(metrics_option.RunMetrics("canary"), metrics_option.parse_listen("127.0.0.1:0"))
    assert metrics_option.linger(30, said.append, interrupted) is False
    assert said[-1] == "metrics: linger ended by a signal"
    assert metrics_option.linger(30, said.append, lambda s: None) is True
    assert metrics_option.linger(0, said.append, interrupted) is True  # the default, 0: no wait at all
    close_all()
    assert metrics_option.linger(30, said.append, interrupted) is True  # no page: nothing to wait for


BAD_LINGER = [
    (("--metrics-linger", "30s"), "give --metrics-listen HOST:PORT too"),
    (("--metrics-listen", "127.0.0.1:0", "--metrics-linger", "11m"), "more than its 10m limit"),
    (("--metrics-listen", "127.0.0.1:0", "--metrics-linger", "soon"), "'soon' is not a duration"),
    (("--metrics-listen", "127.0.0.1:0", "--metrics-linger", "-5s"), "--metrics-linger"),
]


def test_bad_linger_is_one_line_exit_2_before_any_request(tmp_path):
    sent: list[int] = []
    with standin_target(lambda n: sent.append(n) or (200, "1")) as target:  # one target: its shutdown costs 0.5 s
        for args, needle in BAD_LINGER:
            result = loadgen_in_process("canary", "--target", target, "--consul", "127.0.0.1:9", *MAP, "--expect",
                                        "85/15", *args, tmp_path=tmp_path)
            assert result.returncode == ExitCode.USAGE, result.stderr
            assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
            assert sent == [] and serving() == []


def test_ctrl_c_during_the_linger_exits_at_once_with_the_verdicts_code(tmp_path):
    """A real process (the signal is the subject): it says the page stays up, the page shows the
    final FAIL, and Ctrl-C ends a ten-minute linger with exit 1, not 130."""
    with standin_target(lambda n: (200, "1")) as target:
        proc = subprocess.Popen([sys.executable, "-m", "loadgen.cli", "canary", "--target", target, "--consul",
                                 "127.0.0.1:9", *MAP, *FAIL_FAST, "-q", "--metrics-listen", "127.0.0.1:0",
                                 "--metrics-linger", "10m"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "LOADGEN_RUN_DIR": str(tmp_path / "run")})
        try:
            lines = []
            for line in proc.stderr:  # until the linger starts (or the process ends)
                lines.append(line)
                if "stays up" in line:
                    break
            url = re.search(r"(http://127\.0\.0\.1:\d+/metrics) stays up 600s more", "".join(lines))
            assert url, "".join(lines)
            assert state(scrape(url.group(1))) == "FAIL"
            proc.send_signal(signal.SIGINT)
            out, rest = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == ExitCode.FAIL, "".join(lines) + rest
    assert "verdict: FAIL" in out and "linger ended by a signal" in rest
