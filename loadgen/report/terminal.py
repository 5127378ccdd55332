"""The canary's screens: a live line while it runs, a table when it is done."""

from __future__ import annotations

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


def verdict_table(verdict: Verdict) -> Group:
    table = Table(title=None)
    table.add_column("subset")
    table.add_column("expected", justify="right")
    table.add_column("band", justify="right")
    table.add_column("observed", justify="right")
    table.add_column("true share (interval)", justify="right")
    table.add_column("n", justify="right")
    table.add_column("")
    marks = {"inside": "[green]within[/]", "outside": "[red]OUTSIDE[/]", "undecided": "[yellow]undecided[/]"}
    for s in verdict.subsets:
        table.add_row(s.name, f"{s.expected * 100:.4g} %", format_band(s.band),
                      f"{_pct(s.share)} %", f"{_pct(s.lower)}-{_pct(s.upper)} %", str(s.count), marks[s.status])
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
