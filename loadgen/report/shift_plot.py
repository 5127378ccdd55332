"""The PNG timeline of a `loadgen shift`, drawn from its --json timeline (ShiftReport.to_json()) only.

Top: the watched subset's configured weight (a step line: it changes when a step is written),
its observed share over each verification with the 99 % interval as a band, and a mark at each
write, at the moment the client sidecar's Envoy showed it and at each verdict. Bottom: each
subset's p99 over every phase's span. The rollback is drawn in red so it cannot be read as a step.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadgen.report.files import write_bytes

__all__ = ["shift_timeline_png", "watched_subset"]

# Okabe-Ito colours, as the HTML report (told apart by colour-blind readers too).
SUBSET_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000")
SHARE = "#0072B2"
ROLLBACK = "#C62828"
PASSED = "#1A7F37"
FAILED = "#C62828"
OPEN = "#9A6700"  # a phase that never got a verdict (stopped, or failed before verifying)
MARK = "#57606A"


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def watched_subset(report: Mapping[str, Any]) -> str | None:
    """The subset the steps shift (--subset); with whole splits the last one, as the runner's looks."""
    if report.get("subset"):
        return str(report["subset"])
    for weights in [report.get("start") or {}, *(p.get("weights") or {} for p in report.get("phases") or [])]:
        if weights:
            return str(list(weights)[-1])
    return None


