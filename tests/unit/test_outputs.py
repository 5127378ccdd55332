"""Output options never clobber what they point at: `-`, symlinks, devices and FIFOs are
written as they are, regular files atomically, and an unwritable path is found before a run."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from loadgen.errors import EnvironmentProblem, UsageError
from loadgen.report.files import check_output, write_json, write_output
from tests.integration.parts import missing


def test_regular_file_is_written_and_replaced_keeping_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    out.write_text("old\n")
    out.chmod(0o640)
    write_output(out, "new\n")
    assert out.read_text() == "new\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temporary file left


def test_new_path_gets_its_parents(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "result.json"
    write_json(out, {"ok": True})
    assert out.read_text() == '{\n  "ok": true\n}\n'


def test_symlink_stays_a_link_and_its_target_gets_the_text(tmp_path: Path) -> None:
    target = tmp_path / "real.json"
    target.write_text("old\n")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_output(link, "new\n")
    assert link.is_symlink()
    assert os.readlink(link) == str(target)
    assert target.read_text() == "new\n"


def test_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    target = tmp_path / "made.json"
    link = tmp_path / "link.json"
    link.symlink_to(target)
    check_output(link)
    write_output(link, "x\n")
    assert link.is_symlink()
    assert target.read_text() == "x\n"


def test_dangling_symlink_into_a_missing_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "nowhere" / "made.json")
    with pytest.raises(UsageError, match="cannot write"):
        check_output(link)
    with pytest.raises(UsageError, match="cannot write"):
        write_output(link, "x\n")
    assert not (tmp_path / "nowhere").exists()


def test_char_device_stays_a_char_device(tmp_path: Path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except OSError as exc:
        missing(f"cannot mknod here: {exc}")
    check_output(node)
    write_output(node, "discarded\n")
    assert stat.S_ISCHR(node.lstat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_dev_null_stays_dev_null() -> None:
    check_output("/dev/null")
    write_output("/dev/null", "discarded\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_fifo_gets_the_text_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    check_output(fifo)  # accepted without opening it (that would block without a reader)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_output(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert not reader.is_alive()
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_dash_is_stdout_and_no_file_named_dash_appears(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    check_output("-")
    write_output("-", '{"a": 1}\n')
    write_output(Path("-"), "second ±\n")
    assert capsys.readouterr().out == '{"a": 1}\nsecond ±\n'
    assert not (tmp_path / "-").exists()


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"cannot write .*: it is a directory"):
        check_output(tmp_path)
    with pytest.raises(UsageError, match=r"cannot write .*: it is a directory"):
        write_output(tmp_path, "x")


def test_a_path_under_a_regular_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    for bad in (blocker / "out.json", blocker / "sub" / "out.json"):
        with pytest.raises(UsageError, match="cannot write"):
            check_output(bad)
        with pytest.raises(UsageError, match="cannot write"):
            write_output(bad, "x")


@pytest.mark.parametrize("path", ["/proc/loadgen-x.json", "/proc/loadgen-dir/x.json"])
def test_an_unwritable_place_is_refused_before_a_run(path: str) -> None:
    with pytest.raises(UsageError, match=f"cannot write {path}: "):
        check_output(path)
    with pytest.raises(UsageError, match=f"cannot write {path}: "):
        write_output(path, "x")


def test_check_leaves_nothing_behind(tmp_path: Path) -> None:
    check_output(tmp_path / "new.json")
    check_output(tmp_path / "missing" / "dir" / "new.json")
    existing = tmp_path / "old.json"
    existing.write_text("keep\n")
    check_output(existing)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]
    assert existing.read_text() == "keep\n"


def test_a_full_disk_is_an_environment_problem() -> None:
    if not os.path.exists("/dev/full"):
        missing("no /dev/full")
    with pytest.raises(EnvironmentProblem, match="cannot write /dev/full: No space left on device"):
        write_output("/dev/full", "x\n")


def test_a_message_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        write_output(tmp_path, "x")
    assert "\n" not in str(info.value)


def test_an_open_descriptor_is_written_not_replaced(tmp_path: Path) -> None:
    """/dev/stdout redirected to a file by the shell: the file is the process's, never replaced."""
    out = tmp_path / "redirected.txt"
    with out.open("wb") as fh:
        fh.write(b"before\n")
        fh.flush()
        inode = out.stat().st_ino
        write_output(f"/dev/fd/{fh.fileno()}", "report\n")
        fh.write(b"after\n")
    assert out.stat().st_ino == inode
    assert out.read_text() == "before\nreport\nafter\n"
