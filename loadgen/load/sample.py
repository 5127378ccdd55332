"""Sample: one request's record, and its JSON Lines form (the record/replay format).

Each line is one JSON object with at least ``t`` (seconds since the run started, the
request's intended start), ``status`` (int or null), ``app_id`` (string or null),
``latency_ms`` (completion minus intended start; null without an answer) and
``error`` (string or null). Other fields are written for people and tools and are
ignored on read, except ``subset`` (the subset the APP_ID mapped to when recorded),
which lets a replay judge without asking Consul.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen.errors import EnvironmentProblem, UsageError


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


# The latest a recorded request may start, in seconds since the run started: room for a log
# whose t are epoch seconds (1.7e9), not for a number that is no time at all (1e300).
MAX_T = 1e10

# A recorded line is about 150 bytes; a "line" far longer is not a recording (a binary file
# without newlines), and reading it whole would hold the file in memory.
MAX_LINE_BYTES = 1 << 20
WRITE_BATCH_BYTES = 64 * 1024  # written out when this much is pending, besides every flush()
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


class SampleWriter:
    """Appends samples as JSON Lines, written out per batch so an interrupted run keeps them.

    An unusable path fails at construction (before the run): UsageError "cannot record to
    PATH: reason" (EnvironmentProblem for a full disk); "-" is refused, a recording needs a
    file. Missing parent directories are created. Once the run is going, a failing write
    (a full disk, an I/O error) never raises: recording stops, :attr:`failed` says why and
    how many samples the file holds, the file is cut back to its last whole line, and later
    write/flush/close calls do nothing. :attr:`recorded` counts the samples safely written.
    """

    def __init__(self, path: Path | str) -> None:
        if str(path) == "-":
            raise UsageError("--record needs a file: recording to stdout (-) is not supported")
        self.path = Path(path)
        self.failed: str | None = None
        self.recorded = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._offset = 0  # the file's length up to the last whole batch written
        try:
            _make_parent(self.path)
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            message = f"cannot record to {path}: {exc.strerror or exc}"
            raise (EnvironmentProblem(message) if exc.errno in _ENVIRONMENT_ERRNOS else UsageError(message)) from None

    def write(self, sample: Sample, subset: str | None = None) -> None:
        if self._fd is None:
            return
        line = (json.dumps(sample.to_json(subset), separators=(",", ":")) + "\n").encode("utf-8")
        self._pending.append(line)
        self._pending_bytes += len(line)
        if self._pending_bytes >= WRITE_BATCH_BYTES:
            self._write_pending()

    def flush(self) -> None:
        if self._fd is not None:
            self._write_pending()

    def close(self) -> None:
        if self._fd is None:
            return
        self._write_pending()
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.close(fd)
            except OSError as exc:  # e.g. NFS reports a failed write at close
                self.failed = self.failed or f"recording to {self.path} may be incomplete: {exc.strerror or exc}"

    def _write_pending(self) -> None:
        if not self._pending or self._fd is None:
            return
        data = b"".join(self._pending)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._stop(exc)
            return
        self.recorded += len(self._pending)
        self._offset += len(data)
        self._pending.clear()
        self._pending_bytes = 0

    def _stop(self, exc: OSError) -> None:
        self.failed = f"recording to {self.path} stopped after {self.recorded:,} samples: {exc.strerror or exc}"
        self._pending.clear()
        self._pending_bytes = 0
        fd, self._fd = self._fd, None
        assert fd is not None
        with contextlib.suppress(OSError):  # a device or FIFO has no length to cut back
            os.ftruncate(fd, self._offset)  # no half line left for a replay to trip on
        with contextlib.suppress(OSError):
            os.close(fd)


def _make_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a directory is needed
        raise OSError(errno.ENOTDIR, f"{parent} is not a directory") from None


def read_samples(path: Path | str) -> Iterator[tuple[Sample, str | None]]:
    """Samples of a recorded file, streaming, with the subset each was recorded under (or None).

    A generator: one line is held at a time, however long the recording (iterate it; do
    not ``list()`` it). Nothing is read until the first ``next()``. Blank lines are skipped.
    Raises UsageError naming the file -- and the line number where there is one -- for a
    missing, unreadable or directory path, a line that is not UTF-8 (a binary file), a line
    over MAX_LINE_BYTES, or a malformed sample.
    """
    path = Path(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        number = 0
        while True:
            number += 1
            try:
                raw = fh.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise UsageError(f"cannot read {path} (line {number}): {exc.strerror or exc}") from None
            if not raw:
                return
            if len(raw) > MAX_LINE_BYTES:
                raise UsageError(f"{path}:{number}: line longer than {MAX_LINE_BYTES:,} bytes: not a loadgen "
                                 "recording (JSON Lines)")
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise UsageError(f"{path}:{number}: not UTF-8 text (byte {exc.start + 1}): a binary file, not a "
                                 "loadgen recording") from None
            if not line.strip():
                continue
            yield _parse_line(line, path, number)


def _parse_line(line: str, path: Path, number: int) -> tuple[Sample, str | None]:
    where = f"{path}:{number}"
    try:
        obj = json.loads(line)
    except RecursionError:
        raise UsageError(f"{where}: not a JSON object (nested too deeply)") from None
    except ValueError as exc:
        raise UsageError(f"{where}: not a JSON object ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in ("t", "status", "app_id", "latency_ms", "error") if k not in obj]
    if missing:
        raise UsageError(f"{where}: missing field(s) {', '.join(missing)}")
    t, status, app_id, latency, error = obj["t"], obj["status"], obj["app_id"], obj["latency_ms"], obj["error"]
    if not _number(t) or not 0 <= t <= MAX_T:
        raise UsageError(f"{where}: t must be a number of seconds since the run started, 0 to {MAX_T:g}, got {t!r}")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise UsageError(f"{where}: status must be an integer or null, got {status!r}")
    if app_id is not None and (not isinstance(app_id, str | int) or isinstance(app_id, bool)):
        raise UsageError(f"{where}: app_id must be a string or null, got {app_id!r}")
    if latency is not None and not _number(latency):
        raise UsageError(f"{where}: latency_ms must be a number or null, got {latency!r}")
    if error is not None and not isinstance(error, str):
        raise UsageError(f"{where}: error must be a string or null, got {error!r}")
    subset = obj.get("subset")
    # An empty APP_ID names no backend, as an empty X-App-Id header does not (load/identity.py):
    # a 200 without one is what the live run calls no_app_id.
    named = None if app_id is None or not str(app_id).strip() else str(app_id)
    if named is None and status == 200 and error is None:
        error = "no_app_id"
    sample = Sample(
        t=float(t), status=status, app_id=named, latency_ms=None if latency is None else float(latency), error=error,
    )
    return sample, subset if isinstance(subset, str) else None


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(float(x))
