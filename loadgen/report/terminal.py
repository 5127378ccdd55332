"""The canary's screens: a live line while it runs, a table when it is done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from loadgen.stats import Verdict, VerdictState
from loadgen.stats.bands import format_band

COLOURS = {VerdictState.PASS: "green", VerdictState.FAIL: "red", VerdictState.INCONCLUSIVE: "yellow",
           VerdictState.RUNNING: "cyan"}


def _pct(x: float) -> str:
    return f"{x * 100:.1f}" if x >= 0.1 or x == 0 else f"{x * 100:.2f}"


def live_line(verdict: Verdict, sent: int, elapsed: float, errors: int) -> str:
    rate = sent / elapsed if elapsed > 0 else 0.0
    shares = "  ".join(f"{s.name} {_pct(s.share)}% [{_pct(s.lower)}-{_pct(s.upper)}]" for s in verdict.subsets)
    errs = f"  errors {errors}" if errors else ""
    return f"{sent} requests  {rate:.0f}/s  {elapsed:.1f}s{errs}  |  {shares}  |  {verdict.state.value}"


def verdict_table(verdict: Verdict, three_way: Mapping[str, Any] | None = None) -> Group:
    """The verdict per subset; with ``three_way`` (CanaryResult.three_way) the Consul and Envoy
    columns stand beside the traffic's, and the sidecar's counters after it."""
    rows = (three_way or {}).get("subsets") or {}
    table = Table(title=None)
    table.add_column("subset")
    table.add_column("expected", justify="right")
    table.add_column("band", justify="right")
    if three_way:
        table.add_column("Consul", justify="right")
        table.add_column("Envoy", justify="right")
    table.add_column("traffic" if three_way else "observed", justify="right")
    table.add_column("interval" if three_way else "true share (interval)", justify="right")
    table.add_column("n", justify="right")
    if three_way:
        table.add_column("counters", justify="right")  # the sidecar's per-cluster requests
    table.add_column("")
    marks = {"inside": "[green]within[/]", "outside": "[red]OUTSIDE[/]", "undecided": "[yellow]undecided[/]"}
    for s in verdict.subsets:
        row = rows.get(s.name) or {}
        cells = [s.name, f"{s.expected * 100:.4g} %", format_band(s.band)]
        if three_way:
            cells += [_share(row.get("consul")), _share(row.get("envoy"))]
        cells += [f"{_pct(s.share)} %", f"{_pct(s.lower)}-{_pct(s.upper)} %", str(s.count)]
        if three_way:
            counters = row.get("envoy_counters")
            cells.append("-" if counters is None else f"{counters['requests']:,}")
        table.add_row(*cells, marks[s.status])
    for name, row in rows.items():  # what the sidecar or Consul name that the judged spec does not
        if name not in {s.name for s in verdict.subsets} and (row.get("consul") or row.get("envoy")):
            table.add_row(name, "-", "-", _share(row.get("consul")), _share(row.get("envoy")), "-", "-", "-", "-", "")
    colour = COLOURS[verdict.state]
    head = Text.assemble(("verdict: ", "bold"), (verdict.state.value, f"bold {colour}"), f"  {verdict.reason}")
    extra = []
    for g in verdict.guards:
        if g.count:
            extra.append(f"{g.name}: {g.count} ({_pct(g.share)} %, limit {_pct(g.limit)} %)")
    if verdict.change is not None and verdict.change.detected:
        extra.append(_change_text(verdict))
    srm = f"SRM chi-square p = {verdict.srm_p:.3g}" if verdict.srm_p is not None else "SRM: no data"
    if verdict.srm_p_anytime is not None:
        srm += f"; anytime-valid p = {verdict.srm_p_anytime:.3g}"
    lines = [table, head, Text(srm, style="dim")]
    lines += [Text(e, style="yellow") for e in extra]
    return Group(*lines)


def _change_text(verdict: Verdict) -> str:
    change = verdict.change
    assert change is not None and change.before is not None and change.after is not None
    parts = []
    for label, seg in (("before", change.before), ("after", change.after)):
        shares = ", ".join(f"{name} {_pct(share)} %" for name, share in seg.shares.items())
        span = f"{seg.t_start:.1f}-{seg.t_end:.1f}s, " if seg.t_start is not None and seg.t_end is not None else ""
        parts.append(f"{label} ({span}{seg.n} responses): {shares}")
    return "split changed: " + "; ".join(parts)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.4g} %"
