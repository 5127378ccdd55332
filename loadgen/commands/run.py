"""`loadgen run`: parse, run each stage's load, print a table, point at the reports."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from loadgen import interrupts
from loadgen.commands.metrics_option import metrics_address, metrics_options, start_metrics
from loadgen.commands.options import RunId, nomad_workers_option, parse_headers, runtime_option
from loadgen.commands.request_options import RequestOptions, build_request_options, request_options
from loadgen.errors import ExitCode, LoadgenError, UsageError
from loadgen.load.client import Endpoint
from loadgen.load.engine import LoadPlan
from loadgen.load.reachable import check_reachable
from loadgen.load.schedule import RateSchedule, parse_duration
from loadgen.mesh.local import stage_walk
from loadgen.mesh.runtime.select import runtime_for
from loadgen.mesh.stages import load_stages
from loadgen.paths import project_root
from loadgen.report.delivery import Delivery, stdout_console
from loadgen.report.files import check_output
from loadgen.report.output_paths import check_output_dir
from loadgen.report.run_files import plots_available
from loadgen.report.run_metrics import RunMetrics
from loadgen.report.statusline import StatusLine
from loadgen.report.summary import PERCENTILE_LABELS, Latency
from loadgen.stage_load import LoadProgress, StageResult, load_stage, new_run_id

if TYPE_CHECKING:
    from loadgen.mesh.runtime.base import Target

out = stdout_console()
err = Console(stderr=True, soft_wrap=True)


def _live_line(p: LoadProgress) -> str:
    rate = p.sent / p.elapsed if p.elapsed > 0 else 0
    lat = p.corrected
    lat_txt = "no answers yet"
    if lat.get("count"):
        lat_txt = f"p50 {lat.get('p50', 0):.1f} ms  p99 {lat.get('p99', 0):.1f} ms"
    ok = sum(p.split.values())
    split = "  ".join(f"APP_ID {a}: {100 * n / ok:.1f}%" for a, n in sorted(p.split.items())) if ok else ""
    return f"{p.sent} requests  {rate:.0f}/s  {p.elapsed:.1f}s  {lat_txt}  errors {p.errors}  {split}"


@click.command("run")
@click.option("--stage", "stage_name", metavar="STAGE",
              help="Stage to load: basic, intentions, l7-router, splitter, header-route, nested-splitter (see "
                   "`loadgen stages`).")
@click.option("--all-stages", is_flag=True, help="Walk every stage in order (up -> load -> next) on the local mesh.")
@click.option("--target", metavar="URL", help="Any service-a /hello_a URL (http:// or https://) instead of the "
                                             "local mesh.")
@click.option("--rate", default="200", show_default=True, metavar="RATE",
              help="Open loop: 200 (per second), 100..500 (ramp over the run) or 100:10s,200:10s (steps).")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=None,
              help="Closed loop instead: this many connections, each sending as fast as answers come (not with "
                   "--rate).")
@click.option("--duration", default=None, metavar="DURATION",
              help="How long per stage, like 30s or 2m.  [default: 30s, or the steps' total]")
@click.option("--max-requests", type=click.IntRange(1, 100_000_000), default=100_000_000, help="Hard cap per stage.")
@click.option("--timeout", default="5s", show_default=True, metavar="DURATION", help="Per-request timeout.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Extra request header (repeatable).")
@click.option("--new-connections", is_flag=True,
              help="A fresh TCP connection per request (no keep-alive; over https:// a full TLS handshake each).")
@request_options
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Generator processes (one core each); their histograms merge exactly.")
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every sample as JSON Lines (one stage only).")
@click.option("--out", "out_root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Reports root: a directory, or where one can be made (checked before the load).  "
                   "[default: reports/ in the project]")
@click.option("--run-id", type=RunId(), default=None,
              help="Name of the report directory (one path component); one that already holds reports is refused "
                   "unless --overwrite.  [default: a UTC timestamp, suffixed -2, -3, ... when taken]")
@click.option("--overwrite", is_flag=True, help="Write into an existing --run-id's directory, replacing its reports.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON instead of a table.")
@metrics_options
@runtime_option
@nomad_workers_option
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def run(stage_name: str | None, all_stages: bool, target: str | None, rate: str, concurrency: int | None,
        duration: str | None, max_requests: int, timeout: str, headers: tuple[str, ...], new_connections: bool,
        request_method: str | None, data: str | None, cacert: str | None, insecure: bool, subset_from: str,
        workers: int, record: Path | None, out_root: Path | None, run_id: str | None, overwrite: bool,
        no_plots: bool, as_json: bool, metrics_listen: str | None, metrics_allow_remote: bool, runtime: str | None,
        nomad_workers: int | None, nomad_driver: str | None, quiet: bool) -> int:
    """Drive load through service-a and write latency reports per stage.

    Open loop by default: each request has an intended start from --rate, and latency is
    measured from it (corrected for coordinated omission) as well as from the actual send.
    --duration is a wall-clock limit: a generator too slow for --rate stops sending at it, and
    the requests that were due but never sent are reported as dropped (the run is then marked
    invalid). Reports go to reports/<run-id>/<stage>/: summary.json, histogram.hgrm,
    timeseries.csv, latency_over_time.png and percentile_spectrum.png. Ctrl-C or SIGTERM stops
    sending, writes what was collected and exits 130 or 143.

    \b
    Examples:
      loadgen run --stage splitter --rate 200 --duration 30s
      loadgen run --all-stages --rate 300 --duration 20s
      loadgen run --stage basic --concurrency 16 --duration 10s
      loadgen run --target http://127.0.0.1:3000/hello_a --rate 100..800 --duration 60s
      loadgen run --target https://shop.example/hello_a --cacert ca.pem --method POST --data @order.json \
          --header 'Content-Type: application/json' --subset-from json:upstream.app_id
    """
    book = load_stages()
    if all_stages and (stage_name or target):
        raise UsageError("--all-stages walks the local mesh's stages; do not combine it with --stage or --target")
    if not all_stages and not stage_name:
        if not target:
            raise UsageError("give --stage STAGE (or --all-stages, or --target URL)")
        stage_name = "target"
    stages = book.names if all_stages else [stage_name]
    if not target:
        for s in stages:
            book.get(str(s))  # unknown stage -> exit 2 before anything starts
    if nomad_driver is not None and nomad_workers is None:
        raise UsageError("--nomad-driver names the Nomad workers' task driver: give it with --nomad-workers N")
    if nomad_workers is not None and (workers > 1 or record):
        raise UsageError("--nomad-workers runs the load in Nomad jobs: not with --workers or --record")
    if record and len(stages) > 1:
        raise UsageError("--record writes one stage's samples; use it with --stage")
    if target:
        Endpoint.parse(target, "--target")  # a malformed URL is exit 2 before anything starts
    request = build_request_options(request_method, data, cacert, insecure, subset_from, target)
    if concurrency is not None and click.get_current_context().get_parameter_source("rate") \
            is not ParameterSource.DEFAULT:
        raise UsageError("--rate is the open loop's schedule and --concurrency runs a closed loop: give one of them")
    if record:
        check_output(record)
    schedule = None if concurrency else RateSchedule.parse(rate)
    # An empty --duration is a mistake (a shell variable that was not set), not "the default".
    seconds = parse_duration(duration) if duration is not None else \
        (schedule.total_seconds if schedule else None) or 30.0
    timeout_s = parse_duration(timeout)
    hdrs = parse_headers(headers)
    reports = out_root or project_root() / "reports"
    check_output_dir(reports, "--out" if out_root is not None else "the reports directory")
    root = report_dir(reports, run_id, overwrite)
    listen = metrics_address(metrics_listen, metrics_allow_remote)
    say = (lambda m: None) if quiet or as_json else (lambda m: err.print(m, highlight=False, markup=False))
    if not no_plots and not plots_available():
        no_plots = True
        if not quiet:
            err.print("run: no PNG plots: matplotlib is not installed here (the loadgen image leaves it out); "
                      "every other report file is written", highlight=False, markup=False)
    metrics = start_metrics("run", listen, lambda m: err.print(m, highlight=False, markup=False))
    results: list[StageResult] = []
    failed: LoadgenError | None = None
    try:
        # One borrow of the local mesh for every stage: each is switched to in place, and what was
        # there before is put back once at the end (not between stages).
        with contextlib.nullcontext(None) if target else \
                stage_walk(say, runtime_for(runtime) if runtime else None) as borrow:
            for s in stages:
                result = _one_stage(str(s), target, borrow, schedule, concurrency, seconds, max_requests, timeout_s,
                                    hdrs, new_connections, record, root / str(s), not no_plots, say,
                                    quiet or as_json, workers, request, metrics, nomad_workers,
                                    nomad_driver or "raw_exec")
                results.append(result)
                if result.interrupted:
                    break
    except LoadgenError as exc:
        # The options were valid, a stage could not run (the target unreachable, the mesh not
        # coming up): --json still says so, with what the stages before it measured; then the
        # error is its usual one line and code.
        if not as_json:
            raise
        failed = exc
    delivery = Delivery()
    for r in results:  # report files a full disk stopped: every other one was still written
        delivery.failures += [f"stage {r.stage}'s report file {failure}" for failure in r.files_failed]
    if as_json:
        document: dict[str, Any] = {"run_id": root.name, "reports": str(root),
                                    "stages": [r.summary.to_json() for r in results]}
        if failed is not None:
            document["error"] = {"message": failed.message, "exit_code": int(failed.code)}
        delivery.stdout("--json", lambda: _write_stdout(json.dumps(document, indent=2, default=str) + "\n"))
    else:
        delivery.stdout("the results table", lambda: (_print_table(results),
                                                       out.print(f"reports: {root}", highlight=False)))
    delivery.tell()
    if failed is not None:
        raise failed
    code: int = ExitCode.OK
    signum = next((r.signum for r in results if r.signum is not None), None)
    if signum is not None:
        word = interrupts.describe(signum)
        with contextlib.suppress(OSError):
            err.print(f"loadgen: {word}; the report holds what was collected", highlight=False)
        code = interrupts.exit_code(signum)
    return delivery.exit_code(code)


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def report_dir(reports: Path, run_id: str | None, overwrite: bool) -> Path:
    """Where this run's reports go: ``reports/<run-id>``. A given --run-id whose directory already holds
    something is refused unless ``overwrite`` (an earlier run's reports would be replaced without a
    word); the default, a timestamp, takes the next free ``-2``, ``-3``, ... instead."""
    if run_id is not None:
        root = reports / run_id
        if not overwrite and _holds_something(root):
            raise UsageError(f"--run-id {run_id}: {root} already holds reports; give another --run-id, or "
                             "--overwrite to replace them")
        return root
    base = new_run_id()
    root, n = reports / base, 1
    while _holds_something(root):
        n += 1
        root = reports / f"{base}-{n}"
    return root


def _holds_something(path: Path) -> bool:
    try:
        return path.is_dir() and any(path.iterdir())
    except OSError:
        return False  # unreadable: check_output_dir says why


def _one_stage(stage: str, target: str | None, borrow: Callable[[str], Target] | None,
               schedule: RateSchedule | None, concurrency: int | None,
               seconds: float, max_requests: int, timeout: float, headers: dict[str, str], new_connections: bool,
               record: Path | None, out_dir: Path, plots: bool, say: Any, quiet: bool, workers: int,
               request: RequestOptions | None = None,
               metrics: RunMetrics | None = None, nomad_workers: int | None = None,
               nomad_driver: str = "raw_exec") -> StageResult:
    def go(url: str, runtime_name: str) -> StageResult:
        plan = LoadPlan(url=url, schedule=schedule, max_requests=max_requests, max_time=seconds, timeout=timeout,
                        headers=headers, new_connection=new_connections, concurrency=concurrency,
                        rate=schedule.peak_rate if schedule and len(schedule.segments) == 1
                        and schedule.segments[0].start_rate == schedule.segments[0].end_rate else None)
        plan = (request or RequestOptions()).apply(plan)
        # The run's own request (method, body, TLS): a target that answers it is one the run can load.
        check_reachable(url, headers, timeout, plan.client())
        what = f"{concurrency} connections, closed loop" if concurrency else f"rate {schedule.text if schedule else ''}"
        say(f"stage {stage}: {what} for {seconds:g}s against {url}" + (f", {workers} workers" if workers > 1 else "")
            + (f", {nomad_workers} Nomad workers" if nomad_workers else ""))
        # A plain status line: rich's rendering would delay requests and distort the latency.
        with StatusLine(enabled=not quiet) as line:
            return load_stage(stage, plan, runtime_name, out_dir, lambda p: line.update(_live_line(p)), record,
                              plots, nomad_workers or workers, metrics,
                              _remote(nomad_workers, say, nomad_driver, out_dir, metrics))

    if borrow is None:
        assert target is not None
        return go(target, "external")
    mesh_target = borrow(stage)
    return go(mesh_target.service_a_url, mesh_target.runtime)


def _remote(nomad_workers: int | None, say: Any, driver: str = "raw_exec", out_dir: Path | None = None,
            metrics: RunMetrics | None = None) -> Any:
    """load_stage's ``remote`` for --nomad-workers (None: the load runs here); each worker's own
    figures go to ``out_dir``/workers.json; ``metrics``: the page, fed the workers' counts."""
    if nomad_workers is None:
        return None
    from loadgen.distributed.nomad_jobs import NomadLauncher, coordinator_bind
    from loadgen.distributed.stage_run import run_remote_workers

    bind, port = coordinator_bind()
    return lambda plan, progress, interrupted: run_remote_workers(plan, nomad_workers,
                                                                  NomadLauncher(driver=driver, say=say), progress,
                                                                  interrupted, say, bind=bind, port=port,
                                                                  out_dir=out_dir, metrics=metrics)


