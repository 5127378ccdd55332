"""``loadgen shift``: a progressive weight shift, each step proved in the data plane, rolled
back on its own when anything is wrong (loadgen.shift)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from loadgen.addresses import check_admin_address, check_consul_address
from loadgen.canary.consul_view import CLIENT_SERVICE
from loadgen.canary.progress import Snapshot
from loadgen.canary.worse import WorseOptions
from loadgen.commands.metrics_option import metrics_address, metrics_options, start_metrics, watch_looks
from loadgen.commands.options import (
    Duration,
    Rate,
    comparison_options,
    inconclusive_exit_option,
    parse_headers,
    runtime_option,
)
from loadgen.errors import UsageError
from loadgen.load.client import Endpoint
from loadgen.load.schedule import MAX_RATE
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.local import borrowed_stage
from loadgen.mesh.runtime.select import runtime_for
from loadgen.mesh.service_name import check_service_name
from loadgen.paths import project_root
from loadgen.report.delivery import Delivery, stdout_console
from loadgen.report.files import write_output
from loadgen.report.output_paths import check_output_dir, check_outputs
from loadgen.report.run_metrics import RunMetrics
from loadgen.report.shift_html import write_shift_html
from loadgen.report.statusline import StatusLine
from loadgen.report.terminal import live_line
from loadgen.shift.gate import parse_gate
from loadgen.shift.lock import shift_lock
from loadgen.shift.runner import VERIFY_WARMUP_S, ShiftRun, ShiftSettings, ShiftWhere
from loadgen.shift.steps import check_steps
from loadgen.shift.timeline import ShiftReport
from loadgen.shown import shown
from loadgen.stage_load import new_run_id
from loadgen.stats import JudgeConfig, Tolerance
from loadgen.url_userinfo import refuse_userinfo

__all__ = ["shift"]

out = stdout_console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
STDOUT = Path("-")


@click.command()
@click.option("--steps", required=True, metavar="STEPS",
              help="With --subset: its share at each step, like 25,50,100 (the other subsets keep their relative "
                   "proportions). Without: whole splits, like 90/10,50/50,0/100 (or v1=90,v2=10;v1=50,v2=50).")
@click.option("--subset", metavar="NAME", help="The subset the --steps shares go to (a subset of the splitter).")
@click.option("--service", default="service-b", show_default=True, help="The service whose splitter is shifted.")
@click.option("--target", metavar="URL", help="service-a's /hello_a on any deployment (needs --consul). Default: the "
                                              "local mesh at stage splitter.")
@click.option("--consul", "consul_addr", metavar="ADDR", help="The Consul to write to and read from (with --target).")
@click.option("--envoy-admin", "envoy_admins", metavar="ADDR", multiple=True,
              help="A client sidecar's Envoy admin (host:port); repeat it for every client sidecar: each must show "
                   "each step's route, and the first one's counters go beside the traffic. Default: service-a's "
                   "sidecar on the local mesh; none with --target.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Extra request header (repeatable).")
@click.option("--rate", type=Rate(min=1, max=MAX_RATE), default=200.0, show_default=True,
              help="Requests per second during each verification (open loop).")
@click.option("--tolerance", default="2", show_default=True, metavar="POINTS|PCT%",
              help="Allowed deviation of each share, as for `loadgen canary`.")
@click.option("--confidence", type=float, default=99.0, show_default=True, help="Confidence in percent.")
@click.option("--verify-time", type=Duration(), default="60s", show_default=True,
              help="Budget of each step's verification (it stops as soon as the judge is sure; its first 0.5 s "
                   "are a warm-up). One that leaves the judge too few requests at --rate to decide a step's split "
                   "at all is refused before anything is written.")
@click.option("--step-timeout", type=Duration(), default="60s", show_default=True,
              help="Bound of every wait: --apply-cmd, Consul and Envoy showing a step's weights.")
@click.option("--hold", type=Duration(allow_zero=True), default="0s", show_default=True,
              help="Keep each step under load this long after it passed, judged and gated again (soak).")
@click.option("--max-p99", metavar="LATENCY",
              help="Gate: each subset's p99 at most this, like 50ms (finite, more than 0).")
@click.option("--max-errors", metavar="PCT",
              help="Gate: each subset's 5xx share at most this, like 1% (0 to 100; 0: none at all).")
@click.option("--max-p99-ratio", metavar="RATIO", default=None,
              help="Gate: the shifted subset's p99 at most this many times the others' (like 1.2; finite, at "
                   "least 1).")
@comparison_options
@click.option("--apply-cmd", metavar="COMMAND",
              help="Run COMMAND (sh) to apply each step instead of loadgen's own Consul write; it gets "
                   "LOADGEN_WEIGHTS=v1=75,v2=25, LOADGEN_WEIGHT_<SUBSET> and LOADGEN_STEP in its environment.")
@click.option("--no-rollback", is_flag=True, help="On a failure, leave the splitter where the shift stopped.")
@click.option("--force", is_flag=True, help="Start even when the live split does not match the splitter.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the whole timeline as JSON ('-' for stdout).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JUnit XML, one testcase per step ('-' for stdout).")
@click.option("--html", "html_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the HTML report with the timeline plot.  [default: reports/<time>-shift/]")
@metrics_options
@inconclusive_exit_option
@runtime_option
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def shift(steps: str, subset: str | None, service: str, target: str | None, consul_addr: str | None,
          envoy_admins: tuple[str, ...], headers: tuple[str, ...], rate: float, tolerance: str, confidence: float,
          verify_time: float, step_timeout: float, hold: float, max_p99: str | None, max_errors: str | None,
          max_p99_ratio: str | None, latency: str | None, latency_margin: str | None, error_margin: str | None,
          baseline: str | None, apply_cmd: str | None, no_rollback: bool, force: bool, json_path: Path | None,
          junit: Path | None, html_dir: Path | None, metrics_listen: str | None, metrics_allow_remote: bool,
          inconclusive_exit: int | None, runtime: str | None, quiet: bool) -> int:
    """Shift traffic to a subset step by step, proving each step in the data plane.

    Each step's weights are written to the service-splitter (a whole entry, check-and-set),
    timed until Consul's compiled chain and the client sidecar's Envoy show them, then verified:
    the split judged against them (as `loadgen canary --expect consul`) and the latency/error
    gate per subset. Any failure, a concurrent change of the splitter, or Ctrl-C writes the
    starting splitter back and verifies that too.

    Exit codes: 0 every step passed, 1 a step failed (rolled back), 2 usage, 4 unreachable
    before anything was written, 5 another shift of the service is running, 130/143 interrupted
    (rolled back); --inconclusive-exit CODE: a shift stopped only because a step's split was
    INCONCLUSIVE (gate held, rollback not failed) exits CODE instead of 1.

    \b
    Examples:
      loadgen shift --subset v2 --steps 25,50,100
      loadgen shift --steps 90/10,50/50,0/100 --max-p99 50ms --max-errors 1% --junit shift.xml
      loadgen shift --subset v2 --steps 25,50 --apply-cmd ./apply-weights.sh
    """
    # Every option is checked before the lock, Consul or the target is touched (nothing is read or
    # written on a bad one): what needs the splitter (subset names, the first step) is checked by
    # ShiftRun.plan(), still before anything is written.
    settings = shift_settings(steps, subset, service, target, consul_addr, envoy_admins, headers, rate, tolerance,
                              confidence, verify_time, step_timeout, hold, max_p99, max_errors, max_p99_ratio,
                              apply_cmd, no_rollback, force)
    WorseOptions.check(latency, latency_margin, error_margin, baseline)
    if baseline is not None and baseline == subset:
        raise UsageError(f"--baseline {shown(baseline)} is the subset being shifted: compare it with another one")
    settings = replace(settings, latency=latency, latency_margin=latency_margin, error_margin=error_margin,
                       baseline=baseline)
    check_outputs({"--json": json_path, "--junit": junit})
    if html_dir is not None:
        check_output_dir(html_dir, "--html")
    listen = metrics_address(metrics_listen, metrics_allow_remote)
    quiet = quiet or STDOUT in (json_path, junit)
    line = StatusLine(enabled=not quiet)

    def say(msg: str) -> None:
        if not quiet or msg.startswith("warning"):
            line.clear()
            err.print(msg, highlight=False, markup=False)

    def show(snap: Snapshot) -> None:
        line.update(live_line(snap.verdict, snap.sent, snap.elapsed, snap.errors))

    metrics = start_metrics("shift", listen, lambda msg: err.print(msg, highlight=False, markup=False))
    outcome = "error"  # the shift could not run (its one line follows)
    try:
        report = _run(settings, target, consul_addr, envoy_admins, runtime, say, watch_looks(metrics, show), line,
                      metrics)
        report.inconclusive_exit = inconclusive_exit
        outcome = report.outcome
    finally:
        if metrics is not None:
            metrics.finish(outcome=outcome)
    data = report.to_json()
    # The outcome first, then every output, each tried whatever happened to the others
    # (report/delivery.py): a full disk under --json never hides the outcome or its code.
    delivery = Delivery()
    page: list[Path] = []
    delivery.file("the HTML report", lambda: page.append(
        write_shift_html(data, html_dir or project_root() / "reports" / f"{new_run_id()}-shift")))
    if STDOUT not in (json_path, junit):
        delivery.stdout("the outcome", lambda: _print(report, page[0] if page else None))
    for path, what, text in ((json_path, "--json", lambda: json.dumps(data, indent=2) + "\n"),
                             (junit, "--junit", report.junit)):
        if path is not None:
            write = delivery.stdout if path == STDOUT else delivery.file
            write(f"{what} {path}", lambda path=path, text=text: write_output(path, text()))
    if report.failure is not None:
        with contextlib.suppress(OSError):
            err.print(f"loadgen: shift {report.outcome}: {report.failure}"
                      + (f"; {report.rollback_note}" if report.rollback_note else ""), highlight=False, markup=False)
    delivery.tell()
    return delivery.exit_code(report.exit_code)


def shift_settings(steps: str, subset: str | None, service: str, target: str | None, consul_addr: str | None,
                   envoy_admins: tuple[str, ...], headers: tuple[str, ...], rate: float, tolerance: str,
                   confidence: float, verify_time: float, step_timeout: float, hold: float, max_p99: str | None,
                   max_errors: str | None, max_p99_ratio: str | None, apply_cmd: str | None, no_rollback: bool,
                   force: bool) -> ShiftSettings:
    """The shift's options as typed, every one checked that can be without Consul: pure (no I/O).
    Raises UsageError (one line, exit 2)."""
    check_service_name(service)  # it names a config entry and the lock file: no path, no space
    check_steps(steps, subset)
    gate = parse_gate(max_p99, max_errors, max_p99_ratio)
    if gate.max_p99_ratio is not None and subset is None:
        raise UsageError("--max-p99-ratio compares the shifted subset with the others: it needs --subset")
    if target is not None:
        refuse_userinfo(target, "--target")
        if consul_addr is None:
            raise UsageError("--target needs --consul: the shift writes the splitter there")
        Endpoint.parse(target)
    elif consul_addr is not None:
        raise UsageError("--consul goes with --target (the local mesh's Consul is its own)")
    if consul_addr is not None:
        check_consul_address(consul_addr)
    for admin in envoy_admins:
        check_admin_address(admin)
    if apply_cmd is not None and not apply_cmd.strip():
        raise UsageError("--apply-cmd is empty: give the command that applies a step's weights, or leave it out")
    if verify_time <= VERIFY_WARMUP_S:
        raise UsageError(f"--verify-time {verify_time:g}s leaves nothing to judge after each verification's "
                         f"{VERIFY_WARMUP_S:g}s warm-up: make it longer")
    config = JudgeConfig(tolerance=Tolerance.parse(tolerance), alpha=1 - confidence / 100)
    return ShiftSettings(steps=steps, subset=subset, service=service, rate=rate, config=config,
                         verify_time=verify_time, step_timeout=step_timeout, hold=hold, gate=gate,
                         rollback=not no_rollback, force=force, apply_cmd=apply_cmd, headers=parse_headers(headers),
                         warmup=VERIFY_WARMUP_S)


Say = Callable[[str], None]
OnLook = Callable[[Snapshot], None]


def _run(settings: ShiftSettings, target: str | None, consul_addr: str | None, envoy_admins: tuple[str, ...],
         runtime: str | None, say: Say, on_look: OnLook, line: StatusLine,
         metrics: RunMetrics | None = None) -> ShiftReport:
    if target is not None:
        assert consul_addr is not None
        with ConsulClient(consul_addr) as consul:
            first, *more = envoy_admins or (None,)
            where = ShiftWhere(target, consul, consul, first, tuple(a for a in more if a))
            return _shift(settings, where, consul.address, say, on_look, line, metrics)
    with borrowed_stage("splitter", say, runtime_for(runtime) if runtime else None) as mesh:
        admin_port = mesh.sidecar_admin.get(CLIENT_SERVICE)
        admins = envoy_admins or ((f"127.0.0.1:{admin_port}",) if admin_port else ())
        admin, more = (admins[0], tuple(admins[1:])) if admins else (None, ())
        with mesh.consul(write=True) as write, mesh.consul() as read:
            where = ShiftWhere(mesh.service_a_url, write, read, admin, more)
            return _shift(settings, where, write.address, say, on_look, line, metrics)


def _shift(settings: ShiftSettings, where: ShiftWhere, address: str, say: Say, on_look: OnLook,
           line: StatusLine, metrics: RunMetrics | None = None) -> ShiftReport:
    with shift_lock(address, settings.service):
        # The page shows each verification as it goes and its result (RUNNING again at the next one).
        on_result = (lambda r: metrics.look(r.verdict, r.comparisons)) if metrics is not None else None
        run = ShiftRun(settings, where, say, on_look, metrics.observe if metrics is not None else None, on_result)
        start, steps = run.plan()  # every bad input is one line here, before anything is written
        with line:
            return run.run(start, steps)


def _print(report: ShiftReport, page: Path | None = None) -> None:
    """One row per phase: weights, when Consul and Envoy showed them (ms after the write), the
    verdict with the watched subset's observed share and interval, p99 and 5xx per subset."""
    watched = report.subset
    table = Table(title=f"shift of {report.service}: {report.outcome}")
    for col in ("phase", "weights", "consul", "envoy", "traffic", "verdict", "observed", "p99 ms", "5xx", "result"):
        table.add_column(col, justify="right" if col in ("consul", "envoy", "traffic") else "left")
    for p in report.phases:
        names = [watched] if watched in p.observed else list(p.observed)[-1:]
        observed = ", ".join(f"{n} {p.observed[n] * 100:.1f} % [{p.interval[n][0] * 100:.1f}-"
                             f"{p.interval[n][1] * 100:.1f}]" for n in names)
        p99 = ", ".join(f"{n} {h['p99_ms']:.1f}" for n, h in p.subsets.items() if h.get("p99_ms") is not None)
        errors = ", ".join(f"{n} {h['errors']}" for n, h in p.subsets.items() if h.get("errors"))
        table.add_row(p.name, "/".join(f"{w:g}" for w in p.weights.values()), _cell(p.consul_ms),
                      _cell(p.envoy_ms), _cell(p.traffic_ms), p.verdict or "-", observed or "-", p99 or "-",
                      errors or "0", "passed" if p.passed else (p.failure or "not finished"))
    out.print(table)
    out.print("consul, envoy, traffic: ms after the write until Consul's compiled chain, the client sidecar's route "
              "and the traffic (the watched subset's interval holding the new share, not the old) showed the "
              "weights; observed: share [99 % interval]", style="dim", highlight=False)
    if report.rollback_note:
        out.print(report.rollback_note, highlight=False)
    if page is not None:
        out.print(f"report: {page}", style="dim", highlight=False)


def _cell(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.0f}"

