"""Read a recording in send order, whatever the order of its lines.

A replay must judge answers in the order their requests were sent (see load/send_order.py), as
the live run does. loadgen writes its recordings in that order, but older recordings, merged
files and other tools' logs hold lines in completion order, where the newest answers favour the
faster subset. ``t`` (the request's intended start) gives the send order; lines with equal ``t``
keep their order in the file.

The file is streamed, never held in memory: a recording already in order is read once more as
it is; one out of order costs an index of 16 bytes per sample (send time and byte offset) and a
seek per line.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path

from loadgen.errors import UsageError
from loadgen.load.sample import MAX_LINE_BYTES, Sample, _parse_line, read_samples

__all__ = ["in_send_order", "samples_in_send_order"]


def in_send_order(path: Path | str) -> bool:
    """Whether the recording's samples are already in send order (``t`` never goes down)."""
    last = float("-inf")
    for sample, _ in read_samples(path):
        if sample.t < last:
            return False
        last = sample.t
    return True


def samples_in_send_order(path: Path | str, known_in_order: bool | None = None) -> Iterator[tuple[Sample, str | None]]:
    """The samples of a recording (as :func:`read_samples` gives them) sorted by send time.
    ``known_in_order``: the caller already checked (skips a pass)."""
    path = Path(path)
    if known_in_order if known_in_order is not None else in_send_order(path):
        yield from read_samples(path)
        return
    times, offsets, numbers = array("d"), array("q"), array("q")
    for (sample, _), (offset, number) in zip(read_samples(path), _sample_lines(path), strict=True):
        times.append(sample.t)
        offsets.append(offset)
        numbers.append(number)
    order = sorted(range(len(times)), key=times.__getitem__)  # stable: equal t keep the file's order
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    with fh:
        for i in order:
            fh.seek(offsets[i])
            raw = fh.readline(MAX_LINE_BYTES + 1)
            yield _parse_line(raw.decode("utf-8-sig" if numbers[i] == 1 else "utf-8"), path, numbers[i])


def _sample_lines(path: Path) -> Iterator[tuple[int, int]]:
    """(byte offset, line number) of every non-blank line: the lines read_samples turns into samples
    (it has already checked each one when this runs beside it)."""
    with path.open("rb") as fh:
        offset, number = 0, 0
        while raw := fh.readline(MAX_LINE_BYTES + 1):
            number += 1
            if raw.decode("utf-8-sig" if number == 1 else "utf-8", errors="replace").strip():
                yield offset, number
            offset += len(raw)