def shift_timeline_png(report: dict[str, Any], path: Path, dpi: int = 100) -> Path:
    """Draw ``report`` (a shift's to_json()) into the PNG ``path``, replaced atomically; returns ``path``."""
    plt = _plt()
    phases = list(report.get("phases") or [])
    subset = watched_subset(report)
    end = _end_of(phases)
    # Failures quote options, upstreams and a command's output: a '$' in them is text, not mathtext
    # (which would mangle it, or fail the whole drawing on a stray backslash).
    with plt.rc_context({"text.parse_math": False}):
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), dpi=dpi, sharex=True,
                                          gridspec_kw={"height_ratios": [2.2, 1]})
        try:
            _phase_spans(top, bottom, phases, end)
            _configured(top, report, phases, subset, end)
            _observed(top, phases, subset)
            _marks(top, bottom, phases, subset)
            _latency(bottom, phases, end)
            top.set_xlim(0, end * 1.02)
            top.set_ylim(-3, 125)  # room above 100 % for the phase names and the marks' labels
            top.set_yticks([0, 25, 50, 75, 100])
            top.set_ylabel(f"share of {subset or '?'} (%)")
            top.grid(axis="y", alpha=0.3)
            _legend(top)
            bottom.set_xlabel("seconds since the shift began")
            bottom.set_ylabel("p99 (ms)")
            bottom.grid(axis="y", alpha=0.3)
            _legend(bottom)
            fig.suptitle(_title(report), fontsize=10, x=0.01, ha="left")
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
        finally:
            plt.close(fig)
    write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _legend(ax: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # a timeline with nothing drawn has nothing to explain
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


# -- the pieces ------------------------------------------------------------------------------------

def _end_of(phases: list[Mapping[str, Any]]) -> float:
    """The last instant the timeline knows of (a stopped phase has no ended_s)."""
    times = [0.0]
    for p in phases:
        times += [t for t in (p.get("started_s"), p.get("written_s"), p.get("ended_s")) if t is not None]
        times += [look[0] for look in p.get("looks") or []]
        if p.get("written_s") is not None and p.get("envoy_ms") is not None:
            times.append(p["written_s"] + p["envoy_ms"] / 1000)
    return max(max(times), 1.0)


def _span(p: Mapping[str, Any], end: float) -> tuple[float, float]:
    start = p.get("started_s") or 0.0
    stop = p.get("ended_s")
    if stop is None:  # stopped mid-phase: it lasted until the last thing it recorded
        looks = p.get("looks") or []
        stop = max([start, p.get("written_s") or start, *(lk[0] for lk in looks)]) if looks else end
    return start, stop


def _is_rollback(p: Mapping[str, Any]) -> bool:
    return p.get("name") == "rollback"


def _weights_label(weights: Mapping[str, float]) -> str:
    return "/".join(f"{w:g}" for w in weights.values())


def _phase_spans(top: Any, bottom: Any, phases: list[Mapping[str, Any]], end: float) -> None:
    """Every phase named over its span with its verdict under the name; the rollback's span tinted red."""
    for i, p in enumerate(phases):
        a, b = _span(p, end)
        rollback = _is_rollback(p)
        tint = ROLLBACK if rollback else ("#000000" if i % 2 else None)
        for ax in (top, bottom):
            if tint is not None:
                ax.axvspan(a, b, color=tint, alpha=0.08 if rollback else 0.03, linewidth=0)
        name = str(p.get("name") or "?")
        weights = _weights_label(p.get("weights") or {})
        width = b - a
        head = _fitting([f"{name} \u00b7 {weights}", f"{name}\n{weights}", name.removeprefix("step "), ""],
                        width, end, 8)
        verdict, colour = _verdict_word(p)
        word = _fitting([verdict, verdict.split(",")[0], "\u2713" if p.get("passed") else "\u2717"], width, end, 7.5)
        top.text((a + b) / 2, 123, head, ha="center", va="top", fontsize=8, linespacing=1.1,
                 color=ROLLBACK if rollback else "#1B1F24", fontweight="bold" if rollback else "normal")
        top.text((a + b) / 2, 123 - 5.5 * (head.count("\n") + 1), word, ha="center", va="top", fontsize=7.5,
                 color=colour, fontweight="bold")


def _verdict_word(p: Mapping[str, Any]) -> tuple[str, str]:
    """What the phase's verdict line says, and its colour."""
    verdict, failure = p.get("verdict"), p.get("failure")
    if p.get("passed"):
        return verdict or "passed", PASSED
    if p.get("ended_s") is None:
        return "not finished", OPEN
    if not failure:
        return verdict or "no verdict", OPEN
    kind = _short_failure(str(failure))
    if verdict == "PASS":  # the split held, something else did not: say what
        return f"split PASS, {kind} FAIL", FAILED
    return f"{verdict or kind}: failed" if verdict else f"{kind}: failed", FAILED


def _fitting(candidates: list[str], width_s: float, end: float, fontsize: float) -> str:
    """The first text whose longest line fits ``width_s`` seconds of the x axis (estimated from
    the figure's size: the axes are about 70 % of its 10 inches; a character about 0.6 em)."""
    room_pt = width_s / (end * 1.02) * 10 * 72 * 0.70 - 4
    for text in candidates:
        if max((len(line) for line in text.split("\n")), default=0) * 0.6 * fontsize <= room_pt:
            return text
    return ""


def _configured(top: Any, report: Mapping[str, Any], phases: list[Mapping[str, Any]], subset: str | None,
                end: float) -> None:
    """What the splitter held: the start until the first write, then each written phase's weights."""
    if subset is None:
        return
    xs, ys = [0.0], [float((report.get("start") or {}).get(subset, 0.0))]
    for p in phases:
        written = p.get("written_s")
        if written is None:  # the start check writes nothing; an --apply-cmd that failed neither
            continue
        xs.append(written)
        ys.append(float((p.get("weights") or {}).get(subset, 0.0)))
    xs.append(end)
    ys.append(ys[-1])
    top.step(xs, ys, where="post", color="#1B1F24", linewidth=1.6, label=f"configured weight of {subset}")


def _observed(top: Any, phases: list[Mapping[str, Any]], subset: str | None) -> None:
    """Each verification's looks: the observed share and its interval, one segment per phase
    (a new verification starts from no requests, so joining them would draw a jump that never was)."""
    labelled = {"step": False, "rollback": False}
    for p in phases:
        looks = [lk for lk in p.get("looks") or [] if len(lk) >= 4 and None not in lk[:4]]
        if not looks:
            continue
        kind = "rollback" if _is_rollback(p) else "step"
        colour = ROLLBACK if kind == "rollback" else SHARE
        t = [lk[0] for lk in looks]
        share, lower, upper = ([100 * lk[i] for lk in looks] for i in (1, 2, 3))
        suffix = " (rollback)" if kind == "rollback" else ""
        top.fill_between(t, lower, upper, color=colour, alpha=0.18, linewidth=0,
                         label=None if labelled[kind] else f"99 % interval{suffix}")
        top.plot(t, share, color=colour, linewidth=1.1,
                 label=None if labelled[kind] else f"observed share of {subset or '?'}{suffix}")
        labelled[kind] = True


def _marks(top: Any, bottom: Any, phases: list[Mapping[str, Any]], subset: str | None) -> None:
    """A dashed line at each write, dotted where the client sidecar's Envoy showed it, solid at the
    verdict (green passed, red failed). The write and Envoy lines carry small upright labels on
    their outer sides, in the half of the panel away from the phase's weight (where the share is)."""
    seen: set[str] = set()

    def once(label: str) -> str | None:
        if label in seen:
            return None
        seen.add(label)
        return label

    box = {"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.6}
    for p in phases:
        rollback = _is_rollback(p)
        written, envoy_ms, consul_ms = p.get("written_s"), p.get("envoy_ms"), p.get("consul_ms")
        weight = float((p.get("weights") or {}).get(subset or "", 0.0))
        y, va = (97, "top") if weight < 50 else (2, "bottom")
        if written is not None:
            colour = ROLLBACK if rollback else MARK
            for ax in (top, bottom):
                ax.axvline(written, color=colour, linestyle="--", linewidth=0.9,
                           label=once("write") if ax is top else None)
            label = "write" + (f", consul +{consul_ms:.0f} ms" if consul_ms is not None else "")
            top.text(written, y, label, rotation=90, ha="right", va=va, fontsize=6.5, color=colour, bbox=box)
            if envoy_ms is not None:
                shown_at = written + envoy_ms / 1000
                for ax in (top, bottom):
                    ax.axvline(shown_at, color=colour, linestyle=":", linewidth=1.1,
                               label=once("Envoy showed it") if ax is top else None)
                top.text(shown_at, y, f"envoy +{envoy_ms:.0f} ms", rotation=90, ha="left", va=va, fontsize=6.5,
                         color=colour, bbox=box)
        ended = p.get("ended_s")
        if ended is None:
            continue
        _, colour = _verdict_word(p)
        for ax in (top, bottom):
            ax.axvline(ended, color=colour, linewidth=1.3, label=once("verdict") if ax is top else None)
        gate = p.get("gate") or {}
        if gate.get("held") is False:  # the latency panel is where the reason is: say it there
            bottom.text(ended, 0.97, "gate failed ", transform=bottom.get_xaxis_transform(), ha="right", va="top",
                        fontsize=7.5, color=FAILED, fontweight="bold")


def _short_failure(failure: str) -> str:
    """The kind of failure in a word or two: 'gate', 'hold', 'stale proxy', ..."""
    head = failure.split(":", 1)[0].strip()
    return head if len(head) <= 14 else "failed"


def _latency(bottom: Any, phases: list[Mapping[str, Any]], end: float) -> None:
    """Each subset's p99 as a level over the phase it was measured in; 5xx written beside it."""
    names: list[str] = []
    for p in phases:
        for name in p.get("subsets") or {}:
            if name not in names:
                names.append(name)
    colours = {n: SUBSET_COLOURS[i % len(SUBSET_COLOURS)] for i, n in enumerate(names)}
    top_ms = 0.0
    labelled: set[str] = set()
    for p in phases:
        a, b = _span(p, end)
        for name, health in (p.get("subsets") or {}).items():
            p99 = (health or {}).get("p99_ms")
            if p99 is None:
                continue
            top_ms = max(top_ms, p99)
            bottom.hlines(p99, a, b, color=colours[name], linewidth=2.2,
                          label=None if name in labelled else f"p99 {name}")
            labelled.add(name)
            errors = (health or {}).get("errors")
            note = f"{p99:.0f}" + (f" ({errors} 5xx)" if errors else "")
            # Staggered along the span, so two subsets with close p99s do not print over each other.
            x = a + (b - a) * (0.02 + 0.3 * (names.index(name) % 3))
            bottom.text(x, p99, note, ha="left", va="bottom", fontsize=7, color=colours[name],
                        bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.5})
    if top_ms == 0:
        bottom.text(0.5, 0.5, "no p99 recorded", transform=bottom.transAxes, ha="center", va="center",
                    fontsize=9, color=MARK)
        bottom.set_ylim(0, 1)
    else:
        bottom.set_ylim(0, top_ms * 1.3)


def _title(report: Mapping[str, Any]) -> str:
    outcome = report.get("outcome") or "?"
    line = f"loadgen shift of {report.get('service') or '?'}: {outcome}"
    failure = report.get("failure")
    if failure:
        line += " \u2014 " + str(failure)
    note = report.get("rollback_note")
    if note:
        line += f" ({note})"
    lines = textwrap.wrap(line, 130)
    if len(lines) > 3:
        lines = [*lines[:2], textwrap.shorten(" ".join(lines[2:]), 130, placeholder=" \u2026")]
    return "\n".join(lines)
