"""The HTML report of a `loadgen shift`: one page beside its PNG timeline, from the --json timeline only.

Like `loadgen report`'s page it opens offline, long after the shift: inline CSS, no script, and a
Content-Security-Policy that loads nothing but the PNG next to it. Every text from the timeline
(failures name options and upstreams, a reason may quote a command's output) is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from loadgen.report.files import write_output
from loadgen.report.html import CSS, DASH, page
from loadgen.report.shift_plot import shift_timeline_png, watched_subset
from loadgen.report.terminal import comparison_rows

__all__ = ["PNG_NAME", "write_shift_html"]

PNG_NAME = "shift.png"
# 'self' and file: for the PNG beside the page (opened from disk, some browsers do not count a
# file: URL as 'self'); nothing is ever fetched from anywhere else.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' file:"
EXTRA_CSS = """
.outcome{font-size:16px;margin:8px 0}
img.timeline{max-width:100%;height:auto;border:1px solid #d0d7de}
tr.rollback th{color:#b42318}
td.reason{max-width:420px}
td.nw{white-space:nowrap}
""".strip()


def write_shift_html(report: dict[str, Any], out_dir: Path) -> Path:
    """Write ``out_dir``/shift.png and ``out_dir``/index.html for ``report`` (a shift's to_json());
    returns the page's path. The PNG is written first, so the page never points at nothing."""
    out_dir = Path(out_dir)
    shift_timeline_png(report, out_dir / PNG_NAME)
    page = out_dir / "index.html"
    write_output(page, render_shift(report))
    return page


def render_shift(report: Mapping[str, Any]) -> str:
    service = str(report.get("service") or "?")
    title = f"loadgen shift of {service}"
    body = [
        f"<header><h1>{escape(title)}</h1>",
        _outcome(report),
        "</header>",
        '<section id="timeline"><h2>Timeline</h2>',
        f'<img class="timeline" src="{PNG_NAME}" alt="{escape(_alt(report), quote=True)}">',
        '<p class="muted">Top: the configured weight of the watched subset (black steps), its observed share '
        "during each verification with the 99 % interval as a band (red: the rollback), and marks at each "
        "write (dashed), when the client sidecar's Envoy showed it (dotted) and at each verdict (solid; green "
        "passed, red failed). Bottom: each subset's p99 over each phase.</p></section>",
        '<section id="phases"><h2>Phases</h2>',
        _phase_table(report),
        '<p class="muted">consul, envoy: ms after the write until Consul\'s compiled chain and the client '
        "sidecar's route showed the weights; traffic ms: until the watched subset's interval held the new share "
        "and no longer the old. Observed: share [99 % interval]. p99 and 5xx per subset over the "
        "phase's verification (5xx from the client sidecar's counters; " + DASH + ": not read).</p></section>",
    ]
    return page(title, CSP, f"{CSS}\n{EXTRA_CSS}", body)


# -- pieces of the page ------------------------------------------------------------------------

def _outcome(report: Mapping[str, Any]) -> str:
    outcome = str(report.get("outcome") or "?")
    cls = "ok" if outcome == "shifted" else "bad"
    planned = " \u2192 ".join(_weights(w) for w in report.get("planned") or [])
    subset = report.get("subset")
    lines = [f'<p class="outcome"><b class="{cls}">{escape(outcome)}</b>'
             f" (exit {escape(str(report.get('exit_code', DASH)))})</p>",
             f'<p class="muted">from {escape(_weights(report.get("start") or {}))}'
             + (f" through {escape(planned)}" if planned else "")
             + (f", shifting {escape(str(subset))}" if subset else ", whole splits") + "</p>"]
    failure = report.get("failure")
    notes = []
    if failure:
        notes.append(f'<li><span class="bad">failure:</span> {escape(str(failure))}</li>')
    if report.get("rollback_note"):
        cls = "ok" if report.get("rolled_back") else "bad"
        notes.append(f'<li><span class="{cls}">rollback:</span> {escape(str(report["rollback_note"]))}</li>')
    if report.get("concurrent_change"):
        notes.append('<li><span class="warn">someone else changed the splitter during the shift</span></li>')
    if notes:
        lines.append('<div class="banner" role="note"><ul class="plain">' + "".join(notes) + "</ul></div>")
    return "\n".join(lines)


def _alt(report: Mapping[str, Any]) -> str:
    return (f"timeline of the shift of {report.get('service') or '?'}: {report.get('outcome') or '?'}"
            + (f" ({report['failure']})" if report.get("failure") else ""))


def _phase_table(report: Mapping[str, Any]) -> str:
    phases = list(report.get("phases") or [])
    if not phases:
        return '<p class="muted">No phase was recorded.</p>'
    watched = watched_subset(report)
    compared = any(p.get("comparisons") for p in phases)
    head = ("phase", "weights", "consul ms", "envoy ms", "traffic ms", "verdict", "observed", "p99 ms", "5xx",
            *(("canary vs baseline",) if compared else ()), "gate", "result")
    rows = ["<thead><tr>" + "".join(f'<th scope="col">{h}</th>' for h in head) + "</tr></thead><tbody>"]
    for p in phases:
        rollback = p.get("name") == "rollback"
        cells = [
            f'<td class="nw">{escape(_weights(p.get("weights") or {}, names=True))}</td>',
            f'<td class="num">{_ms(p.get("consul_ms"))}</td>',
            f'<td class="num">{_ms(p.get("envoy_ms"))}</td>',
            f'<td class="num">{_ms(p.get("traffic_ms"))}</td>',
            f"<td>{_verdict(p)}</td>",
            f'<td class="nw">{_observed(p, watched)}</td>',
            f'<td class="nw">{_per_subset(p, "p99_ms")}</td>',
            f'<td class="nw">{_per_subset(p, "errors")}</td>',
            *([f'<td class="nw">{_compared(p.get("comparisons"))}</td>'] if compared else []),
            f'<td class="reason">{_gate(p.get("gate"), p.get("hold"))}</td>',
            f'<td class="reason">{_result(p)}</td>',
        ]
        row_cls = ' class="rollback"' if rollback else ""
        rows.append(f'<tr{row_cls}><th scope="row">{escape(str(p.get("name") or "?"))}</th>{"".join(cells)}</tr>')
    rows.append("</tbody>")
    return '<div class="scroll"><table>' + "".join(rows) + "</table></div>"


def _weights(weights: Mapping[str, Any], names: bool = False) -> str:
    if not weights:
        return DASH
    if names:
        return ", ".join(f"{n} {_num(w)} %" for n, w in weights.items())
    return "/".join(_num(w) for w in weights.values())


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _ms(value: Any) -> str:
    return DASH if not isinstance(value, int | float) else f"{value:,.0f}"


def _verdict(p: Mapping[str, Any]) -> str:
    verdict = p.get("verdict")
    if not verdict:
        return DASH
    cls = {"PASS": "ok", "FAIL": "bad"}.get(str(verdict), "warn")
    reason = p.get("reason")
    tip = f' title="{escape(str(reason), quote=True)}"' if reason else ""
    requests = p.get("requests")
    count = f'<br><span class="muted">{requests:,} requests</span>' if isinstance(requests, int) and requests else ""
    return f'<span class="{cls}"{tip}>{escape(str(verdict))}</span>{count}'


def _observed(p: Mapping[str, Any], watched: str | None) -> str:
    """Every subset's observed share and interval, the watched one first."""
    observed: Mapping[str, Any] = p.get("observed") or {}
    interval: Mapping[str, Any] = p.get("interval") or {}
    if not observed:
        return DASH
    names = sorted(observed, key=lambda n: n != watched)
    parts = []
    for name in names:
        share = observed[name]
        if not isinstance(share, int | float):
            continue
        text = f"{name} {share * 100:.1f} %"
        bounds = interval.get(name)
        if isinstance(bounds, list | tuple) and len(bounds) == 2 and None not in bounds:
            text += f" [{bounds[0] * 100:.1f}{DASH}{bounds[1] * 100:.1f}]"
        parts.append(escape(text))
    return "<br>".join(parts) or DASH


def _per_subset(p: Mapping[str, Any], key: str) -> str:
    subsets: Mapping[str, Any] = p.get("subsets") or {}
    parts = []
    for name, health in subsets.items():
        value = (health or {}).get(key)
        if key == "p99_ms":
            shown = DASH if value is None else f"{value:.1f}"
            answers = (health or {}).get("answers")
            if answers is not None:
                shown += f' <span class="muted">({answers:,} answers)</span>'
        else:
            shown = DASH if value is None else f"{value:,}"
            if value:
                shown = f'<span class="bad">{shown}</span>'
        parts.append(f"{escape(str(name))} {shown}")
    return "<br>".join(parts) or DASH


def _compared(comparisons: Mapping[str, Any] | None) -> str:
    """Each latency/error comparison of the phase: what was compared, the canary / baseline ratio
    (latency) or both error rates, and its verdict (the reason as a tooltip)."""
    if not comparisons:
        return DASH
    parts = []
    judged = [*comparisons.get("latency", []), *comparisons.get("errors", [])]
    for cells, c in zip(comparison_rows(comparisons), judged, strict=True):
        what, canary, baseline, ratio, verdict = cells
        figures = ratio if ratio else f"{canary} vs {baseline}"
        cls = {"PASS": "ok", "FAIL": "bad"}.get(verdict, "warn")
        tip = escape(str(c.get("reason") or ""), quote=True)
        parts.append(f'{escape(what)}: {escape(figures)} <span class="{cls}" title="{tip}">{escape(verdict)}</span>')
    return "<br>".join(parts) or DASH


def _gate(gate: Mapping[str, Any] | None, hold: Mapping[str, Any] | None) -> str:
    """The gate's problems (each broke it) and notes (what was not judged); the soak's too."""
    parts = []
    for label, g in (("", gate), ("hold: ", (hold or {}).get("gate"))):
        if not g:
            continue
        held = g.get("held")
        parts.append(f'{escape(label)}<span class="{"ok" if held else "bad"}">{"held" if held else "broken"}</span>')
        parts += [f'<span class="bad">{escape(str(x))}</span>' for x in g.get("problems") or []]
        parts += [f'<span class="muted">{escape(str(x))}</span>' for x in g.get("notes") or []]
    if hold:
        parts.append(escape(f"hold {_num(hold.get('seconds'))} s: {hold.get('verdict') or DASH}, "
                            f"{hold.get('requests') or 0:,} requests"))
    return "<br>".join(parts) or f'<span class="muted">{DASH} (not gated)</span>'


def _result(p: Mapping[str, Any]) -> str:
    if p.get("passed"):
        return '<span class="ok">passed</span>'
    failure = p.get("failure")
    if failure:
        return f'<span class="bad">{escape(str(failure))}</span>'
    return '<span class="warn">not finished</span>'
