"""`loadgen canary`: parse, call loadgen.canary, print, exit with the verdict's code."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from loadgen.canary import (
    DEFAULT_WARMUP_S,
    CanaryOptions,
    CanaryResult,
    Snapshot,
    budget,
    reachability,
    replay,
    run_live,
    validate,
)
from loadgen.canary.consul_view import CLIENT_SERVICE
from loadgen.canary.expectation import expects_consul
from loadgen.canary.live import judged_prefix_line
from loadgen.canary.options import judged_by_time
from loadgen.canary.unstarted import unstarted_result
from loadgen.canary.worse import latency_plan_for, latency_plan_line
from loadgen.commands.metrics_option import metrics_address, metrics_options, start_metrics, watch_looks
from loadgen.commands.options import (
    Duration,
    Rate,
    comparison_options,
    inconclusive_exit_code,
    inconclusive_exit_option,
    nomad_workers_option,
    parse_headers,
    runtime_option,
)
from loadgen.commands.request_options import build_request_options, request_options
from loadgen.errors import ExitCode, LoadgenError, UsageError
from loadgen.load.schedule import MAX_RATE
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.local import borrowed_stage
from loadgen.mesh.runtime.select import runtime_for
from loadgen.mesh.stages import load_stages
from loadgen.report.brief import brief_counts
from loadgen.report.delivery import Delivery, stdout_console
from loadgen.report.files import write_json, write_output
from loadgen.report.output_paths import check_outputs
from loadgen.report.run_metrics import RunMetrics
from loadgen.report.statusline import StatusLine
from loadgen.report.terminal import comparison_table, live_line, verdict_table
from loadgen.stats import JudgeConfig, SplitSpec, Tolerance, plan_sample_size
from loadgen.stats.bands import band_of, format_band
from loadgen.stats.figures import published
from loadgen.stats.simulate import LOOK_EVERY, simulate

out = stdout_console()
err = Console(stderr=True, soft_wrap=True)
STDOUT = Path("-")  # an output option's value meaning standard output

HELP_EPILOG = """\b
Exit codes: 0 PASS, 1 FAIL, 2 usage or input error, 3 INCONCLUSIVE (or --inconclusive-exit's
CODE), 4 target or mesh unreachable, 5 environment (disk full, port taken, mesh in use), 6 PASS
but an output (stdout, --json, --junit) could not be written, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). The
verdict is printed first and every output is tried; a FAIL or INCONCLUSIVE keeps its code when
an output fails, and an unreachable target (exit 4) still writes --json and --junit.
Interrupted or terminated, the run stops sending, judges what it collected and writes every
output; a PASS or FAIL reached on that keeps its own code (the judge is valid whenever a run
stops), otherwise the code is 130 or 143.

\b
How it decides: each subset has a band, its weight +- the tolerance (never more than
half the weight, so 99/1 is judged within +-0.5 points and a canary that gets nothing
cannot pass). It estimates each subset's true share with an anytime-valid confidence
sequence (a mixture martingale) and looks after every batch. PASS when every share is
proved inside its band, FAIL when one is proved outside (or a subset expected at 0 gets
any traffic, or more than --max-unknown of responses come from unmapped APP_IDs, or more
than --max-errors of requests fail, or the split is proved to have changed during the
run), each wrong at most 1 - confidence of the time however often it looks. --method
fixed instead sends a planned number of requests and judges once (exact Clopper-Pearson
TOST; no change test).