def _print_table(results: list[StageResult]) -> None:
    table = Table("")
    for r in results:
        table.add_column(r.stage + (" (interrupted)" if r.interrupted else ""), justify="right")
    rows: list[tuple[str, list[str]]] = []
    summaries = [r.summary for r in results]

    def cell(lat: Latency | None, label: str) -> str:
        value = lat.by_label()[label] if lat is not None and lat.count else None
        return f"{value:.2f}" if value is not None else "-"

    rows.append(("requests", [str(s.requests.sent) for s in summaries]))
    rows.append(("rate achieved /s", [f"{s.info.rate_achieved:.0f}" for s in summaries]))
    # Due by the deadline but never sent (the generator fell behind): in no figure below.
    rows.append(("dropped", ["-" if s.info.mode == "closed" else f"{s.requests.dropped}" for s in summaries]))
    rows.append(("errors", [str(s.requests.errors) for s in summaries]))
    for label in PERCENTILE_LABELS:
        rows.append((f"{label} ms", [cell(s.latency_ms.corrected, label) for s in summaries]))
    rows.append(("service p99 ms", [cell(s.latency_ms.service, "p99") for s in summaries]))
    rows.append(("split by APP_ID", [" ".join(f"{a}:{(v.share or 0) * 100:.1f}%" for a, v in s.split.items()) or "-"
                                     for s in summaries]))
    rows.append(("generator", ["ok" if s.generator and s.generator.valid else "[red]INVALID[/]" for s in summaries]))
    for name, vals in rows:
        table.add_row(name, *vals)
    out.print("latency corrected for coordinated omission (from each request's intended start)",
              style="dim", highlight=False)
    out.print(table)
    for r in results:
        s = r.summary
        for problem in s.generator.problems if s.generator else []:
            out.print(f"[yellow]{r.stage}: numbers not trustworthy: {problem}[/]", highlight=False)
        for failed in s.info.recording_failed or []:
            out.print(f"{r.stage}: warning: {failed} (the run went on and is fully reported)", style="yellow",
                      highlight=False)
        if s.errors:
            errs = ", ".join(f"{k} x{v}" for k, v in s.errors.items())
            out.print(f"{r.stage}: errors: {errs}", style="yellow", highlight=False)
