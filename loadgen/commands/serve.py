"""`loadgen serve`: the canary as an HTTP API (loadgen.serve), for controllers that call a URL."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import replace

import click
from aiohttp import web
from rich.console import Console

from loadgen.addresses import check_consul_address
from loadgen.commands.options import Duration
from loadgen.errors import EnvironmentProblem, UsageError
from loadgen.serve.app import ServeSettings, build_app
from loadgen.serve.body import TargetAllowList
from loadgen.serve.connections import CappedSite
from loadgen.serve.listen import TOKEN_ENV, Listen, listen_settings
from loadgen.serve.metrics import metrics_handler
from loadgen.serve.runs import Runs

__all__ = ["serve"]

err = Console(stderr=True, soft_wrap=True)


@click.command()
@click.option("--listen", default="127.0.0.1:8089", show_default=True, metavar="HOST:PORT",
              help=f"Where to listen. Loopback needs nothing more; any other address needs {TOKEN_ENV} (clients "
                   "send it as Authorization: Bearer) and --tls-cert/--tls-key.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, exists=True), default=None, help="PEM certificate chain.")
@click.option("--tls-key", type=click.Path(dir_okay=False, exists=True), default=None, help="PEM private key.")
@click.option("--consul", "consul_addr", metavar="ADDR", default=None,
              help="The Consul every canary reads (APP_ID map, --expect consul, the Consul column), with the "
                   "consul CLI's environment (CONSUL_HTTP_TOKEN, TLS). Clients cannot choose another. Default: "
                   "CONSUL_HTTP_ADDR when set, else none (canaries then need 'map' and a split).")
@click.option("--allow-target", "allow", multiple=True, metavar="PREFIX|HOST|CIDR",
              help="Where canaries may send traffic (repeatable): a URL prefix (http://service-a:3000/), a host, "
                   "or a network (10.0.0.0/8). Default: anywhere. Applies to 'target' and 'envoy_admin'.")
@click.option("--max-runs", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Canaries running at once; one more is refused with 429.")
@click.option("--max-run-time", type=Duration(), default="10m", show_default=True,
              help="The longest max_time a canary may ask for.")
@click.option("--max-body", type=click.IntRange(256, 1024 * 1024), default=16384, show_default=True,
              help="The largest request body in bytes (413 above).")
@click.option("--body-timeout", type=Duration(), default="10s", show_default=True,
              help="How long a client may take to send its body (408 after).")
@click.option("--gate-wait", type=Duration(), default="8s", show_default=True,
              help="How long POST /v1/gate waits for a verdict before answering 503 RUNNING (keep it under the "
                   "webhook's timeout).")
@click.option("--keep", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Ended canaries kept for GET.")
@click.option("--max-connections", type=click.IntRange(1, 10_000), default=100, show_default=True,
              help="Client connections open at once; one more is answered 503 and closed (slow clients cannot "
                   "use up the descriptors the running canaries need).")
def serve(listen: str, tls_cert: str | None, tls_key: str | None, consul_addr: str | None, allow: tuple[str, ...],
          max_runs: int, max_run_time: float, max_body: int, body_timeout: float, gate_wait: float,
          keep: int, max_connections: int) -> int:
    """Serve the canary over HTTP: POST /v1/canaries, GET and DELETE /v1/canaries/{id}, POST /v1/gate.

    POST /v1/canaries takes `loadgen canary`'s options as JSON ({"expect": "85/15", "target":
    "http://service-a:3000/hello_a", "tolerance": 5}), checked exactly as the CLI checks them, and
    answers 201 {"id": ...}; GET /v1/canaries/{id} answers `canary --json`'s JSON plus "state"
    (RUNNING, then PASS, FAIL or INCONCLUSIVE); DELETE cancels. POST /v1/gate answers a Flagger
    webhook: 200 PASS, 412 FAIL, 503 INCONCLUSIVE or still running, 502 no verdict.

    \b
    Examples:
      loadgen serve
      LOADGEN_API_TOKEN=$(cat token) loadgen serve --listen 0.0.0.0:8089 --tls-cert c.pem --tls-key k.pem \\
          --allow-target http://service-a:3000/ --consul consul:8500
    """
    settings = listen_settings(listen, tls_cert, tls_key)
    consul = consul_addr if consul_addr is not None else (os.environ.get("CONSUL_HTTP_ADDR") or None)
    if consul is not None:
        if not consul.strip():
            raise UsageError("--consul is empty: give [http|https://]host:port, or leave it out")
        check_consul_address(consul)
    for entry in allow:
        if not entry.strip():
            raise UsageError("--allow-target is empty: give a URL prefix, a host or a network")
    runs = Runs(max_runs=max_runs, keep=keep, consul_addr=consul)
    app = build_app(runs, ServeSettings(
        token=settings.token, loopback=settings.loopback, max_body=max_body, body_timeout=body_timeout,
        allow=TargetAllowList(tuple(a.strip() for a in allow)), max_time_limit=max_run_time, gate_wait=gate_wait),
        metrics=metrics_handler(runs))
    log_to_stderr()
    about = (f"{'token required' if settings.token else 'no token'}; at most {max_runs} canaries at once; "
             f"Consul: {consul or 'none'}")
    try:
        asyncio.run(_serve(app, settings, about, max_connections))
    except OSError as exc:
        raise EnvironmentProblem(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:  # Ctrl-C / SIGTERM: the runs were cancelled and judged on the way out
        pass
    err.print("loadgen serve: stopped", highlight=False)
    return 0


# INFO from these only: the server's own lines and aiohttp's access log. The canaries' HTTP clients
# (httpx, which logs every request at INFO) stay at WARNING, or each run would write a line per
# Consul or Envoy admin read into the server's log.
LOG_INFO_FROM = ("loadgen", "aiohttp.access")


def log_to_stderr() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    for name in LOG_INFO_FROM:
        logging.getLogger(name).setLevel(logging.INFO)


async def _serve(app: web.Application, settings: Listen, about: str, max_connections: int) -> None:
    # keepalive_timeout: also how long a connection may take to send its first request's headers.
    runner = web.AppRunner(app, access_log_format='%a "%r" %s %b %Tfs', keepalive_timeout=15.0,
                           shutdown_timeout=15.0)
    await runner.setup()
    site = CappedSite(runner, settings.host, settings.port, max_connections, ssl_context=settings.tls)
    await site.start()
    port = runner.addresses[0][1]  # --listen ...:0 picks one
    err.print(f"loadgen serve: listening on {replace(settings, port=port).url} ({about})", highlight=False,
              markup=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()  # on_shutdown cancels every run and waits for their results
