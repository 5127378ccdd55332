"""The files of one stage's run: summary.json, histogram.hgrm, timeseries.csv and two PNG plots.

summary.json is the contract the HTML report and other tools read:

* ``stage``, ``target``, ``mode`` (open/closed), ``rate_asked``, ``schedule``, ``rate_achieved``,
  ``duration_s``, ``started_at``, ``interrupted`` (and ``interrupted_by``: SIGINT, SIGTERM or null),
  ``stopped_by`` (max_time, max_requests, interrupted);
* ``requests``: sent / ok / errors, and dropped: due by the deadline (open loop) but never sent
  because the generator was behind -- not in any other figure; ``errors``: count per kind;
  ``split``: count and share per APP_ID;
* ``latency_ms``: ``corrected`` and ``service`` summaries (count, min, mean, p50, p90, p99, p99.9, max);
* ``by_app_id`` and ``by_status``: the same summaries per backend instance and per status class;
* ``spectrum``: [[percentile, corrected_ms, service_ms], ...] for plotting percentile spectra;
* ``generator``: valid, problems, late starts, dropped requests, CPU share, workers.

Its typed form is :class:`loadgen.report.summary.StageSummary`; this module fills it in.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
from pathlib import Path
from typing import Any

from loadgen.errors import EnvironmentProblem, UsageError
from loadgen.load.health import GeneratorHealth
from loadgen.load.histograms import LatencyBook
from loadgen.load.tally import Tally
from loadgen.report.summary import Latency, Measures, Requests, SpectrumPoint, SplitShare, StageInfo, StageSummary

SPECTRUM = (0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100)


def spectrum(book: LatencyBook) -> list[SpectrumPoint]:
    out: list[SpectrumPoint] = []
    corrected, service = book.groups.get(("corrected", "all")), book.groups.get(("service", "all"))
    if corrected is None or corrected.get_total_count() == 0:
        return out
    for p in SPECTRUM:
        c = corrected.get_value_at_percentile(p) / 1000
        s = service.get_value_at_percentile(p) / 1000 if service is not None and service.get_total_count() else None
        out.append(SpectrumPoint(p, c, s))
    return out


def _latency(book: LatencyBook, measure: str, group: str) -> Latency:
    d = book.summary(measure, group)
    return Latency(count=int(d["count"]), min=d.get("min"), mean=d.get("mean"), p50=d.get("p50"), p90=d.get("p90"),
                   p99=d.get("p99"), p99_9=d.get("p99.9"), max=d.get("max"))


def _measures(book: LatencyBook, group: str) -> Measures:
    return Measures(_latency(book, "corrected", group), _latency(book, "service", group))


def build_summary(tally: Tally, info: StageInfo, generator: GeneratorHealth) -> StageSummary:
    """A stage's summary from what it collected, what it was and how the generator did."""
    book = tally.book
    ok = tally.answered
    groups = book.group_names()
    return StageSummary(
        info=info,
        requests=Requests(sent=tally.sent, ok=ok, errors=tally.error_count,
                          dropped=generator.dropped if generator.dropped is not None else 0),
        errors=dict(sorted(tally.errors.items(), key=lambda kv: -kv[1])),
        split={a: SplitShare(count=n, share=round(n / ok, 5) if ok else 0.0) for a, n in sorted(tally.app_ids.items())},
        latency_ms=_measures(book, "all"),
        by_app_id={g.split("=", 1)[1]: _measures(book, g) for g in groups if g.startswith("app_id=")},
        by_status={g.split("=", 1)[1]: _measures(book, g) for g in groups if g.startswith("status=")},
        spectrum=spectrum(book),
        generator=generator,
    )


def plots_available() -> bool:
    """Whether matplotlib is installed: the loadgen image leaves it out (some 80 MB), and `run` there
    writes every report file but the PNG plots."""
    return importlib.util.find_spec("matplotlib") is not None


def write_stage_files(directory: Path, summary: StageSummary, book: LatencyBook, plots: bool = True,
                      failed: list[str] | None = None) -> list[Path]:
    """Write the stage's files; each one is tried whatever happened to the others (a full disk
    stops one file, not the rest), and the ones that could not be written are added to ``failed``
    ("PATH: reason"). Without ``failed`` the first failure raises (EnvironmentProblem for a full
    disk, UsageError otherwise), after every file was tried."""
    problems: list[str] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {directory}: {exc.strerror or exc}") from None
    written: list[Path] = []

    def attempt(path: Path, write: Any) -> None:
        try:
            write(path)
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
            return
        written.append(path)

    attempt(directory / "summary.json",
            lambda p: p.write_text(json.dumps(summary.to_json(), indent=2, default=str) + "\n"))
    h = book.groups.get(("corrected", "all"))
    if h is not None and h.get_total_count():
        buf = io.BytesIO()
        h.output_percentile_distribution(buf, 1000.0)  # values in milliseconds
        attempt(directory / "histogram.hgrm", lambda p: p.write_bytes(buf.getvalue()))
    rows = book.timeseries()

    def write_csv(path: Path) -> None:
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["second", "sent", "ok", "errors", "p50_ms", "p99_ms", "max_ms"])
            writer.writeheader()
            writer.writerows(rows)

    attempt(directory / "timeseries.csv", write_csv)
    if plots and rows and plots_available():
        try:
            written += _plots(directory, summary, rows)
        except OSError as exc:
            problems.append(f"{directory} (plots): {exc.strerror or exc}")
    if failed is not None:
        failed.extend(problems)
    elif problems:
        raise EnvironmentProblem(f"cannot write {problems[0]}")
    return written


def _plots(directory: Path, summary: StageSummary, rows: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    info = summary.info
    title = f"{info.stage}  ({info.mode}, {info.schedule})"
    out = []
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    xs = [r["second"] for r in rows if r["p50_ms"] != ""]
    ax.plot(xs, [r["p50_ms"] for r in rows if r["p50_ms"] != ""], label="p50")
    ax.plot(xs, [r["p99_ms"] for r in rows if r["p99_ms"] != ""], label="p99")
    ax.plot(xs, [r["max_ms"] for r in rows if r["max_ms"] != ""], label="max", alpha=0.4)
    ax.set_xlabel("second of the run (intended start)")
    ax.set_ylabel("corrected latency (ms)")
    ax.set_title(f"latency over time: {title}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = directory / "latency_over_time.png"
    fig.savefig(path)
    plt.close(fig)
    out.append(path)

    spec = summary.spectrum
    if spec:
        fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
        xs = [1 / (1 - pt.percentile / 100) if pt.percentile < 100 else 1e5 for pt in spec]
        ax.plot(xs, [pt.corrected_ms for pt in spec], marker="o", label="corrected (from intended start)")
        if all(pt.service_ms is not None for pt in spec):
            ax.plot(xs, [pt.service_ms for pt in spec], marker=".", label="service time (from send)")
        ax.set_xscale("log")
        ax.set_xticks([1, 2, 10, 100, 1000, 10000, 1e5], ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "max"])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f"percentile spectrum: {title}")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = directory / "percentile_spectrum.png"
        fig.savefig(path)
        plt.close(fig)
        out.append(path)
    return out
