"""--metrics-listen, --metrics-allow-remote and --metrics-linger: a Prometheus /metrics page for
`run`, `canary` and `shift` (report/metrics_server.py serves it, report/run_metrics.py keeps what it
shows).

--metrics-linger keeps the page up after the command has said and written its verdict: a CLI run of
ten seconds ends between two scrapes of a Prometheus that scrapes every 15 s, which would never see
its verdict. The command's own outputs (stdout, --json, --junit) are all out before it lingers, and
its exit code is the verdict's: Ctrl-C or SIGTERM only ends the wait.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from loadgen.commands.options import Duration
from loadgen.errors import LoadgenError, UsageError
from loadgen.report.metrics_server import ListenAddress, parse_listen, serve_metrics, serving
from loadgen.report.run_metrics import RunMetrics

__all__ = ["MAX_LINGER_S", "linger", "metrics_address", "metrics_options", "start_metrics", "watch_looks"]

MAX_LINGER_S = 600.0  # ten minutes: several scrapes at any usual interval; a longer wait is a forgotten job


def metrics_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--metrics-listen", metavar="HOST:PORT", default=None,
                     help="Serve the run's Prometheus metrics at http://HOST:PORT/metrics while it runs (and after "
                          "its verdict, until loadgen exits): requests, answers and latency histograms per subset "
                          "and APP_ID, errors by kind, the live verdict and its intervals. A loopback address, like "
                          "127.0.0.1:9464 (port 0: any free port, said on stderr)."),
        click.option("--metrics-allow-remote", is_flag=True,
                     help="Let --metrics-listen bind an address other than loopback (0.0.0.0, a LAN address): the "
                          "page shows anyone who reaches it what the run loads and how it answers."),
        click.option("--metrics-linger", type=Duration(allow_zero=True), default=0.0, metavar="DURATION",
                     help="With --metrics-listen: keep the page up this long after the verdict (and every output) "
                          "is out, e.g. 30s, so a Prometheus scraping every 15 s reads how a short run ended. At "
                          "most 10m; Ctrl-C or SIGTERM ends the wait, the exit code stays the verdict's.  "
                          "[default: 0]"),
    ]

    @functools.wraps(func)
    def command(*args: Any, metrics_linger: float, **kwargs: Any) -> Any:
        check_linger(metrics_linger, kwargs.get("metrics_listen"))
        try:
            code = func(*args, **kwargs)
        except LoadgenError:  # the run ended in an error after the page was up: the page says so too
            linger(metrics_linger)
            raise
        linger(metrics_linger)
        return code

    for option in reversed(options):
        command = option(command)
    return command


def check_linger(seconds: float, listen: str | None) -> None:
    """--metrics-linger checked with the other options, before anything starts (UsageError, exit 2)."""
    if seconds and listen is None:
        raise UsageError("--metrics-linger keeps the --metrics-listen page up: give --metrics-listen HOST:PORT too")
    if seconds > MAX_LINGER_S:
        raise UsageError(f"--metrics-linger {seconds:g}s is more than its {MAX_LINGER_S / 60:g}m limit")


def linger(seconds: float, say: Callable[[str], None] | None = None,
           sleep: Callable[[float], None] | None = None) -> bool:
    """Keep this process's /metrics pages up ``seconds`` more, when it has one (the server runs on a
    daemon thread; this thread only waits). Returns False when a signal cut the wait. Whatever the
    command printed is flushed first: a CI log shows the verdict now, not after the wait."""
    if seconds <= 0 or not serving():
        return True
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stdout was already reported by the command
            stream.flush()
    tell = say or _stderr
    tell(f"metrics: {', '.join(s.url for s in serving())} stays up {seconds:g}s more (Ctrl-C ends it)")
    try:
        (sleep or _wait)(seconds)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (interrupts.Terminated): end the wait, keep the verdict's code
        tell("metrics: linger ended by a signal")
        return False
    return True


_wait = time.sleep  # how linger waits (a test replaces it with one that scrapes the page meanwhile)


def _stderr(message: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(message, file=sys.stderr, flush=True)


def metrics_address(listen: str | None, allow_remote: bool) -> ListenAddress | None:
    """The options checked as text (UsageError, exit 2); None when no page was asked for."""
    if listen is None:
        if allow_remote:
            raise UsageError("--metrics-allow-remote goes with --metrics-listen HOST:PORT")
        return None
    return parse_listen(listen, allow_remote)


def start_metrics(command: str, address: ListenAddress | None, say: Callable[[str], None]) -> RunMetrics | None:
    """The run's metrics with their page listening (before the first request: a taken port is one
    line, exit 5); None without --metrics-listen."""
    if address is None:
        return None
    metrics = RunMetrics(command, judged=command != "run")
    serve_metrics(metrics, address, say)
    return metrics


def watch_looks(metrics: RunMetrics | None, on_look: Callable[[Any], None]) -> Callable[[Any], None]:
    """``on_look`` that also shows each look's verdict (a canary.progress.Snapshot) on the page."""
    if metrics is None:
        return on_look

    def look(snap: Any) -> None:
        metrics.look(snap.verdict, snap.comparisons)
        on_look(snap)

    return look