\b
What the guarantee assumes: that the order in which the judge sees answers does not
depend on which subset gave them. The splitter picks a subset for each request
independently of when it was sent, so loadgen judges answers in the order their requests
were sent, up to the earliest request still in flight (held back at most --timeout; the
output says how far the judged prefix trailed at the last look). A canary that is slower
or faster than stable therefore cannot look like a moved split; judging answers as they
complete would (the newest answers favour the faster subset). --replay sorts a recording
by send time the same way, and --subset-from envoy counts requests when the sidecar routes
them, not when they are answered."""


class PlanningHelp(click.Command):
    """Appends the judge's simulated figures (bench/judge_sim.py, stats/simulated.json) to --help."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        figures = published()
        if figures is None:
            formatter.write_text("(No simulated figures for this version of the judge: run "
                                 "bench/judge_sim.py --write-figures.)")
            return
        formatter.write_text(
            f"Requests to a verdict at the defaults (tolerance 2 points, confidence 99 %), simulated "
            f"({figures['runs']:,} monitored runs each, bench/judge_sim.py): the fixed test's n at 90 % power, "
            "the sequential judge's mean (p95) to PASS at the expected split, and to FAIL when the smallest "
            "subset gets nothing. --plan simulates your own settings."
        )
        lines = [f"{'split':<9} {'bands (%)':<18} {'fixed n':>7}  {'PASS mean (p95)':<16}  dead FAIL mean (p95)"]
        config = JudgeConfig()
        for text, row in figures["scenarios"].items():
            spec = SplitSpec.parse(text)
            bands = "/".join(format_band(band_of(w, h)).removesuffix(" %")
                             for w, h in zip(spec.weights, config.half_widths(spec), strict=True))
            passing = f"{row['pass_mean_n']:,} ({row['pass_p95_n']:,})"
            dead = f"{row['starved_mean_n']:,} ({row['starved_p95_n']:,})"
            lines.append(f"{text:<9} {bands:<18} {row['fixed_n_90']:>7,}  {passing:<16}  {dead}")
        with formatter.indentation():
            formatter.write_text("\b\n" + "\n".join(lines))


@click.command(cls=PlanningHelp, epilog=HELP_EPILOG)
@click.option("--expect", required=True, metavar="SPLIT",
              help="Expected weights: 85/15, v1=85,v2=15, 70/20/10, or 'consul': the split Consul compiled for "
                   "service-a's upstream call (its discovery chain: router route, nested splitters, resolver "
                   "DefaultSubset or redirect).")
@click.option("--target", metavar="URL",
              help="service-a's /hello_a on any deployment. Default: the local mesh (brought to the splitter "
                   "stage if needed, and put back afterwards).")
@click.option("--consul", "consul_addr", metavar="ADDR",
              help="Consul to read the APP_ID map and --expect consul from. Default: the local mesh's, or "
                   "127.0.0.1:8500.")
@click.option("--map", "mapping", metavar="MAP",
              help="APP_ID to subset, like 1=v1,2=v2 (default: from Consul); every subset --expect gives traffic "
                   "needs an APP_ID here (unless --subset-from reads subset names).")
@click.option("--upstream", metavar="NAME",
              help="The upstream whose discovery chain service-a's calls take. Default: the one service-a's sidecar "
                   "registration names.")
@click.option("--path", "upstream_path", metavar="PATH",
              help="The path (with query) of service-a's upstream call, matched against the chain's routes. "
                   "Default: /hello_b, what the reference service-a calls. Headers given with --header that "
                   "service-a propagates (x-*, traceparent, tracestate, b3) are matched too.")
@click.option("--envoy-admin", metavar="ADDR",
              help="The client sidecar's Envoy admin (host:port), read before and after the run for the Envoy "
                   "column and its cluster counters. Default: service-a's sidecar on the local mesh; none with "
                   "--target.")
@click.option("--stage", "stage_name", default=None, metavar="STAGE",
              help="Local mesh: the stage to run against (used as it is when the mesh is at it, otherwise "
                   "brought up and put back afterwards). See `loadgen stages`. Not with --target or --replay.  "
                   "[default: splitter]")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'", help="Extra request header (repeatable).")
@request_options(method_flags=("-X", "--request"))  # --method is the judge's
@click.option("--rate", type=Rate(min=0.1, max=MAX_RATE), default=500.0, show_default=True,
              help="Requests per second (open loop).")
@click.option("--max-requests", type=click.IntRange(min=1, max=10_000_000), default=None,
              help="Budget of judged requests (the warm-up's come on top). Default: 4 x the fixed test's n, at "
                   "least 5000 (sequential), or that n (fixed). A budget with fewer judged requests than the judge "
                   "needs to decide the split in its clearest cases (a subset getting none of the answers or all "
                   "of them, or answers exactly at the expected split) is refused: it could only end INCONCLUSIVE.")
@click.option("--max-time", type=Duration(), default="120s", show_default=True,
              help="Budget of time, like 90s or 2m, warm-up included: what is left after the warm-up at --rate "
                   "must leave the judge enough to decide (as for --max-requests), or the run is refused.")
