"""`loadgen report`: one self-contained HTML page comparing the stages of one run side by side.

The page must open anywhere, offline, long after the run: inline CSS, the chart as inline SVG
drawn here, no script at all, and a Content-Security-Policy that forbids loading anything, so a
stray external reference would show up as broken instead of quietly phoning out.

It reads only the stages' summary.json files (the contract documented in run_files.py).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from html import escape
from pathlib import Path

from loadgen.errors import UsageError
from loadgen.report.files import write_output
from loadgen.report.summary import PERCENTILE_LABELS, Latency, MalformedSummary, Measures, StageSummary

PERCENTILES = PERCENTILE_LABELS
# Okabe-Ito colours: told apart by colour-blind readers too (its yellow is left out: unreadable on white).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
DASH = "\u2013"


# -- loading -----------------------------------------------------------------------------------

def load_run(run_dir: Path) -> list[StageSummary]:
    """Every stage's summary.json under RUN_DIR, checked, in the order the stages ran."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UsageError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a directory (give a run's directory, reports/<run-id>)")
    paths = sorted(run_dir.glob("*/summary.json"))
    if not paths:
        raise UsageError(f"{run_dir} holds no stage results (no */summary.json); give a run's directory, "
                         "reports/<run-id>")
    loaded = [(_read(p), p.parent.name) for p in paths]
    # `loadgen run --all-stages` walks the stages in order, so start times give the run's order.
    loaded.sort(key=lambda item: (item[0].info.started_at or "", item[1]))
    return [summary for summary, _ in loaded]


def _read(path: Path) -> StageSummary:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:  # bytes that are no Unicode text
        raise UsageError(f"{path}: not valid JSON ({exc})") from None
    try:
        summary = StageSummary.from_json(data)
    except MalformedSummary as exc:
        raise UsageError(f"{path}: malformed summary: {exc}") from None
    if not summary.info.stage:
        # The run writes each stage into a directory of its name.
        summary = dataclasses.replace(summary, info=dataclasses.replace(summary.info, stage=path.parent.name))
    return summary


# -- writing -----------------------------------------------------------------------------------

def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Render RUN_DIR's stages into OUT (default RUN_DIR/report.html) and return where it went."""
    run_dir = Path(run_dir)
    summaries = load_run(run_dir)
    out = Path(out) if out is not None else run_dir / "report.html"
    page = render(run_dir.resolve().name, summaries)
    write_output(out, page)  # through a symlink, device or FIFO; "-" is stdout
    return out


def render(run_id: str, summaries: list[StageSummary]) -> str:
    """The whole page for checked summaries (as load_run returns them), in the given order."""
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(summaries))]
    body = [
        f"<header><h1>loadgen report: {escape(run_id)}</h1>",
        f'<p class="muted">{len(summaries)} stage{"" if len(summaries) == 1 else "s"}: '
        f"{escape(', '.join(_stage(s) for s in summaries))}. Latency is in milliseconds; <b>corrected</b> "
        "counts from each request's intended start (so a stalled generator or server cannot hide its "
        "queueing: coordinated omission), <b>service</b> from the moment it was actually sent.</p></header>",
        _warnings(summaries),
        '<section id="stages"><h2>Stages side by side</h2>',
        _stage_table(summaries, colours),
        "</section>",
        '<section id="spectra"><h2>Percentile spectra</h2>',
        spectrum_svg(summaries, colours),
        '<p class="muted">One line per stage: corrected latency solid with dots, service time dashed. '
        "The x axis is log scale of 1/(1&minus;p), so each step right is ten times rarer; "
        "hover a dot for its value.</p></section>",
        '<section id="instances"><h2>Per instance (APP_ID)</h2>',
        *(_instance_section(s, i, colours[i]) for i, s in enumerate(summaries)),
        "</section>",
    ]
    return page(f"loadgen report: {run_id}", CSP, CSS, [part for part in body if part])


def page(title: str, csp: str, css: str, body: list[str]) -> str:
    """A whole self-contained page: no script, inline CSS, ``csp`` as its Content-Security-Policy."""
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # An empty inline icon, or the browser asks the file system for /favicon.ico.
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title>",
        f"<style>{css}</style>",
        "</head>",
        "<body>",
        *body,
        "</body>",
        "</html>",
        "",
    ])


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#fff;
 max-width:1280px;margin:24px auto;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:4px 10px;vertical-align:top}
