"""`loadgen worker`: one remote load worker of `run|canary --nomad-workers` (hidden: the
coordinator starts it, with the run's token in LOADGEN_WORKER_TOKEN)."""

from __future__ import annotations

import os
import sys

import click

from loadgen.errors import ExitCode, UsageError


@click.command("worker", hidden=True)
@click.option("--coordinator", required=True, metavar="URL", help="The coordinator's base URL.")
@click.option("--index", type=click.IntRange(min=0), required=True, help="This worker's index k (0-based).")
@click.option("--of", "of", type=click.IntRange(min=1), required=True, help="How many workers share the schedule.")
@click.option("--lease", type=float, default=10.0, show_default=True,
              help="Stop when the coordinator has not answered for this many seconds.")
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="Read the run's token from this file (Nomad's dispatch payload) instead of LOADGEN_WORKER_TOKEN.")
def worker(coordinator: str, index: int, of: int, lease: float, token_file: str | None) -> int:
    """Run one share of a coordinator's schedule and report it back."""
    from loadgen.distributed.protocol import TOKEN_ENV
    from loadgen.distributed.worker import run_worker

    if index >= of:
        raise UsageError(f"--index {index} is not below --of {of}")
    if token_file:
        with open(token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    else:
        token = os.environ.get(TOKEN_ENV, "")
    if not token:
        raise UsageError(f"no token: set {TOKEN_ENV} or give --token-file")
    outcome = run_worker(coordinator, token, index, of, lease)
    print(f"loadgen worker {index}/{of}: {outcome.reason}, {outcome.sent} requests sent, {outcome.reports} reports "
          f"accepted, final report {'acknowledged' if outcome.final_acked else 'not acknowledged'}",
          file=sys.stderr)
    return ExitCode.OK if outcome.reason in ("stop", "finished", "signal") else ExitCode.UNREACHABLE