@click.option("--timeout", type=Duration(), default="5s", show_default=True, help="Per-request timeout.")
@click.option("--tolerance", default="2", show_default=True, metavar="POINTS|PCT%",
              help="Allowed deviation of each share: percentage points (2: +-2 points, never more than half a "
                   "subset's weight, so 99/1 gets +-0.5), or a share of each weight (20%: each subset +-20 % of "
                   "its own weight; with two subsets both get the narrower band, so 85/15 is judged within +-3 "
                   "points).")
@click.option("--confidence", type=float, default=99.0, show_default=True,
              help="Confidence in percent (1 - the chance of a wrong PASS or FAIL).")
@click.option("--method", type=click.Choice(["sequential", "fixed"]), default="sequential", show_default=True,
              help="sequential: look after every batch, stop when sure. fixed: planned n, one look.")
@click.option("--max-unknown", type=float, default=1.0, show_default=True,
              help="FAIL when more than this % of responses come from APP_IDs no subset claims.")
@click.option("--max-errors", type=float, default=5.0, show_default=True,
              help="FAIL when more than this % of requests fail (no usable answer).")
@comparison_options
@click.option("--record", type=click.Path(dir_okay=False, path_type=Path), help="Write every sample as JSON Lines.")
@click.option("--replay", "replay_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Judge a recorded JSON Lines file instead of sending traffic (no network: not with --target, "
                   "--consul, --envoy-admin or --stage).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the result as JSON ('-' for stdout). A symlink, device or FIFO is written through.")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JUnit XML for CI ('-' for stdout).")
@click.option("--warmup", type=Duration(allow_zero=True), default=None,
              help="Requests sent in this first stretch are reported but not judged, so a glitch while "
                   "connections open cannot decide the verdict; they come on top of --max-requests and count "
                   "against --max-time (which must be longer). Default 1s live; 0 judges from the first "
                   "request, as a replay does unless given.")
@click.option("--plan", "plan_only", is_flag=True,
              help="Only print how many requests a verdict needs, then exit (not with --replay).")
