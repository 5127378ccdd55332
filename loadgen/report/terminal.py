"""The canary's screens: a live line while it runs, a table when it is done."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderResult
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


def verdict_table(verdict: Verdict, three_way: Mapping[str, Any] | None = None, plain: bool = False) -> Group:
    """The verdict per subset; with ``three_way`` (CanaryResult.three_way) the Consul and Envoy
    columns stand beside the traffic's, and the sidecar's counters after it.

    ``plain``: for a CI log (stdout not a terminal) -- no box, and a table too wide for the
    console's width (80, or ``COLUMNS``) becomes one wrapped block per subset, so no number or
    header is ever cut short (rich's table would squeeze a column to "subs…" or "83.1…")."""
    headers, rows = _table_cells(verdict, three_way)
    if plain:
        table: Any = PlainTable(headers, [[*cells[:-1], _PLAIN_MARKS.get(cells[-1], cells[-1])] for cells in rows])
    else:
        table = Table(title=None)
        for i, header in enumerate(headers):
            table.add_column(header, justify="left" if i in (0, len(headers) - 1) else "right")
        for cells in rows:
            table.add_row(*cells[:-1], _MARKS.get(cells[-1], cells[-1]))
    colour = COLOURS[verdict.state]
    head = Text.assemble(("verdict: ", "bold"), (verdict.state.value, f"bold {colour}"), f"  {verdict.reason}")
    extra = []
    for g in verdict.guards:
        if g.count:
            extra.append(f"{g.name}: {g.count} ({_pct(g.share)} %, limit {_pct(g.limit)} %)")
    if verdict.change is not None and verdict.change.detected:
        extra.append(_change_text(verdict))
    if verdict.flapping is not None and verdict.flapping.detected:
        extra.append(_flapping_text(verdict))
    srm = f"SRM chi-square p = {verdict.srm_p:.3g}" if verdict.srm_p is not None else "SRM: no data"
    if verdict.srm_p_anytime is not None:
        srm += f"; anytime-valid p = {verdict.srm_p_anytime:.3g}"
    lines = [table, head, Text(srm, style="dim")]
    lines += [Text(e, style="yellow") for e in extra]
    return Group(*lines)


_MARKS = {"inside": "[green]within[/]", "outside": "[red]OUTSIDE[/]", "undecided": "[yellow]undecided[/]"}
_PLAIN_MARKS = {"inside": "within", "outside": "OUTSIDE", "undecided": "undecided"}


def _table_cells(verdict: Verdict, three_way: Mapping[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    """The table's headers and rows as text; a row's last cell is the subset's status
    (inside/outside/undecided, or "" for a row the judged spec does not have)."""
    rows_3 = (three_way or {}).get("subsets") or {}
    headers = ["subset", "expected", "band"]
    if three_way:
        headers += ["Consul", "Envoy"]
    headers += ["traffic" if three_way else "observed", "interval" if three_way else "true share (interval)", "n"]
    if three_way:
        headers.append("counters")  # the sidecar's per-cluster requests
    headers.append("")
    rows = []
    for s in verdict.subsets:
        row = rows_3.get(s.name) or {}
        cells = [s.name, f"{s.expected * 100:.4g} %", format_band(s.band)]
        if three_way:
            cells += [_share(row.get("consul")), _share(row.get("envoy"))]
        cells += [f"{_pct(s.share)} %", f"{_pct(s.lower)}-{_pct(s.upper)} %", str(s.count)]
        if three_way:
            counters = row.get("envoy_counters")
            cells.append("-" if counters is None else f"{counters['requests']:,}")
        rows.append([*cells, s.status])
    for name, row in rows_3.items():  # what the sidecar or Consul name that the judged spec does not
        if name not in {s.name for s in verdict.subsets} and (row.get("consul") or row.get("envoy")):
            rows.append([name, "-", "-", _share(row.get("consul")), _share(row.get("envoy")), "-", "-", "-", "-", ""])
    return headers, rows


class PlainTable:
    """A table in plain text that never cuts a cell: aligned columns when they fit the console's
    width, otherwise one block per row of "header value" items wrapped between items."""

    GAP = "  "

    def __init__(self, headers: list[str], rows: list[list[str]]) -> None:
        self.headers, self.rows = headers, rows

    def lines(self, width: int) -> list[str]:
        widths = [max(len(c) for c in column) for column in zip(self.headers, *self.rows, strict=True)]
        if sum(widths) + len(self.GAP) * (len(widths) - 1) <= width:
            return [self.GAP.join(c.ljust(w) if i == 0 else c.rjust(w)
                                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()
                    for cells in (self.headers, *self.rows)]
        out = []
        for cells in self.rows:
            items = [f"{h} {c}" if h else c for h, c in zip(self.headers[1:], cells[1:], strict=True) if c]
            line = f"{self.headers[0]} {cells[0]}:"
            for k, item in enumerate(items):
                piece = item + ("," if k < len(items) - 1 else "")
                if len(line) + 1 + len(piece) <= width:
                    line = f"{line} {piece}"
                else:
                    out.append(line)
                    line = "   " + piece
            out.append(line)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines(options.max_width):
            yield Text(line)


def _change_text(verdict: Verdict) -> str:
    change = verdict.change
    assert change is not None and change.before is not None and change.after is not None
    parts = []
    for label, seg in (("before", change.before), ("after", change.after)):
        shares = ", ".join(f"{name} {_pct(share)} %" for name, share in seg.shares.items())
        span = f"{seg.t_start:.1f}-{seg.t_end:.1f}s, " if seg.t_start is not None and seg.t_end is not None else ""
        parts.append(f"{label} ({span}{seg.n} responses): {shares}")
    return "split changed: " + "; ".join(parts)


def _flapping_text(verdict: Verdict) -> str:
    flap = verdict.flapping
    assert flap is not None
    if flap.low is None or flap.high is None:
        return "split moving: proved against one constant split"
    ranges = ", ".join(f"{name} {_pct(flap.low[name])}-{_pct(flap.high[name])} %" for name in flap.low)
    every = f" of ~{flap.window:,} responses" if flap.window else ""
    seconds = f" (~{flap.window_s:.1f}s each)" if flap.window_s else ""
    return f"split moving: over {flap.windows or '?'} windows{every}{seconds}: {ranges}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.4g} %"


COMPARISON_HEADERS = ("compared", "canary", "baseline", "canary / baseline", "verdict")


def comparison_table(comparisons: Mapping[str, Any], plain: bool = False) -> Any:
    """Each canary against the baseline (CanaryResult.comparisons.to_json()): the quantile's or the
    error rate's interval for both, their ratio, and the comparison's verdict."""
    headers, rows = list(COMPARISON_HEADERS), comparison_rows(comparisons)
    if plain:
        return PlainTable(headers, rows)
    table = Table(title=None)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i in (0, len(headers) - 1) else "right")
    for cells in rows:
        state = VerdictState(cells[-1])
        table.add_row(*cells[:-1], f"[{COLOURS[state]}]{cells[-1]}[/]")
    return table


def comparison_rows(comparisons: Mapping[str, Any]) -> list[list[str]]:
    """The comparisons as text cells under COMPARISON_HEADERS (the terminal's table, Locust's tab,
    the HTML report)."""
    rows = []
    for c in comparisons.get("latency", []):
        ratio = c["ratio"]
        rows.append([f"latency {c['quantile']} {c['subset']} vs {c['baseline']}", _ms_range(c["canary_ms"]),
                     _ms_range(c["baseline_ms"]), f"{ratio[0]:.2f}-{_num(ratio[1], '.2f')} x", c["verdict"]])
    for c in comparisons.get("errors", []):
        rows.append([f"errors {c['subset']} vs {c['baseline']}", _rate_range(c["rate_interval"]),
                     _rate_range(c["baseline_interval"]), "", c["verdict"]])
    return rows


def _num(value: float | None, fmt: str) -> str:
    return "inf" if value is None else format(value, fmt)


def _ms_range(bounds: list[float | None]) -> str:
    return f"{_num(bounds[0], '.1f')}-{_num(bounds[1], '.1f')} ms"


def _rate_range(bounds: list[float]) -> str:
    return f"{_pct(bounds[0])}-{_pct(bounds[1])} %"
