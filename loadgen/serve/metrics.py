"""GET /metrics of ``loadgen serve``: every run the server keeps, on one Prometheus page.

The exposition is report/prometheus.py's, the same as ``--metrics-listen`` gives one CLI run;
here each run's series carry its id (``run_id``), so runs never clash and a finished run's final
verdict stays scrapeable while the server keeps it (``--keep``). Behind the same token check as
the rest of the API.
"""

from __future__ import annotations

from aiohttp import web

from loadgen.report.prometheus import CONTENT_TYPE, metrics_registry, render
from loadgen.serve.app import MetricsHandler
from loadgen.serve.runs import Runs

__all__ = ["metrics_handler"]


def metrics_handler(runs: Runs) -> MetricsHandler:
    registry = metrics_registry(runs.with_metrics)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=render(registry), headers={"Content-Type": CONTENT_TYPE})

    return metrics
