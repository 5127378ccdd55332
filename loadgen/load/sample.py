"""Sample: one request's record, and its JSON Lines form (the record/replay format).

Each line is one JSON object with at least ``t`` (seconds since the run started, the
request's intended start), ``status`` (int or null), ``app_id`` (string or null),
``latency_ms`` (completion minus intended start; null without an answer) and
``error`` (string or null). Other fields are written for people and tools and are
ignored on read, except ``subset`` (the subset the APP_ID mapped to when recorded),
which lets a replay judge without asking Consul.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loadgen.errors import UsageError


@dataclass(frozen=True, slots=True)
class Sample:
    t: float  # intended start, seconds since the run started
    status: int | None  # HTTP status; None on a transport error
    app_id: str | None  # service-b's APP_ID as the response reported it
    latency_ms: float | None  # done - intended start (coordinated-omission corrected)
    error: str | None  # connect_refused, reset, timeout, bad_response, http_503, no_app_id, ...
    service_ms: float | None = None  # done - actual send
    sent_late_ms: float = 0.0  # actual send - intended start
    bytes: int = 0
    new_connection: bool | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.app_id is not None and self.error is None

    def to_json(self, subset: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "t": round(self.t, 6), "status": self.status, "app_id": self.app_id,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 3), "error": self.error,
            "service_ms": None if self.service_ms is None else round(self.service_ms, 3), "bytes": self.bytes,
        }
        if subset is not None:
            data["subset"] = subset
        return data


class SampleWriter:
    """Appends samples as JSON Lines; flushed per batch so an interrupted run keeps them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = path.open("w", encoding="utf-8")

    def write(self, sample: Sample, subset: str | None = None) -> None:
        self._fh.write(json.dumps(sample.to_json(subset), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def read_samples(path: Path) -> Iterator[tuple[Sample, str | None]]:
    """Samples of a recorded file with the subset each was recorded under (or None).

    A malformed line raises UsageError naming the file and line number.
    """
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            yield _parse_line(line, path, number)


def _parse_line(line: str, path: Path, number: int) -> tuple[Sample, str | None]:
    where = f"{path}:{number}"
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise UsageError(f"{where}: not a JSON object ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("t", "status", "app_id", "latency_ms", "error") if k not in obj]
    if missing:
        raise UsageError(f"{where}: missing field(s) {', '.join(missing)}")
    t, status, app_id, latency, error = obj["t"], obj["status"], obj["app_id"], obj["latency_ms"], obj["error"]
    if not _number(t):
        raise UsageError(f"{where}: t must be a number (seconds since start), got {t!r}")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise UsageError(f"{where}: status must be an integer or null, got {status!r}")
    if app_id is not None and not isinstance(app_id, str | int):
        raise UsageError(f"{where}: app_id must be a string or null, got {app_id!r}")
    if latency is not None and not _number(latency):
        raise UsageError(f"{where}: latency_ms must be a number or null, got {latency!r}")
    if error is not None and not isinstance(error, str):
        raise UsageError(f"{where}: error must be a string or null, got {error!r}")
    subset = obj.get("subset")
    sample = Sample(
        t=float(t), status=status, app_id=None if app_id is None else str(app_id),
        latency_ms=None if latency is None else float(latency), error=error,
    )
    return sample, subset if isinstance(subset, str) else None


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))
