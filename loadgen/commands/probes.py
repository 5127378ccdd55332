"""`loadgen intentions` and `loadgen propagation`: time-to-apply in the data plane."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from loadgen.commands.options import Rate
from loadgen.errors import ExitCode, UsageError
from loadgen.mesh.consul_api import ConsulClient
from loadgen.mesh.local import borrowed_stage
from loadgen.mesh.subsets import live_splitter, subset_map
from loadgen.paths import project_root
from loadgen.probes.intentions import IntentionProbe, PhaseResult, distribution
from loadgen.probes.propagation import PropagationProbe
from loadgen.probes.watch import LOCAL_UPSTREAM
from loadgen.report.files import check_output, write_output
from loadgen.report.probe_plots import intentions_timeline, propagation_timeline
from loadgen.runner import new_run_id
from loadgen.stats import SplitSpec

out = Console()
err = Console(stderr=True, soft_wrap=True)
STAGE_FOR_PROTOCOL = {"tcp": "basic", "http": "l7-router"}


@contextlib.contextmanager
def _mesh(stage: str, target: str | None, consul: str | None, admins: tuple[str, ...], wanted: str,
          say: Any) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(probe URL, Consul address, {sidecar: admin host:port}) -- of the local mesh (a borrowed stage)
    or of any deployment given by --target, --consul and --envoy-admin."""
    if target is None:
        if consul or admins:
            raise UsageError("--consul and --envoy-admin go with --target (the local mesh knows its own)")
        with borrowed_stage(stage, say) as t:
            yield LOCAL_UPSTREAM, t.consul_address, {k: f"127.0.0.1:{v}" for k, v in t.sidecar_admin.items()
                                                     if k.startswith(wanted)}
        return
    if not consul or not admins:
        raise UsageError(f"--target needs --consul ADDR and --envoy-admin NAME=HOST:PORT for each {wanted} sidecar")
    parsed = {}
    for i, item in enumerate(admins):
        name, sep, address = item.rpartition("=")
        address = address.strip()
        if ":" not in address:
            raise UsageError(f"--envoy-admin {item!r} is not [NAME=]HOST:PORT")
        parsed[name.strip() if sep else f"{wanted}-{i + 1}"] = address
    yield target, consul, parsed


def _fmt(v: Any) -> str:
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
@click.option("--strict", is_flag=True, help="Count pooled-connection successes after the deny as violations too.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write a PNG timeline per repeat.  [default: reports/<time>-intentions/]")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every measurement as JSON ('-' for stdout).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
def intentions(repeat: int, rate: float, pooled_rate: float, protocol: str, target: str | None,
               consul_addr: str | None, admins: tuple[str, ...], strict: bool, plots_dir: Path | None,
               json_path: Path | None, quiet: bool) -> int:
    """Time how long a deny intention (service-a -> service-b) takes to bite, and its removal to heal.

    On the local mesh (stage basic for --protocol tcp, l7-router for http; put back afterwards).
    Probe traffic goes to service-a's sidecar (127.0.0.1:9000/hello_b) on fresh connections and on
    pooled keep-alive ones. The clock starts when Consul has committed the write. For each repeat:
    first denied request, the instant from which every new-connection request is denied, and when
    each service-b sidecar's Envoy showed the RBAC rule; then the same for the allow.

    Exit codes: 0 measured, 1 security violation (a new-connection request reached service-b after
    every sidecar showed the deny; with --strict also pooled ones), 2 usage, 4 unreachable.
    """
    if json_path is not None:
        check_output(json_path)  # before anything is changed in Consul
    say = (lambda m: None) if quiet or json_path == Path("-") else (lambda m: err.print(m, highlight=False))
    protocols = ["tcp", "http"] if protocol == "both" else [protocol]
    if target is not None:
        protocols = ["target"]  # whatever protocol the deployment has
    report: dict[str, Any] = {"resolution_ms": round(1000 / rate, 2), "protocols": {}}
    violations = 0
    for proto in protocols:
        stage = STAGE_FOR_PROTOCOL.get(proto, "basic")
        with _mesh(stage, target, consul_addr, admins, "service-b", say) as (url, consul_at, sidecars), \
                ConsulClient(consul_at) as consul:
            probe = IntentionProbe(consul, sidecars, rate_new=rate, rate_pooled=pooled_rate, say=say, upstream=url)
            results = probe.run(repeat)
        report["protocols"][proto] = _summarise(results)
        plots = plots_dir or project_root() / "reports" / f"{new_run_id()}-intentions"
        report["protocols"][proto]["plots"] = [str(p) for p in _intention_plots(plots, proto, results)]
        violations += sum(d.violations + (d.pooled_violations if strict else 0) for d, _ in results)
        if json_path != Path("-"):
            _print(proto, results, report["protocols"][proto], rate)
    report["violations"] = violations
    if json_path is not None:
        write_output(json_path, json.dumps(report, indent=2) + "\n")
    if violations:
        err.print(f"loadgen: {violations} request(s) reached service-b after the deny was in force", highlight=False)
        return ExitCode.FAIL
    return ExitCode.OK


def _intention_plots(directory: Path, proto: str, results: list[tuple[PhaseResult, PhaseResult]]) -> list[Path]:
    paths = []
    for i, phases in enumerate(results, start=1):
        for p in phases:
            marks = {"write": 0.0, "all sidecars show it": _max(p.envoy_ms), "first changed": p.first_ms.get("new"),
                     "all fresh changed": p.all_ms.get("new")}
            paths.append(intentions_timeline(directory / f"{proto}-{i:02d}-{p.action}.png",
                                             f"{p.action} ({proto}), repeat {i}", p.timeline, marks))
    return paths