@metrics_options
@inconclusive_exit_option
@runtime_option
@nomad_workers_option
@click.option("-q", "--quiet", is_flag=True, help="No progress display.")
def canary(expect: str, target: str | None, consul_addr: str | None, mapping: str | None, upstream: str | None,
           upstream_path: str | None, envoy_admin: str | None, subset_from: str, stage_name: str | None,
           headers: tuple[str, ...], request_method: str | None, data: str | None, cacert: str | None,
           insecure: bool,
           rate: float, max_requests: int | None, max_time: float, timeout: float, tolerance: str,
           confidence: float, method: str, max_unknown: float, max_errors: float, latency: str | None,
           latency_margin: str | None, error_margin: str | None, baseline: str | None, record: Path | None,
           replay_path: Path | None, json_path: Path | None, junit: Path | None, warmup: float | None,
           plan_only: bool, metrics_listen: str | None, metrics_allow_remote: bool,
           inconclusive_exit: int | None,
           runtime: str | None, nomad_workers: int | None, nomad_driver: str | None, quiet: bool) -> int:
    """Send traffic through service-a and decide whether service-b's split matches SPLIT.

    Reads service-b's APP_ID from every response, maps it to a subset (v1, v2, ...)
    and judges PASS, FAIL or INCONCLUSIVE; the exit code gates CI. Beside the traffic it
    shows the split Consul compiled (the upstream's discovery chain) and the one the client
    sidecar's Envoy was programmed with; a sidecar that differs from Consul (a stale proxy)
    FAILs the run whatever the traffic did.

    \b
    Examples:
      loadgen canary --expect 85/15
      loadgen canary --expect consul --json result.json --junit junit.xml
      loadgen canary --expect consul --stage header-route --header 'x-canary: 1'
      loadgen canary --target http://10.0.0.5:3000/hello_a --consul 10.0.0.5:8500 --expect v1=90,v2=10
      loadgen canary --replay run.jsonl --expect 85/15
      loadgen canary --expect 85/15 --latency p99 --latency-margin 10% --error-margin 0.5
    """
    options = canary_options(click.get_current_context().params)
    # Everything that can be checked without the network is, before anything starts: a wrong
    # option never costs a mesh bring-up, and an unwritable output never hides a verdict.
    if plan_only and replay_path is not None:
        raise UsageError("--plan plans a live run and --replay judges a recording: give one of them")
    validate(options)
    if nomad_driver is not None and nomad_workers is None:
        raise UsageError("--nomad-driver names the Nomad workers' task driver: give it with --nomad-workers N")
    if nomad_workers is not None and replay_path is not None:
        raise UsageError("--nomad-workers sends the load from Nomad jobs and --replay judges a recording: give one")
    check_outputs({"--json": json_path, "--junit": junit, "--record": record}, inputs={"--replay": replay_path})
    listen = metrics_address(metrics_listen, metrics_allow_remote)
    if listen is not None and (replay_path is not None or plan_only):
        raise UsageError("--metrics-listen shows a live run's metrics: not with --replay or --plan")
    if plan_only:
        return _print_plan(options, json_path)
    to_stdout = STDOUT in (json_path, junit)
    quiet = quiet or to_stdout

    def say(msg: str) -> None:
        if not quiet or msg.startswith("warning:"):
            err.print(msg, highlight=False, markup=False)

    # From here on every requested output is written however the command ends: a signal during
    # the set-up (mesh bring-up, Consul, the reachability probe) is an INCONCLUSIVE result with
    # nothing judged (canary.unstarted); one while the mesh is put back still writes the run's.
    metrics = start_metrics("canary", listen, lambda msg: err.print(msg, highlight=False, markup=False))
    progress = _Progress()
    failed: LoadgenError | None = None
    try:
        result = _run(options, say, quiet, runtime, stage_name or "splitter", progress, metrics, nomad_workers,
                      nomad_driver or "raw_exec")
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (interrupts.Terminated), outside the run's loop
        if progress.result is not None:
            _deliver(progress.result, json_path, junit, to_stdout, print_verdict=False)
            raise
        if progress.sending:
            raise  # a second signal stopped the run hard: there is nothing judged to write
        result = unstarted_result(options, getattr(exc, "signum", signal.SIGINT))
    except LoadgenError as exc:
        # The options were valid: the target or the mesh was unreachable, a part did not come up,
        # the answers named no mapped backend. Every requested output still says so (with the
        # error's code), then the error is the one line it always was.
        if progress.result is not None:  # judged, then something failed on the way out (putting the mesh back)
            _deliver(progress.result, json_path, junit, to_stdout, print_verdict=False)
            raise
        failed, result = exc, unstarted_result(options, None, error=exc)
    if metrics is not None:  # a run that never judged (unreachable, interrupted in its set-up) ends on the page too
        metrics.finish(result.verdict, result.comparisons)
    code = inconclusive_exit_code(result.exit_code, inconclusive_exit)
    delivery = _deliver(result, json_path, junit, to_stdout, print_verdict=failed is None, exit_code=code)
    if failed is not None:
        raise failed
    return delivery.exit_code(code)



def canary_options(params: dict[str, Any]) -> CanaryOptions:
    """The options of a run from what click parsed for `canary` (``ctx.params``): the command and
    ``loadgen serve`` (which parses a posted JSON body with this command's own parameters) build
    them the same way, so both accept and refuse exactly the same values."""
    p = params
    request = build_request_options(p["request_method"], p["data"], p["cacert"], p["insecure"], p["subset_from"],
                                    p["target"])
    config = JudgeConfig(tolerance=Tolerance.parse(p["tolerance"]), alpha=1 - p["confidence"] / 100,
                         max_unknown=p["max_unknown"] / 100, max_errors=p["max_errors"] / 100)
    replay_path, warmup = p["replay_path"], p["warmup"]
    return CanaryOptions(
        expect=p["expect"], target=p["target"], consul=p["consul_addr"], mapping=p["mapping"],
        headers=parse_headers(p["headers"]), rate=p["rate"], max_requests=p["max_requests"], max_time=p["max_time"],
        timeout=p["timeout"], method=p["method"], config=config, record=p["record"], replay=replay_path,
        upstream=p["upstream"], upstream_path=p["upstream_path"], envoy_admin=p["envoy_admin"],
        subset_from=request.identity.text, request_method=request.method, body=request.body, tls=request.tls,
        warmup=warmup if warmup is not None else (0.0 if replay_path is not None else DEFAULT_WARMUP_S),
        stage=p["stage_name"], latency=p["latency"], latency_margin=p["latency_margin"],
        error_margin=p["error_margin"], baseline=p["baseline"],
    )