thead th{background:#f6f8fa;text-align:center}
tbody th{text-align:left;font-weight:600;background:#f6f8fa;white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
tr.group th{background:#eaeef2;text-align:left}
.scroll{overflow-x:auto}
.bad{color:#b42318;font-weight:600}
.warn{color:#9a6700;font-weight:600}
.ok{color:#1a7f37}
.muted{color:#57606a}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
ul.plain{margin:0;padding-left:18px}
.banner{border:1px solid #d4a72c;background:#fff8c5;padding:8px 12px;border-radius:6px;margin:12px 0}
svg{max-width:100%;height:auto;font-family:inherit}
""".strip()


# -- pieces of the page ------------------------------------------------------------------------

def _stage(summary: StageSummary) -> str:
    return summary.stage


def _latency(lat: Latency | None) -> dict[str, float | None]:
    """A measure's shown percentiles by label; all None when the file has none."""
    return lat.by_label() if lat is not None else dict.fromkeys(PERCENTILES)


def _nonempty(lat: Latency | None) -> Latency | None:
    return lat if lat is not None and lat.to_json() else None


def _ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.2f}" if value < 1000 else f"{value:.0f}"


def _num(value: float | None, fmt: str = "{:,}") -> str:
    return DASH if value is None else fmt.format(value)


def _rate(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f}".removesuffix(".0")


def _app_order(app_id: str) -> tuple[int, int | str]:
    return (0, int(app_id)) if app_id.isdigit() else (1, app_id)


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


def _warnings(summaries: list[StageSummary]) -> str:
    """The reasons not to trust some numbers, before anyone reads them."""
    lines = []
    for s in summaries:
        gen = s.generator
        if gen is not None and gen.valid is False:
            why = "; ".join(gen.problems) or "the generator says so"
            lines.append(f"stage {escape(_stage(s))}: generator numbers not trustworthy: {escape(why)}")
        if s.info.interrupted:
            lines.append(f"stage {escape(_stage(s))}: interrupted; it holds what was collected until then")
    if not lines:
        return ""
    return '<div class="banner" role="note"><ul class="plain">' + "".join(f"<li>{x}</li>" for x in lines) + \
        "</ul></div>"


def _stage_table(summaries: list[StageSummary], colours: list[str]) -> str:
    head = "".join(f'<th scope="col"><a href="#{_anchor(i, s)}">{_swatch(colours[i])}{escape(_stage(s))}</a></th>'
                   for i, s in enumerate(summaries))
    rows: list[str] = []

    def group(title: str) -> None:
        rows.append(f'<tr class="group"><th colspan="{len(summaries) + 1}">{escape(title)}</th></tr>')

    def row(label: str, cells: list[str]) -> None:
        rows.append(f'<tr><th scope="row">{escape(label)}</th>{"".join(cells)}</tr>')

    def num(text: str, cls: str = "") -> str:
        return f'<td class="num {cls}">{text}</td>' if cls else f'<td class="num">{text}</td>'


    group("run")
    infos = [s.info for s in summaries]
    row("target", [f"<td>{escape(i.target or DASH)}</td>" for i in infos])
    row("mode", [f"<td>{escape(_mode(s))}</td>" for s in summaries])
    row("started at", [f"<td>{escape(i.started_at or DASH)}</td>" for i in infos])
    row("duration s", [num(_num(i.duration_s, "{:.1f}")) for i in infos])
    row("rate asked /s", [num(_rate(i.rate_asked)) for i in infos])
    row("rate achieved /s", [num(_rate(i.rate_achieved)) for i in infos])
    row("interrupted", [num("yes", "warn") if i.interrupted else num("no") for i in infos])
    row("generator", [_generator_cell(s) for s in summaries])

    group("requests")
    reqs = [s.requests for s in summaries]
    row("sent", [num(_num(r.sent)) for r in reqs])
    row("ok", [num(_num(r.ok)) for r in reqs])
    row("errors", [_errors_cell(s) for s in summaries])
    row("split by APP_ID", [_split_cell(s) for s in summaries])

    group("corrected latency ms")
    for key in PERCENTILES:
        row(key, [num(_ms(_latency(s.latency_ms.corrected)[key])) for s in summaries])
    group("service time ms")
    row("p99", [num(_ms(_latency(s.latency_ms.service)["p99"])) for s in summaries])

    return (f'<div class="scroll"><table id="stage-table"><thead><tr><th></th>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _mode(s: StageSummary) -> str:
    info = s.info
    mode = info.mode or DASH
    if info.concurrency:
        return f"{mode} loop, {info.concurrency} connections"
    if info.schedule:
        return f"{mode} loop, rate {info.schedule}"
    return mode


def _generator_cell(s: StageSummary) -> str:
    gen = s.generator
    if gen is None or gen.valid is None:
        return f"<td>{DASH}</td>"
    # CPU and workers say how close the generator came to being the bottleneck.
    load = []
    if gen.cpu_share is not None:
        load.append(f"CPU {gen.cpu_share * 100:.0f} %")
    if gen.workers:
        load.append(f"{gen.workers} worker{'' if gen.workers == 1 else 's'}")
    if gen.dropped:  # due by the deadline, never sent: in no other figure of the page
        load.append(f"{gen.dropped:,} dropped")
    detail = f'<div class="muted">{", ".join(load)}</div>' if load else ""
    if gen.valid:
        return f'<td><span class="ok">valid</span>{detail}</td>'
    problems = "".join(f"<li>{escape(p)}</li>" for p in gen.problems)
    return f'<td><span class="bad">INVALID</span><ul class="plain">{problems}</ul>{detail}</td>'


def _errors_cell(s: StageSummary) -> str:
    n = s.requests.errors
    if not n:
        return f'<td class="num">{_num(n)}</td>'
    kinds = "".join(f'<div class="muted">{escape(k)}: {c:,}</div>' for k, c in s.errors.items())
    return f'<td class="num"><span class="bad">{n:,}</span>{kinds}</td>'


def _split_cell(s: StageSummary) -> str:
    split = s.split
    if not split:
        return f"<td>{DASH}</td>"
    items = "".join(
        f"<li>{escape(a)}: {(split[a].share or 0) * 100:.1f} % ({_num(split[a].count)})</li>"
        for a in sorted(split, key=_app_order))
    return f'<td><ul class="plain">{items}</ul></td>'


def _anchor(index: int, s: StageSummary) -> str:
    # Index first: stage names are unique in a run, but copies of a run need not be.
    return f"stage-{index}-{re.sub(r'[^A-Za-z0-9_-]+', '-', _stage(s))}"


def _instance_section(s: StageSummary, index: int, colour: str) -> str:
    name = escape(_stage(s))
    split = s.split
    parts = [f'<section class="stage" id="{_anchor(index, s)}" data-stage="{name}">',
             f"<h3>{_swatch(colour)}{name}</h3>"]
    by_app = s.by_app_id
    if by_app:
        rows = [(f"APP_ID {a}", by_app[a], split[a].share if a in split else None)
                for a in sorted(by_app, key=_app_order)]
        parts.append(_group_table("instance", rows))
    else:
        parts.append('<p class="muted">No answer named an APP_ID.</p>')
    by_status = s.by_status
    if by_status:
        counts = {k: _count(g) or 0 for k, g in by_status.items()}
        total = sum(counts.values())
        parts.append(_group_table("status", [(k, by_status[k], counts[k] / total if total else None)
                                             for k in sorted(by_status)]))
    parts.append("</section>")
    return "\n".join(parts)


def _count(groups: Measures) -> int | None:
    """How many answers a group has: its corrected count, else its service count."""
    lat = _nonempty(groups.corrected) or _nonempty(groups.service)
    return lat.count if lat is not None else None


def _group_table(label: str, rows: list[tuple[str, Measures, float | None]]) -> str:
    head = (f'<tr><th rowspan="2">{label}</th><th rowspan="2">answers</th><th rowspan="2">share</th>'
            f'<th colspan="{len(PERCENTILES)}">corrected ms</th><th colspan="3">service ms</th></tr>'
            f"<tr>{''.join(f'<th>{k}</th>' for k in PERCENTILES)}<th>p50</th><th>p99</th><th>max</th></tr>")
    body = []
    for name, groups, share in rows:
        corrected, service = _latency(groups.corrected), _latency(groups.service)
        count = groups.corrected.count if groups.corrected and groups.corrected.count is not None else \
            groups.service.count if groups.service else None
        cells = [_num(count), DASH if share is None else f"{share * 100:.1f} %",
                 *(_ms(corrected[k]) for k in PERCENTILES), *(_ms(service[k]) for k in ("p50", "p99", "max"))]
        tds = "".join(f'<td class="num">{c}</td>' for c in cells)
        body.append(f'<tr><th scope="row">{escape(name)}</th>{tds}</tr>')
    return f'<div class="scroll"><table><thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'


# -- the percentile spectrum chart -------------------------------------------------------------

WIDTH, HEIGHT = 960, 420
LEFT, RIGHT, TOP, BOTTOM = 64, 220, 16, 56  # margins; the legend lives in the right one
MAX_ODDS = 1e5  # where max (p = 100) is drawn, as in percentile_spectrum.png
X_TICKS = ((1, "0%"), (2, "50%"), (10, "90%"), (100, "99%"), (1e3, "99.9%"), (1e4, "99.99%"), (1e5, "max"))


def x_fraction(p: float) -> float:
    """Where percentile p sits across the x axis (0..1): log10 of 1/(1-p), with max at 1e5."""
    odds = MAX_ODDS if p >= 100 else min(MAX_ODDS, 1 / (1 - p / 100))
    return math.log10(odds) / math.log10(MAX_ODDS)


def nice_ticks(top: float) -> list[float]:
    """0, step, 2*step, ... up to at least `top`, with step 1, 2, 2.5 or 5 times a power of ten."""
    top = top if top > 0 else 1.0
    raw = top / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def spectrum_svg(summaries: list[StageSummary], colours: list[str]) -> str:
    # Taller than usual only when the legend needs it (many stages).
    height = max(HEIGHT, TOP + 60 + 20 * len(summaries))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    values = [v for s in summaries for point in s.spectrum for v in (point.corrected_ms, point.service_ms)
              if v is not None]
    ticks = nice_ticks(max(values, default=0.0))
    y_top = ticks[-1]

    def px(p: float) -> float:
        return LEFT + x_fraction(p) * plot_w

    def py(ms: float) -> float:
        return TOP + plot_h * (1 - ms / y_top)

    out = [f'<svg id="spectrum" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" role="img" aria-labelledby="spectrum-title">',
           '<title id="spectrum-title">Percentile spectra of every stage: latency in ms by percentile</title>',
           f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#8c959f"/>']
    for value in ticks:
        y = py(value)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#d8dee4"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12">{value:.6g}</text>')
    for odds, label in X_TICKS:
        x = LEFT + math.log10(odds) / math.log10(MAX_ODDS) * plot_w
        out.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="#d8dee4"/>'
                   f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle" font-size="12">{label}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle" font-size="13">'
               "percentile (log scale of 1/(1&minus;p))</text>"
               f'<text transform="translate(16 {TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle" '
               'font-size="13">latency (ms)</text>')
    if not values:
        out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle" '
                   'fill="#57606a" font-size="14">no stage has latency data</text>')

    for i, s in enumerate(summaries):
        spectrum, name = [p.to_json() for p in s.spectrum], escape(_stage(s))
        out.append(f'<g class="series" data-series="{name}" stroke="{colours[i]}" fill="{colours[i]}">')
        for column, measure, dash in ((1, "corrected", ""), (2, "service", ' stroke-dasharray="6 4"')):
            points = [(p[0], p[column]) for p in spectrum if p[column] is not None]
            if len(points) > 1:
                line = " ".join(f"{px(p):.1f},{py(v):.1f}" for p, v in points)
                out.append(f'<polyline class="{measure}" points="{line}" fill="none" stroke-width="2"{dash}/>')
            for p, v in points:
                label = "max" if p >= 100 else f"p{p:g}"
                radius = 3.5 if measure == "corrected" else 2
                out.append(f'<circle cx="{px(p):.1f}" cy="{py(v):.1f}" r="{radius}">'
                           f"<title>{name} {label}: {v:.3f} ms {measure}</title></circle>")
        out.append("</g>")
    out.append(_legend(summaries, colours))
    out.append("</svg>")
    return "\n".join(out)


def _legend(summaries: list[StageSummary], colours: list[str]) -> str:
    x, y = WIDTH - RIGHT + 20, TOP + 12
    out = ['<g class="legend" font-size="12">']
    for i, s in enumerate(summaries):
        name = _stage(s)
        shown = name if len(name) <= 22 else name[:21] + "\u2026"
        note = "" if s.spectrum else " (no data)"
        out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 28}" y2="{y - 4}" stroke="{colours[i]}" stroke-width="3"/>'
                   f'<text x="{x + 36}" y="{y}"><title>{escape(name)}</title>{escape(shown)}{note}</text>')
        y += 20
    y += 8
    out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 28}" y2="{y - 4}" stroke="#57606a" stroke-width="2"/>'
               f'<text x="{x + 36}" y="{y}">corrected</text>'
               f'<line x1="{x}" y1="{y + 16}" x2="{x + 28}" y2="{y + 16}" stroke="#57606a" stroke-width="2" '
               f'stroke-dasharray="6 4"/><text x="{x + 36}" y="{y + 20}">service time</text>')
    out.append("</g>")
    return "".join(out)