def _phase_json(p: PhaseResult) -> dict[str, Any]:
    return {"write_index": p.write_index, "first_ms": p.first_ms, "all_ms": p.all_ms, "envoy_ms": p.envoy_ms,
            "pooled_kept_flowing_ms": p.pooled_after_ms, "violations": p.violations,
            "violation_window_ms": p.violation_window_ms,
            "pooled_violations": p.pooled_violations, "requests": p.requests}


def _summarise(results: list[tuple[PhaseResult, PhaseResult]]) -> dict[str, Any]:
    def envoy_max(p: PhaseResult) -> float | None:
        vals = [v for v in p.envoy_ms.values() if v is not None]
        return max(vals) if len(vals) == len(p.envoy_ms) else None

    out_: dict[str, Any] = {"repeats": [{"deny": _phase_json(d), "allow": _phase_json(a)} for d, a in results]}
    for action, idx in (("deny", 0), ("allow", 1)):
        phases = [r[idx] for r in results]
        out_[f"{action}_distribution_ms"] = {
            "first_new_connection": distribution([p.first_ms.get("new") for p in phases]),
            "all_new_connections": distribution([p.all_ms.get("new") for p in phases]),
            "envoy_all_sidecars": distribution([envoy_max(p) for p in phases]),
            "first_pooled": distribution([p.first_ms.get("pooled") for p in phases]),
            "all_pooled": distribution([p.all_ms.get("pooled") for p in phases]),
        }
    return out_


def _print(proto: str, results: list[tuple[PhaseResult, PhaseResult]], summary: dict[str, Any], rate: float) -> None:
    table = Table(title=f"protocol {proto}: ms after Consul committed the write (resolution {1000 / rate:.1f} ms)")
    for col in ("#", "deny envoy", "first denied", "all denied", "pooled", "allow envoy", "first ok", "all ok",
                "violations"):
        table.add_column(col, justify="right")
    for i, (d, a) in enumerate(results, start=1):
        # With protocol tcp, pooled connections set up before the deny usually keep flowing.
        pooled = "kept flowing" if d.all_ms.get("pooled") is None else f"{_fmt(d.all_ms.get('pooled'))}"
        table.add_row(str(i), _fmt(_max(d.envoy_ms)), _fmt(d.first_ms.get("new")), _fmt(d.all_ms.get("new")),
                      pooled, _fmt(_max(a.envoy_ms)), _fmt(a.first_ms.get("new")), _fmt(a.all_ms.get("new")),
                      str(d.violations) + (f" in {d.violation_window_ms:.0f} ms" if d.violations else ""))
    out.print(table)
    dist = Table("deny, ms", "min", "median", "p95", "max", title=f"protocol {proto}: distributions")
    for name, key in (("envoy (all sidecars)", "envoy_all_sidecars"), ("first denied", "first_new_connection"),
                      ("all new denied", "all_new_connections"), ("pooled all denied", "all_pooled")):
        d = summary["deny_distribution_ms"][key]
        dist.add_row(name, *(str(d.get(k, "-")) for k in ("min", "median", "p95", "max")))
    out.print(dist)


def _max(d: dict[str, float | None]) -> float | None:
    vals = [v for v in d.values() if v is not None]
    return max(vals) if len(vals) == len(d) and vals else None


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
    if json_path is not None:
        check_output(json_path)  # before anything is changed in Consul
    say = (lambda m: None) if quiet or json_path == Path("-") else (lambda m: err.print(m, highlight=False))
    with _mesh("splitter", target, consul_addr, admins, "service-a", say) as (url, consul_at, sidecars), \
            ConsulClient(consul_at) as consul:
        mapping = subset_map(consul)
        original = live_splitter(consul)
        new = SplitSpec.parse(weights, names=list(mapping.subsets) if "=" not in weights else None)
        if new.as_dict() == SplitSpec.from_splitter(original).as_dict():
            raise UsageError(f"service-b is already split {new.as_percent()}; give different weights")
        probe = PropagationProbe(consul, next(iter(sidecars.values())), mapping, rate=rate, say=say, upstream=url)
        results = probe.run(original, new, keep)
    directory = plots_dir or project_root() / "reports" / f"{new_run_id()}-propagation"
    plots = [propagation_timeline(directory / f"{i:02d}-to-{r.to.replace(',', '_').replace('=', '')}.png",
                                  f"service-b weights -> {r.to}", r.timeline, new.names[0],
                                  {"write": 0.0, "envoy shows it": r.envoy_ms, "traffic changed": r.change_ms,
                                   "detected": r.detected_ms})
             for i, r in enumerate(results, start=1)]
    data = {"resolution_ms": round(1000 / rate, 2), "plots": [str(p) for p in plots],
            "changes": [{k: v for k, v in r.__dict__.items() if k != "timeline"} for r in results]}
    if json_path is not None:
        write_output(json_path, json.dumps(data, indent=2) + "\n")
    if json_path == Path("-"):
        return ExitCode.OK
    table = Table("change", "envoy ms", "traffic changed ms", "detected ms", "detector delay ms", "share after",
                  title=f"ms after Consul committed the write (probe resolution {1000 / rate:.1f} ms)")
    for r in results:
        after = " ".join(f"{k}:{v * 100:.1f}%" for k, v in r.share_after.items())
        table.add_row(r.to, _fmt(r.envoy_ms), _fmt(r.change_ms), _fmt(r.detected_ms), _fmt(r.detection_delay_ms),
                      after)
    out.print(table)
    return ExitCode.OK