def _deliver(result: CanaryResult, json_path: Path | None, junit: Path | None, to_stdout: bool,
             print_verdict: bool = True, exit_code: int | None = None) -> Delivery:
    """The verdict first (stdout's table, or the warnings on stderr when an output takes stdout),
    then every output file: each is tried whatever happened to the others, and the ones that
    failed are said on stderr (report/delivery.py; errors.with_output_failure gives the code).
    ``exit_code``: the code the command leaves with when it is not the verdict's own
    (--inconclusive-exit), so --json says the code the process exits with."""
    delivery = Delivery()
    if print_verdict and not to_stdout:
        delivery.stdout("the verdict", lambda: _print_result(result))
    if to_stdout:
        for warning in result.warnings:
            with contextlib.suppress(OSError):
                err.print(f"warning: {warning}", highlight=False, markup=False)
    if json_path is not None:
        write = delivery.stdout if json_path == STDOUT else delivery.file
        data = {**result.to_json(), **({} if exit_code is None else {"exit_code": exit_code})}
        write(f"--json {json_path}", lambda: write_json(json_path, data))
    if junit is not None:
        write = delivery.stdout if junit == STDOUT else delivery.file
        write(f"--junit {junit}", lambda: write_output(junit, result.junit()))
    delivery.tell()
    return delivery


@dataclass
class _Progress:
    """How far a canary got: whether its first request is on its way, and its result once known."""

    sending: bool = False
    result: CanaryResult | None = None

    def started_sending(self) -> None:
        self.sending = True


def _run(options: CanaryOptions, say: Any, quiet: bool, runtime: str | None = None,
         stage_name: str = "splitter", progress: _Progress | None = None,
         metrics: RunMetrics | None = None, nomad_workers: int | None = None,
         nomad_driver: str = "raw_exec") -> CanaryResult:
    progress = progress or _Progress()
    live = _remote_live(nomad_workers, nomad_driver, metrics) if nomad_workers is not None else run_live
    # A plain status line: rich's rendering would delay requests and distort the run.
    line = StatusLine(enabled=not quiet)

    def show(snap: Snapshot) -> None:
        line.update(live_line(snap.verdict, snap.sent, snap.elapsed, snap.errors))

    on_look = watch_looks(metrics, show)
    on_sample = metrics.observe if metrics else None

    started = time.monotonic()
    if options.replay is not None:
        progress.started_sending()  # a replay sends nothing; a signal during it stops it as before
        return replay(options)
    if options.target is not None:
        consul = ConsulClient(options.consul) if options.consul else _default_consul()
        if consul is not None and consul.settings.https and not consul.settings.verify:
            err.print("loadgen: warning: TLS to Consul is NOT verified (CONSUL_HTTP_SSL_VERIFY=false)",
                      highlight=False)
        try:
            with line:
                progress.result = live(options, options.target, consul, say, on_look,
                                           envoy_admin=options.envoy_admin, on_sending=progress.started_sending,
                                           refuse_undecidable=True, on_sample=on_sample)
                if metrics:
                    metrics.finish(progress.result.verdict, progress.result.comparisons)
                return progress.result
        finally:
            if consul:
                consul.close()
    load_stages().get(stage_name)  # an unknown stage is one line (exit 2) before anything starts
    with borrowed_stage(stage_name, say, runtime_for(runtime) if runtime else None) as mesh_target:
        consul = ConsulClient(options.consul) if options.consul else mesh_target.consul()
        admin_port = mesh_target.sidecar_admin.get(CLIENT_SERVICE)
        admin = options.envoy_admin or (f"127.0.0.1:{admin_port}" if admin_port else None)
        try:
            with line:
                result = progress.result = live(
                    options, mesh_target.service_a_url, consul, say, on_look, envoy_admin=admin,
                    notes=[f"local mesh, stage {stage_name} ({time.monotonic() - started:.1f}s to ready)"],
                    on_sending=progress.started_sending, refuse_undecidable=True, on_sample=on_sample)
                if metrics:
                    metrics.finish(result.verdict, result.comparisons)
        finally:
            consul.close()
    return result


