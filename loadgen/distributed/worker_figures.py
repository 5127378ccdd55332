"""Each remote worker's own figures beside the merged ones (``run --nomad-workers``).

summary.json and histogram.hgrm hold the merge; ``workers.json`` in the same stage directory
holds what each worker measured: its counts, how it ended, its clock offset, its latency
figures and its HDR histograms exactly as it sent them (HdrHistogram's standard compressed
encoding, values in microseconds, 1 us to 60 s at 3 significant digits: any HdrHistogram
library decodes them). A reader can add them and get summary.json's histogram back, bucket for
bucket -- which is what the integration test does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen.distributed.coordinator import Coordinator
from loadgen.load.histograms import DIGITS, HIGHEST_US, LOWEST_US, summarize

__all__ = ["FILE_NAME", "figure_lines", "worker_figures", "write_worker_figures"]

FILE_NAME = "workers.json"
MEASURES = ("corrected", "service")


def worker_figures(coord: Coordinator) -> dict[str, Any]:
    """Every worker's entry (the coordinator's snapshot, its latency and its histograms)."""
    tallies = coord.tallies()
    per_worker = []
    for w in coord.snapshot():
        blobs = (tallies.get(w["index"]) or {}).get("book", {}).get("groups", {})
        hdr = {m: blobs[f"{m}|all"] for m in MEASURES if f"{m}|all" in blobs}
        latency = {m: summarize(HdrHistogram.decode(blob.encode("ascii"))) for m, blob in hdr.items()}
        per_worker.append({**w, "latency_ms": latency, "hdr": hdr})
    return {"workers": coord.n, "clock_offset_max_ms": coord.max_skew_ms(), "start_spread_ms": coord.start_spread_ms(),
            "hdr_format": {"encoding": "HdrHistogram compressed (base64)", "unit": "us", "lowest": LOWEST_US,
                           "highest": HIGHEST_US, "significant_digits": DIGITS},
            "per_worker": per_worker}


def figure_lines(doc: dict[str, Any]) -> list[str]:
    """One line a worker: what it sent, its corrected latency, how it ended."""
    lines = []
    for w in doc["per_worker"]:
        lat = w["latency_ms"].get("corrected") or {}
        figures = (f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, max {lat['max']:.2f} ms"
                   if lat.get("count") else "no latency measured")
        ended = f"lost: {w['lost']}" if w["lost"] else (w["ended_by"] or "no final report")
        lines.append(f"worker {w['index']}: {w['sent']:,} requests, {w['errors']:,} errors, {figures} ({ended})")
    return lines


def write_worker_figures(directory: Path, doc: dict[str, Any]) -> str | None:
    """Write ``directory/workers.json``; the failure ("PATH: why") instead of raising: the stage's
    other files are still written."""
    path = directory / FILE_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None
