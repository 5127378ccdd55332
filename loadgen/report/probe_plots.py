"""PNG timelines of the time-to-apply probes: every request over time, and the instants that matter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadgen.probes.intention_report import ProtocolResult
    from loadgen.probes.propagation import PropagationResult

COLOURS = {"ok": "#2a9d4b", "denied": "#d62728", "error": "#ff9f1c"}


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def intention_plots(directory: Path, result: ProtocolResult) -> list[Path]:
    """A timeline per phase of every repeat: ``<protocol>-<repeat>-<deny|allow>.png`` in ``directory``."""
    paths = []
    for i, cycle in enumerate(result.cycles, start=1):
        for p in (cycle.deny, cycle.allow):
            marks = {"write": 0.0, "all sidecars show it": p.all_sidecars_ms, "first changed": p.first_ms.get("new"),
                     "all fresh changed": p.all_ms.get("new")}
            paths.append(intentions_timeline(directory / f"{result.protocol}-{i:02d}-{p.action}.png",
                                             f"{p.action} ({result.protocol}), repeat {i}", p.timeline, marks))
    return paths


def propagation_plots(directory: Path, result: PropagationResult) -> list[Path]:
    """A timeline per change: ``<n>-to-<weights>.png`` in ``directory``."""
    return [propagation_timeline(directory / f"{i:02d}-to-{c.to.replace(',', '_').replace('=', '')}.png",
                                 f"service-b weights -> {c.to}", c.timeline, result.plotted_subset,
                                 {"write": 0.0, "envoy shows it": c.envoy_ms, "traffic changed": c.change_ms,
                                  "detected": c.detected_ms})
            for i, c in enumerate(result.changes, start=1)]


def intentions_timeline(path: Path, title: str, timeline: list[tuple[float, str, str]],
                        marks: dict[str, float | None]) -> Path:
    """One dot per request (x: ms since the write, y: stream), coloured by outcome."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
    streams = sorted({s for _, s, _ in timeline})
    for y, stream in enumerate(streams):
        for outcome, colour in COLOURS.items():
            xs = [t for t, s, o in timeline if s == stream and o == outcome]
            if xs:
                ax.scatter(xs, [y] * len(xs), s=6, c=colour, label=f"{outcome}" if y == 0 else None, marker="|")
    ax.set_yticks(range(len(streams)), [f"{s} connections" for s in streams])
    ax.set_ylim(-0.8, len(streams) - 0.2)
    return _finish(plt, fig, ax, path, title, marks)


def propagation_timeline(path: Path, title: str, labelled: list[tuple[float, str]], subset: str,
                         marks: dict[str, float | None], window: int = 25) -> Path:
    """The share of ``subset`` over a sliding window of requests, with the measured instants."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=110)
    xs, ys = [], []
    hits = [1.0 if s == subset else 0.0 for _, s in labelled]
    for i in range(window, len(labelled) + 1):
        xs.append(labelled[i - 1][0])
        ys.append(100 * sum(hits[i - window:i]) / window)
    ax.plot(xs, ys, linewidth=1, label=f"share of {subset}, last {window} requests (%)")
    ax.set_ylabel("%")
    return _finish(plt, fig, ax, path, title, marks)


def _finish(plt: Any, fig: Any, ax: Any, path: Path, title: str, marks: dict[str, float | None]) -> Path:
    """Vertical lines at the measured instants, labels, legend, and the PNG."""
    styles = ["--", ":", "-.", "-"]
    for i, (label, t) in enumerate(marks.items()):
        if t is not None:
            ax.axvline(t, color="black", linestyle=styles[i % len(styles)], linewidth=1, label=f"{label} ({t:.0f} ms)")
    ax.set_xlabel("ms after Consul committed the write")
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
