"""--metrics-listen and --metrics-allow-remote: a Prometheus /metrics page for `run`, `canary` and
`shift` (report/metrics_server.py serves it, report/run_metrics.py keeps what it shows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from loadgen.errors import UsageError
from loadgen.report.metrics_server import ListenAddress, parse_listen, serve_metrics
from loadgen.report.run_metrics import RunMetrics

__all__ = ["metrics_address", "metrics_options", "start_metrics", "watch_looks"]


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
    ]
    for option in reversed(options):
        func = option(func)
    return func


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
