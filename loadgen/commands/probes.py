"""`loadgen intentions` and `loadgen propagation`: parse options, call loadgen.probes, print, exit code."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.table import Table

from loadgen.commands.options import Duration, Rate
from loadgen.errors import ExitCode, UsageError
from loadgen.paths import project_root
from loadgen.probes import IntentionsReport, ProtocolResult, TargetOptions, measure_intentions, protocols_to_probe
from loadgen.probes.permission_report import PermissionsReport
from loadgen.probes.permissions import DEFAULT_GRACE_S, measure_permissions
from loadgen.report.files import write_output
from loadgen.report.output_paths import check_output_dir, check_outputs
from loadgen.report.probe_plots import intention_plots, propagation_plots
from loadgen.stage_load import new_run_id

if TYPE_CHECKING:
    from loadgen.probes import PropagationResult

out = Console()
err = Console(stderr=True, soft_wrap=True)


def _cell(v: float | None) -> str:
    """A table's ms: "-" when it did not happen."""
    return "-" if v is None else f"{v:.0f}"


def _remote_options(which: str) -> Any:
    """--target, --consul and --envoy-admin: probing any deployment instead of the local mesh."""
    def decorate(f: Any) -> Any:
        f = click.option("--envoy-admin", "admins", multiple=True, metavar="[NAME=]HOST:PORT",
                         help=f"With --target: the Envoy admin address of {which} (repeatable).")(f)
        f = click.option("--consul", "consul_addr", metavar="ADDR",
                         help="With --target: the Consul agent to write config to.")(f)
        return click.option("--target", metavar="URL", help="Any mesh: service-a's sidecar upstream listener "
                            "URL, like http://HOST:9000/hello_b (default: the local mesh).")(f)

    return decorate


