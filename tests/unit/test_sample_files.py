"""Recordings: replay streams and names the bad file and line; recording fails before the
run for a bad path, and a disk failing mid-run stops the recording instead of the run."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path

import pytest

from loadgen.errors import UsageError
from loadgen.load.sample import WRITE_BATCH_BYTES, Sample, SampleWriter, read_samples
from tests.integration.parts import missing


def _sample(i: int) -> Sample:
    return Sample(t=i / 100, status=200, app_id=str(1 + i % 2), latency_ms=1.5, error=None)


def _count(path: Path | str) -> int:
    """Read a whole recording as replay does (streaming) and count its samples."""
    return sum(1 for _ in read_samples(path))


def _record(path: Path, n: int) -> None:
    writer = SampleWriter(path)
    for i in range(n):
        writer.write(_sample(i), "v1" if i % 2 == 0 else "v2")
    writer.close()
    assert writer.failed is None
    assert writer.recorded == n


def test_record_then_replay_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "run.jsonl"  # the parent is created
    _record(path, 10)
    rows = list(read_samples(path))
    assert [s.t for s, _ in rows] == [i / 100 for i in range(10)]
    assert [sub for _, sub in rows] == ["v1", "v2"] * 5
    assert rows[0][0] == Sample(t=0.0, status=200, app_id="1", latency_ms=1.5, error=None)
    assert _count(path) == 10
    assert _count(str(path)) == 10


def test_replay_is_lazy(tmp_path: Path) -> None:
    """One line at a time: a bad line further down is not even read when the first row is taken."""
    path = tmp_path / "run.jsonl"
    good = json.dumps(_sample(0).to_json("v1"))
    path.write_text(good + "\n" + good + "\n" + "garbage\n")
    rows = read_samples(path)
    assert inspect.isgenerator(rows)
    first, subset = next(rows)
    assert (first.t, subset) == (0.0, "v1")
    next(rows)
    with pytest.raises(UsageError, match=r"run.jsonl:3: not a JSON object"):
        next(rows)


def test_nothing_is_read_before_iterating(tmp_path: Path) -> None:
    rows = read_samples(tmp_path / "missing.jsonl")  # no error yet: a generator
    with pytest.raises(UsageError, match=r"cannot read .*missing.jsonl: No such file or directory"):
        next(rows)


def test_reading_names_the_first_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    good = json.dumps(_sample(0).to_json())
    path.write_text(f"{good}\n\n{good}\n{{\"t\": 1}}\n")
    with pytest.raises(UsageError, match=r"run.jsonl:4: missing field\(s\) status"):
        _count(path)


def test_binary_file_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    good = json.dumps(_sample(0).to_json())
    path.write_bytes(good.encode() + b"\n" + b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    with pytest.raises(UsageError, match=r"image.png:2: not UTF-8 text") as info:
        _count(path)
    assert "\n" not in str(info.value)


def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(b"x" * (3 << 20))  # no newline at all
    with pytest.raises(UsageError, match=r"blob.bin:1: line longer than"):
        _count(path)


def test_deep_nesting_is_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 200_000 + "\n")
    with pytest.raises(UsageError, match=r"deep.jsonl:1: not a JSON object"):
        _count(path)


def test_a_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot read .*: Is a directory"):
        _count(tmp_path)


def test_a_bom_on_the_first_line_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_sample(0).to_json()).encode() + b"\n")
    assert _count(path) == 1


# -- recording -------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["/proc/loadgen-x.jsonl", "/proc/loadgen-dir/x.jsonl"])
def test_unwritable_record_path_fails_at_construction(bad: str) -> None:
    with pytest.raises(UsageError, match=f"^cannot record to {bad}: "):
        SampleWriter(Path(bad))


def test_record_to_a_directory_or_under_a_file_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot record to .*: Is a directory"):
        SampleWriter(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    for bad in (blocker / "x.jsonl", blocker / "sub" / "x.jsonl"):
        with pytest.raises(UsageError, match=r"cannot record to .*: .*[Nn]ot a directory"):
            SampleWriter(bad)


def test_record_to_stdout_is_refused() -> None:
    with pytest.raises(UsageError, match="--record needs a file"):
        SampleWriter("-")
    with pytest.raises(UsageError, match="--record needs a file"):
        SampleWriter(Path("-"))


def test_a_full_disk_stops_the_recording_not_the_run() -> None:
    if not os.path.exists("/dev/full"):
        missing("no /dev/full")
    writer = SampleWriter(Path("/dev/full"))
    writer.write(_sample(0))
    writer.flush()  # every write to /dev/full is ENOSPC
    assert writer.failed == "recording to /dev/full stopped after 0 samples: No space left on device"
    for i in range(5000):  # later calls do nothing and never raise
        writer.write(_sample(i))
    writer.flush()
    writer.close()
    writer.close()
    assert writer.recorded == 0


def test_a_full_disk_without_any_flush_is_noticed_by_batch_or_close() -> None:
    if not os.path.exists("/dev/full"):
        missing("no /dev/full")
    writer = SampleWriter("/dev/full")
    line = len(json.dumps(_sample(0).to_json(), separators=(",", ":"))) + 1
    for i in range(WRITE_BATCH_BYTES // line + 10):  # more than a batch: written without flush()
        writer.write(_sample(i))
    assert writer.failed is not None
    writer.close()
    later = SampleWriter("/dev/full")
    later.write(_sample(0))
    later.close()  # the last batch is written at close, which still does not raise
    assert later.failed is not None and "No space left on device" in later.failed


def test_a_failed_recording_keeps_its_whole_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is cut back to the last whole batch: a replay of it reads cleanly."""
    path = tmp_path / "run.jsonl"
    writer = SampleWriter(path)
    for i in range(3):
        writer.write(_sample(i))
    writer.flush()
    real_write = os.write

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        monkeypatch.setattr(os, "write", _enospc)
        return real_write(fd, bytes(data)[: len(data) // 2])  # part of the batch lands, then the disk fills

    monkeypatch.setattr(os, "write", half_then_full)
    for i in range(3, 6):
        writer.write(_sample(i))
    writer.flush()
    monkeypatch.setattr(os, "write", real_write)
    assert writer.failed == f"recording to {path} stopped after 3 samples: No space left on device"
    writer.close()
    assert _count(path) == 3


def _enospc(fd: int, data: bytes | memoryview) -> int:
    raise OSError(28, "No space left on device")