def _remote_live(workers: int, driver: str = "raw_exec", metrics: RunMetrics | None = None) -> Any:
    """run_live's stand-in for --nomad-workers: the same result, the load from Nomad jobs; the page
    (``metrics``) counts the workers' requests, sent with their reports (not this process's samples)."""
    from loadgen.distributed.canary_run import run_distributed_canary
    from loadgen.distributed.nomad_jobs import NomadLauncher, coordinator_bind

    bind, port = coordinator_bind()

    def live(options: CanaryOptions, target: str, consul: ConsulClient | None, say: Any, on_look: Any,
             on_sample: Any = None, **kwargs: Any) -> CanaryResult:
        return run_distributed_canary(options, target, consul, say, NomadLauncher(driver=driver, say=say), workers,
                                      on_look=on_look, bind=bind, port=port, metrics=metrics, **kwargs)

    return live


def _default_consul() -> ConsulClient | None:
    """The agent of the consul CLI's environment: CONSUL_HTTP_ADDR's (used even when it does
    not answer, so its failure is named), else the local agent when one answers."""
    client = ConsulClient(timeout=2.0)
    if os.environ.get("CONSUL_HTTP_ADDR") or client.reachable():
        return client
    client.close()
    return None


def _print_result(result: CanaryResult) -> None:
    # A CI log (stdout not a terminal) gets the plain layout, which never cuts a number short.
    out.print(verdict_table(result.verdict, result.three_way, plain=not out.is_terminal))
    if result.comparisons is not None:
        out.print(comparison_table(result.comparisons.to_json(), plain=not out.is_terminal))
    _print_three_way(result.three_way)
    lat = result.latency_ms
    facts = [f"{result.requests} requests in {result.duration_s:.1f}s"]
    if result.rate_achieved is not None:
        facts.append(f"{result.rate_achieved:.0f}/s of {result.rate_asked:g}/s asked")
    if lat:
        facts.append(f"latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms")
    facts.append(f"stopped by {result.stopped_by}")
    out.print("  ".join(facts), style="dim", highlight=False)
    if result.errors:
        errs = ", ".join(f"{k} x{v}" for k, v in sorted(result.errors.items(), key=lambda kv: -kv[1]))
        out.print(f"errors (not judged as samples): {errs}", style="yellow", highlight=False)
    unknown = {a: n for a, n in result.app_id_counts.items() if result.mapping.subset_of(a) is None}
    if unknown:
        out.print(f"APP_IDs no subset claims: {brief_counts(unknown)}", style="yellow", highlight=False, markup=False)
    if result.warmup and result.warmup["requests"]:
        warm = result.warmup
        errs = sum(warm["errors"].values())
        out.print(f"warm-up: {warm['requests']:,} requests in the first {warm['seconds']:g}s not judged"
                  + (f" ({errs:,} of them failed)" if errs else ""), style="dim", highlight=False)
    if result.judged_prefix and (line := judged_prefix_line(result.judged_prefix)):
        out.print(line, style="dim", highlight=False)
    for warning in result.warnings:
        out.print(f"warning: {warning}", style="yellow", highlight=False)
    for note in result.notes:
        style = "yellow" if "stopped answering" in note else "dim"
        out.print(note, style=style, highlight=False)
    out.print(f"APP_ID map: {result.mapping.app_ids} ({result.mapping.source})", style="dim", highlight=False)


def _print_three_way(three_way: dict[str, Any] | None) -> None:
    """Where the Consul and Envoy columns come from: the chain's route and paths, the sidecar's
    config version."""
    if not three_way:
        return
    consul, envoy = three_way.get("consul"), three_way.get("envoy")
    if consul:
        out.print(f"Consul: {consul['upstream']}'s chain for {consul['request']}: {consul['route']}", style="dim",
                  highlight=False)
        for name, path in consul["paths"].items():
            if consul["shares"].get(name):
                out.print(f"  {name}: {path}", style="dim", highlight=False)
    if envoy:
        changed = envoy.get("version_before") not in (None, envoy["version"])
        out.print(f"Envoy: client sidecar {envoy['admin']}, route config {envoy['route_config']} version "
                  f"{envoy['version'] or '?'}" + (f" (was {envoy['version_before']} at the start)" if changed else "")
                  + (f", route {envoy['route']}" if envoy.get("route") else ""), style="dim", highlight=False)
    if three_way.get("stale"):
        out.print(three_way["stale"], style="red", highlight=False)