@click.command("intentions")
@click.option("--repeat", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Deny/allow cycles to measure.")
@click.option("--rate", type=Rate(10, 5000), default=500.0, show_default=True,
              help="Requests per second on fresh connections (the resolution is 1/rate).")
@click.option("--pooled-rate", type=Rate(1, 5000), default=200.0, show_default=True,
              help="Requests per second on the pooled keep-alive connections.")
@click.option("--protocol", type=click.Choice(["tcp", "http", "both"]), default="tcp", show_default=True,
              help="service-b's protocol: tcp (stage basic: L4 RBAC) or http (stage l7-router: L7 RBAC).")
@_remote_options("each service-b sidecar")
@click.option("--strict", is_flag=True, help="Count pooled-connection successes after the deny as violations too "
                                            "(with --permissions: every leak, as --grace 0).")
@click.option("--grace", type=Duration(allow_zero=True), default=None, metavar="DURATION",
              help="With --permissions: a denied-class request that reaches service-b this soon after every "
                   "sidecar showed the rules is a leak on a draining connection, not a violation.  [default: 2s]")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write a PNG timeline per repeat.  [default: reports/<time>-intentions/]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every measurement as JSON ('-' for stdout).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JUnit XML ('-' for stdout): a test case per protocol and repeat (with --permissions: "
                   "per repeat and request class), failed on what makes the exit code 1.")
@click.option("--permissions", is_flag=True,
              help="L7 permissions instead: allow only GET /hello_b for service-a and check, per request class, "
                   "that allowed requests reach service-b and denied ones get Envoy's RBAC 403 (stage l7-router; "
                   "--rate is shared by the classes).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def intentions(repeat: int, rate: float, pooled_rate: float, protocol: str, target: str | None,
               consul_addr: str | None, admins: tuple[str, ...], strict: bool, plots_dir: Path | None,
               json_path: Path | None, junit_path: Path | None, permissions: bool, grace: float | None,
               quiet: bool) -> int:
    """Time how long a deny intention (service-a -> service-b) takes to bite, and its removal to heal.

    On the local mesh (stage basic for --protocol tcp, l7-router for http; put back afterwards).
    Probe traffic goes to service-a's sidecar (127.0.0.1:9000/hello_b) on fresh connections and on
    pooled keep-alive ones. The clock starts when Consul has committed the write. For each repeat:
    first denied request, the instant from which every new-connection request is denied, and when
    each service-b sidecar's Envoy showed the RBAC rule; then the same for the allow.

    Exit codes: 0 measured, 1 security violation (a new-connection request reached service-b after
    every sidecar showed the deny; with --strict also pooled ones), 2 usage, 4 unreachable (also when
    probe traffic never steadily succeeds before a deny, or a deny never stops it, within 20 s).

    With --permissions: see the README's "L7 permissions"; exit 1 when a denied-class request reached
    service-b later than --grace after every sidecar showed the permissions (any time with --strict,
    or when the class never went steadily denied), or an allowed-class request was refused.
    """
    if permissions:
        _refuse_with_permissions(protocol, pooled_rate, plots_dir, target)
        if strict and grace:
            raise UsageError("--strict counts every leak (a grace of 0): drop --grace or --strict")
    elif grace is not None:
        raise UsageError("--grace applies to --permissions only")
    given = TargetOptions(target, consul_addr, admins)
    # Every option before anything is read or changed in Consul: a typo must never open or close a path.
    given.check("service-b")
    check_outputs({"--json": json_path, "--junit": junit_path})
    if plots_dir is not None:
        check_output_dir(plots_dir, "--plots")
    to_stdout = Path("-") in (json_path, junit_path)
    say = (lambda m: None) if quiet or to_stdout else (lambda m: err.print(m, highlight=False))
    if permissions:
        grace_s = 0.0 if strict else (DEFAULT_GRACE_S if grace is None else grace)
        return _permissions(repeat, rate, grace_s, json_path, junit_path, say)
    report = IntentionsReport(rate=rate, strict=strict)
    for proto in protocols_to_probe(protocol, given):
        result = measure_intentions(proto, given, repeat, rate, pooled_rate, say)
        plots = plots_dir or project_root() / "reports" / f"{new_run_id()}-intentions"
        result.plots = intention_plots(plots, result)
        report.protocols[proto] = result
        if not to_stdout:
            _print_intentions(result, rate)
    if json_path is not None:
        write_output(json_path, json.dumps(report.to_json(), indent=2) + "\n")
    if junit_path is not None:
        write_output(junit_path, report.junit())
    if report.violations:
        err.print(f"loadgen: {report.violations} request(s) reached service-b after the deny was in force",
                  highlight=False)
        return ExitCode.FAIL
    return ExitCode.OK


def _refuse_with_permissions(protocol: str, pooled_rate: float, plots_dir: Path | None,
                             target: str | None) -> None:
    """Options of the deny/allow probe that mean nothing with --permissions: one line, exit 2."""
    source = click.get_current_context().get_parameter_source
    if source("protocol") == ParameterSource.COMMANDLINE and protocol != "http":
        raise UsageError("--permissions needs service-b at protocol http (stage l7-router): drop --protocol")
    if target is not None:
        raise UsageError("--permissions runs on the local mesh only (stage l7-router); drop --target")
    given = [name for name, used in (("--pooled-rate", source("pooled_rate") == ParameterSource.COMMANDLINE),
                                      ("--plots", plots_dir is not None)) if used]
    if given:
        raise UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to --permissions")


def _permissions(repeat: int, rate: float, grace_s: float, json_path: Path | None, junit_path: Path | None,
                 say: Callable[[str], None]) -> int:
    report = measure_permissions(TargetOptions(), repeat, rate, say, grace_s)
    if json_path is not None:
        write_output(json_path, json.dumps(report.to_json(), indent=2) + "\n")
    if junit_path is not None:
        write_output(junit_path, report.junit())
    if Path("-") not in (json_path, junit_path):
        _print_permissions(report)
    if report.violations or report.wrongly_denied:
        late = ("never steadily denied: " + report.stopped) if report.stopped else \
            f"later than {grace_s * 1000:.0f} ms after every sidecar showed the permissions"
        err.print(f"loadgen: {report.violations} denied-class request(s) reached service-b {late}; "
                  f"{report.wrongly_denied} allowed-class request(s) were refused", highlight=False)
        return ExitCode.FAIL
    return ExitCode.OK


def _print_permissions(report: PermissionsReport) -> None:
    """One row per repeat and class; "denied" and "reached again": first / all, ms after the write."""
    for c in report.classes:
        out.print(f"{c.name}: {c.method} {c.path}" + "".join(f" ({k}: {v})" for k, v in c.headers)
                  + f", should be {c.expect}", highlight=False)
    table = Table(title=f"ms after Consul committed the write (resolution {1000 / report.rate_per_class:.0f} ms "
                        "per class)")
    for col in ("#", "class", "reached", "denied", "errors", "envoy", "denied", "leaked", "violations", "envoy",
                "reached again", "wrongly denied"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for i, cycle in enumerate(report.cycles, start=1):
        r, lift = cycle.restrict, cycle.lift
        for c in report.classes:
            a, b = r.classes[c.name], (lift.classes[c.name] if lift else None)
            denied = "never" if a.never_bit else f"{_cell(a.first_ms)} / {_cell(a.all_ms)}"
            table.add_row(str(i), c.name, str(a.reached + (b.reached if b else 0)),
                          str(a.denied + (b.denied if b else 0)), str(a.errors + (b.errors if b else 0)),
                          _cell(r.all_sidecars_ms), denied,
                          str(a.leaks) + (f" in {a.leak_window_ms:.0f} ms" if a.leaks else ""),
                          str(a.violations),
                          _cell(lift.all_sidecars_ms) if lift else "-",
                          f"{_cell(b.first_ms)} / {_cell(b.all_ms)}" if b else "-",
                          str(a.wrongly_denied + (b.wrongly_denied if b else 0)))
    out.print(table)
    closes = [cy.restrict.drain_closes for cy in report.cycles]
    drained = ("could not be read" if None in closes
               else f"{sum(c for c in closes if c is not None)} draining connection(s) closed by service-b's sidecars")
    out.print(f"leaked: reached service-b after every sidecar showed the rules, on connections opened before "
              f"({drained} in the restrict phases); a violation when later than {report.grace_s * 1000:.0f} ms "
              "after, or when the class was never steadily denied.", highlight=False)
    out.print(f"service-b's service-intentions before: {report.found}; put back as it was.", highlight=False)


def _print_intentions(result: ProtocolResult, rate: float) -> None:
    proto = result.protocol
    table = Table(title=f"protocol {proto}: ms after Consul committed the write (resolution {1000 / rate:.1f} ms)")
    for col in ("#", "deny envoy", "first denied", "all denied", "pooled", "allow envoy", "first ok", "all ok",
                "violations"):
        table.add_column(col, justify="right")
    for i, cycle in enumerate(result.cycles, start=1):
        d, a = cycle.deny, cycle.allow
        # With protocol tcp, pooled connections set up before the deny usually keep flowing.
        pooled = "kept flowing" if d.all_ms.get("pooled") is None else _cell(d.all_ms.get("pooled"))
        table.add_row(str(i), _cell(d.all_sidecars_ms), _cell(d.first_ms.get("new")), _cell(d.all_ms.get("new")),
                      pooled, _cell(a.all_sidecars_ms), _cell(a.first_ms.get("new")), _cell(a.all_ms.get("new")),
                      str(d.violations) + (f" in {d.violation_window_ms:.0f} ms" if d.violations else ""))
    out.print(table)
    dist = Table("deny, ms", "min", "median", "p95", "max", title=f"protocol {proto}: distributions")
    deny = result.distributions("deny")
    for name, key in (("envoy (all sidecars)", "envoy_all_sidecars"), ("first denied", "first_new_connection"),
                      ("all new denied", "all_new_connections"), ("pooled all denied", "all_pooled")):
        d = deny[key]
        dist.add_row(name, *("-" if v is None else str(v) for v in (d.min, d.median, d.p95, d.max)))
    out.print(dist)


@click.command("propagation")
@click.option("--splitter", "weights", required=True, metavar="SPLIT",
              help="The new service-b weights to write, like 50/50 or v1=50,v2=50.")
@click.option("--rate", type=Rate(10, 5000), default=500.0, show_default=True,
              help="Probe requests per second (keep-alive).")
@_remote_options("service-a's sidecar")
@click.option("--keep", is_flag=True, help="Leave the new weights in place (default: restore and time that too).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write a PNG timeline per change.  [default: reports/<time>-propagation/]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the measurements as JSON ('-' for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def propagation(weights: str, rate: float, target: str | None, consul_addr: str | None, admins: tuple[str, ...],
                keep: bool, plots_dir: Path | None, json_path: Path | None, quiet: bool) -> int:
    """Time how long a service-splitter weight change takes to move real traffic.

    On the local mesh at stage splitter (brought up if needed, put back afterwards). From steady
    traffic at the current weights, writes SPLIT and reports: when service-a's Envoy showed the
    new weighted clusters, the estimated instant traffic followed (maximum-likelihood change
    point of the APP_ID stream) and when an online CUSUM detector noticed (and so its delay).
    Then restores the original weights and times that too, unless --keep.
    """
    from loadgen.probes import measure_propagation  # its weights parser brings the statistics package
    from loadgen.stats import SplitSpec

    # Every option before anything is read or changed in Consul (the subsets' names, which need it,
    # are checked after reading it and still before the write).
    SplitSpec.parse(weights)
    given = TargetOptions(target, consul_addr, admins)
    given.check("service-a")
    check_outputs({"--json": json_path})
    if plots_dir is not None:
        check_output_dir(plots_dir, "--plots")
    say = (lambda m: None) if quiet or json_path == Path("-") else (lambda m: err.print(m, highlight=False))
    result = measure_propagation(weights, given, rate, keep, say)
    directory = plots_dir or project_root() / "reports" / f"{new_run_id()}-propagation"
    result.plots = propagation_plots(directory, result)
    if json_path is not None:
        write_output(json_path, json.dumps(result.to_json(), indent=2) + "\n")
    if json_path == Path("-"):
        return ExitCode.OK
    _print_propagation(result, rate)
    return ExitCode.OK


def _print_propagation(result: PropagationResult, rate: float) -> None:
    table = Table("change", "envoy ms", "traffic changed ms", "detected ms", "detector delay ms", "share after",
                  title=f"ms after Consul committed the write (probe resolution {1000 / rate:.1f} ms)")
    for c in result.changes:
        after = " ".join(f"{k}:{v * 100:.1f}%" for k, v in c.share_after.items())
        table.add_row(c.to, _cell(c.envoy_ms), _cell(c.change_ms), _cell(c.detected_ms), _cell(c.detection_delay_ms),
                      after)
    out.print(table)
