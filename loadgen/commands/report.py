"""`loadgen report`: one HTML page comparing the stages of a run (logic in loadgen.report.html)."""

from __future__ import annotations

from pathlib import Path

import click

from loadgen.errors import ExitCode
from loadgen.report.files import STDOUT, check_output
from loadgen.report.html import write_report


@click.command("report")
@click.argument("run_dir", metavar="RUN_DIR", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the page ('-' for stdout).  [default: RUN_DIR/report.html]")
def report(run_dir: Path, out: Path | None) -> int:
    """Write one self-contained HTML page comparing the stages of a run in RUN_DIR (reports/<run-id>).

    Per-stage table (requests, rates, errors, latency percentiles, split by APP_ID, generator
    health), overlaid percentile spectra and per-instance latency. It needs no network to open.
    Prints the page's path.

    \b
    Example:
      loadgen run --all-stages --run-id nightly && loadgen report reports/nightly
    """
    if out is not None:
        check_output(out)  # before the run's files are read and rendered
    written = write_report(run_dir, out)
    if str(written) != STDOUT:
        click.echo(str(written))
    return ExitCode.OK