def _print_plan(options: CanaryOptions, json_path: Path | None) -> int:
    if expects_consul(options.expect):
        raise UsageError("--plan needs the split itself, like --expect 85/15")
    spec = SplitSpec.parse(options.expect)
    report = plan_report(spec, options, progress=None if json_path == STDOUT else err.print)
    if json_path is not None:
        write_output(json_path, json.dumps(report, indent=2) + "\n")
    if json_path == STDOUT:
        return ExitCode.OK
    bands = ", ".join(f"{name} {format_band(band)}" for name, band in report["bands"].items())
    out.print(f"{spec.as_percent()}, {options.config.band_tolerance.describe()}, confidence "
              f"{(1 - options.config.alpha) * 100:g} %: bands {bands}", highlight=False)
    table = Table("power", "fixed test n")
    for power, n in report["fixed_n"].items():
        table.add_row(power, f"{n:,}" if n else "> 10M")
    out.print(table)
    sim = report["sequential"]
    table = Table("sequential judge, true split", "PASS", "FAIL", "INCONCLUSIVE", "mean n", "p95 n",
                  title=f"simulated: {sim['runs']:,} monitored runs, a look every {sim['look_every']} responses, "
                        f"budget {sim['budget']:,}")
    for label, row in sim["cells"].items():
        table.add_row(label, f"{row['pass_rate']:.1%}", f"{row['fail_rate']:.1%}", f"{row['inconclusive_rate']:.1%}",
                      f"{row['mean_n']:,.0f}", f"{row['p95_n']:,.0f}")
    out.print(table)
    budget_ = report["budget"]
    undecided = sim["cells"]["expected split"]["inconclusive_rate"]
    worse = options.worse(spec)
    if worse is not None and (latency := latency_plan_for(worse, spec, options.config.alpha)):
        out.print(latency_plan_line(latency, budget_["can_send"]), highlight=False)
    out.print(f"this run: up to {budget_['max_requests']:,} requests, and at --rate {options.rate:g}/s for at most "
              f"{options.max_time:g}s it can send {budget_['can_send']:,}: at the expected split {undecided:.0%} of "
              "simulated runs end INCONCLUSIVE" + ("" if undecided < 0.05 else " (raise --max-time, --rate or "
                                                   "--max-requests, or widen --tolerance)"),
              style=None if undecided < 0.05 else "yellow", highlight=False)
    return ExitCode.OK


def plan_report(spec: SplitSpec, options: CanaryOptions, progress: Any = None) -> dict[str, Any]:
    """What --plan prints: bands, the fixed test's n, and the sequential judge simulated at this budget."""
    config = options.config
    n_max = budget(options, plan_sample_size(spec, config))
    reachable, _ = reachability(options, spec, n_max)
    widths = config.half_widths(spec)
    report: dict[str, Any] = {
        "expected": spec.as_dict(), "tolerance": {"value": config.band_tolerance.value,
                                                  "relative": config.band_tolerance.relative},
        "confidence": 1 - config.alpha,
        "bands": {name: list(band_of(w, h)) for name, w, h in zip(spec.names, spec.weights, widths, strict=True)},
        "fixed_n": {f"{p:.0%}": plan_sample_size(spec, config, p).fixed_n for p in (0.8, 0.9, 0.95)},
        "budget": {"max_requests": n_max, "can_send": min(n_max, judged_by_time(options)),
                   "reachable": reachable},
    }
    can_send = report["budget"]["can_send"]
    looks = max(can_send // LOOK_EVERY, 1)
    runs = 1000 if looks <= 500 else max(100, 500_000 // looks)
    if progress:
        progress(f"simulating {runs:,} monitored runs of the sequential judge ...", highlight=False)
    truths = {"expected split": np.asarray(spec.weights)}
    positive = [i for i, w in enumerate(spec.weights) if w > 0]
    smallest = min(positive, key=lambda i: spec.weights[i])
    if len(positive) > 1:
        dead = np.asarray(spec.weights, dtype=float)
        dead[smallest] = 0
        truths[f"{spec.names[smallest]} gets nothing"] = dead / dead.sum()
    cells = {}
    for label, truth in truths.items():
        summary = simulate(spec, config, truth, budget=can_send, runs=runs)
        cells[label] = {k: v for k, v in summary.__dict__.items() if k != "runs"}
    report["sequential"] = {"runs": runs, "look_every": LOOK_EVERY, "budget": can_send, "cells": cells}
    return report
