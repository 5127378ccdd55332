"""Latency in bounded memory: HDR histograms per group, and a per-second time series.

Every sample goes into HDR histograms (1 µs .. 60 s, 3 significant digits) for two
measures -- ``corrected`` (completion minus *intended* start) and ``service`` (completion
minus actual send) -- and several groups: all requests, per backend APP_ID and per
status class. Histograms merge exactly (:meth:`LatencyBook.merge` of encoded blobs), so
worker processes can each keep their own and the parent adds them up.

The time series keeps one compact row per second of intended start (counts and an
encoded histogram of that second), so long runs stay small and per-second percentiles
also merge exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from loadgen.load.sample import Sample

LOWEST_US, HIGHEST_US, DIGITS = 1, 60_000_000, 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def _us(ms: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, round(ms * 1000)))


def status_class(sample: Sample) -> str:
    if sample.status is None:
        return "transport_error"
    return f"{sample.status // 100}xx"


def summarize(h: HdrHistogram) -> dict[str, float | int]:
    """count, min, mean, p50/p90/p99/p99.9 and max in milliseconds."""
    n = h.get_total_count()
    if n == 0:
        return {"count": 0}
    out: dict[str, float | int] = {
        "count": n, "min": h.get_min_value() / 1000, "mean": round(h.get_mean_value() / 1000, 3)
    }
    for p in PERCENTILES:
        out[f"p{p:g}"] = h.get_value_at_percentile(p) / 1000
    out["max"] = h.get_max_value() / 1000
    return out


# The time series' histograms: 2 significant digits (20 KB each instead of 140 KB), and a
# second's histogram is encoded (a few hundred bytes) once no answer can still arrive for it.
SERIES_DIGITS = 2
LIVE_SECONDS = 70  # > the longest request timeout a run allows


def new_series_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SERIES_DIGITS)


@dataclass
class SecondRow:
    second: int
    sent: int = 0
    ok: int = 0
    errors: int = 0
    _hist: HdrHistogram | None = None  # corrected latency, while the second is live
    _blob: bytes | None = None  # ... and once it is compacted

    @property
    def hist(self) -> HdrHistogram:
        if self._hist is None:
            self._hist = HdrHistogram.decode(self._blob) if self._blob else new_series_histogram()
            self._blob = None
        return self._hist

    def compact(self) -> None:
        if self._hist is not None:
            self._blob = self._hist.encode()
            self._hist = None

    def encoded(self) -> str:
        return (self._blob or self.hist.encode()).decode("ascii")


@dataclass
class LatencyBook:
    """Histograms per (measure, group) plus the per-second series."""

    groups: dict[tuple[str, str], HdrHistogram] = field(default_factory=dict)
    seconds: dict[int, SecondRow] = field(default_factory=dict)
    _compacted_below: int = 0
    _live: set[int] = field(default_factory=set)  # seconds whose histogram is not compacted yet

    def _h(self, measure: str, group: str) -> HdrHistogram:
        key = (measure, group)
        h = self.groups.get(key)
        if h is None:
            h = self.groups[key] = new_histogram()
        return h

    def record(self, sample: Sample) -> None:
        sec = int(sample.t)
        row = self.seconds.get(sec)
        if row is None:
            row = self.seconds[sec] = SecondRow(sec)
            self._live.add(sec)
            edge = sec - LIVE_SECONDS
            if edge > self._compacted_below:
                # Walk the live rows, never the seconds between: a jump in t (a replay whose t
                # are epoch seconds, or 1e300) would otherwise be a loop over every second.
                for old in [s for s in self._live if s < edge]:
                    self.seconds[old].compact()
                    self._live.discard(old)
                self._compacted_below = edge
        row.sent += 1
        if sample.ok:
            row.ok += 1
        else:
            row.errors += 1
        if sample.latency_ms is None:
            return
        corrected = _us(sample.latency_ms)
        row.hist.record_value(corrected)
        groups = ["all", f"status={status_class(sample)}"]
        if sample.app_id is not None:
            groups.append(f"app_id={sample.app_id}")
        for g in groups:
            self._h("corrected", g).record_value(corrected)
        if sample.service_ms is not None:
            service = _us(sample.service_ms)
            for g in groups:
                self._h("service", g).record_value(service)

    def summary(self, measure: str = "corrected", group: str = "all") -> dict[str, float | int]:
        h = self.groups.get((measure, group))
        return summarize(h) if h is not None else {"count": 0}

    def quick(self, measure: str = "corrected", group: str = "all") -> dict[str, float | int]:
        """count, p50, p99 only: cheap enough for a live display (the mean walks every bucket)."""
        h = self.groups.get((measure, group))
        if h is None or h.get_total_count() == 0:
            return {"count": 0}
        values = h.get_percentile_to_value_dict([50.0, 99.0])
        return {"count": h.get_total_count(), "p50": values[50.0] / 1000, "p99": values[99.0] / 1000}

    def group_names(self) -> list[str]:
        return sorted({g for _, g in self.groups})

    # -- exact merging across processes --------------------------------------------------
    def encode(self) -> dict[str, object]:
        return {
            "groups": {f"{m}|{g}": h.encode().decode("ascii") for (m, g), h in self.groups.items()},
            "seconds": [
                {"second": r.second, "sent": r.sent, "ok": r.ok, "errors": r.errors, "hist": r.encoded()}
                for r in self.seconds.values()
            ],
        }

    def merge(self, encoded: dict[str, object]) -> None:
        for key, blob in encoded["groups"].items():  # type: ignore[union-attr]
            measure, group = key.split("|", 1)
            self._h(measure, group).add(HdrHistogram.decode(blob.encode("ascii")))
        for row in encoded["seconds"]:  # type: ignore[union-attr]
            mine = self.seconds.get(row["second"])
            if mine is None:
                mine = self.seconds[row["second"]] = SecondRow(row["second"])
            mine.sent += row["sent"]
            mine.ok += row["ok"]
            mine.errors += row["errors"]
            mine.hist.add(HdrHistogram.decode(row["hist"].encode("ascii")))

    @classmethod
    def merged(cls, parts: Iterable[dict[str, object]]) -> LatencyBook:
        book = cls()
        for part in parts:
            book.merge(part)
        return book

    def timeseries(self) -> list[dict[str, float | int]]:
        rows = []
        for sec in sorted(self.seconds):
            r = self.seconds[sec]
            s = summarize(r.hist)
            rows.append({"second": sec, "sent": r.sent, "ok": r.ok, "errors": r.errors,
                         "p50_ms": s.get("p50", ""), "p99_ms": s.get("p99", ""), "max_ms": s.get("max", "")})
        return rows
