"""Writing results to the paths users give: text (JSON, the JUnit XML of report/junit.py), and bytes (PNGs).

Every output option goes through :func:`write_output`, which never clobbers what the user
pointed it at: ``-`` is stdout, a symlink stays a symlink, a device or FIFO (``/dev/null``,
``/dev/stdout``, a named pipe) is written in place, and only a regular file (or a new path)
is replaced atomically, so a reader never sees half a report. :func:`check_output` runs the
same reasoning before a run starts, so an unwritable path costs nothing but an exit 2.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from loadgen.errors import EnvironmentProblem, LoadgenError, UsageError

STDOUT = "-"  # an output option's value meaning standard output
# A full or broken disk is the machine's problem (exit 5), not a bad path the user gave (exit 2).
_ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})
_MAX_LINK_HOPS = 40  # as the kernel's own limit for a chain of symlinks


def write_json(path: Path | str, data: dict[str, Any]) -> None:
    write_output(path, json.dumps(data, indent=2, default=str) + "\n")


# -- writing ------------------------------------------------------------------------------
def write_output(path: Path | str, text: str) -> None:
    """Write ``text`` (UTF-8) to an output option's value without clobbering what is there.

    * ``-``: standard output, as UTF-8, flushed (nothing named ``-`` is created; a file of
      that name is ``dir/-`` or an absolute path -- ``Path("./-")`` is ``Path("-")``);
    * a symlink is followed: its final target gets the text and the link stays a link; a
      dangling link creates its target when the target's directory exists (no mkdir);
    * a device, FIFO or anything else not a regular file is opened and written in place
      (appending), with no temporary file, rename or mkdir; ``/dev/stdout``, ``/dev/fd/N``
      and ``/proc/self/fd/N`` are written to that descriptor of this process itself, even
      when the shell redirected it to a regular file (which is never replaced);
    * a regular file or a new path is written atomically: a uniquely named temporary file
      in the same directory, fsync, ``os.replace``; a replaced file keeps its permission
      bits (and, where allowed, its owner); missing parent directories are created.
      When the directory is not writable but the existing file is, the file is rewritten
      in place instead.

    Raises UsageError ("cannot write PATH: reason") for a bad path -- a directory, a parent
    that cannot be created, no permission, a read-only file system -- and EnvironmentProblem
    for a full disk (ENOSPC, EDQUOT) or an I/O error (EIO).
    """
    if str(path) == STDOUT:
        try:
            sys.stdout.flush()
            raw = getattr(sys.stdout, "buffer", None)
            if raw is not None:  # UTF-8 whatever the locale says stdout's encoding is
                raw.write(text.encode("utf-8"))
                raw.flush()
            else:
                sys.stdout.write(text)
                sys.stdout.flush()
        except OSError as exc:
            raise _error("stdout", exc) from None
        return
    shown = str(path)
    try:
        target, in_place, via_link = _target(Path(path))
        try:
            st: os.stat_result | None = os.stat(target)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise UsageError(f"cannot write {shown}: it is a directory")
        own_fd = _own_fd(target) if in_place else None
        if own_fd is not None:
            # /dev/stdout, /dev/fd/N: write to that descriptor itself, at its own offset, after
            # what Python has buffered for it -- reopening would write at another offset.
            sys.stdout.flush()
            sys.stderr.flush()
            _write_all(own_fd, text.encode("utf-8"))
            return
        if in_place or (st is not None and not stat.S_ISREG(st.st_mode)):
            _write_in_place(target, text, truncate=False)
            return
        if st is None and not via_link:
            target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, text, st)
    except LoadgenError:
        raise
    except OSError as exc:
        raise _error(shown, exc) from None


def check_output(path: Path | str) -> None:
    """Check, before a run starts, that :func:`write_output` will be able to write ``path``.

    ``-`` always passes. A directory, a path under a regular file, a missing parent that
    cannot be created, a read-only or permission-denied location fail. A FIFO is accepted
    without being opened (opening one for writing blocks until a reader comes); a device
    passes when ``os.access(W_OK)`` says so. Existing regular files are opened for append
    (their content untouched) and new paths are probed by creating and removing a
    temporary file (or directory, when parents are missing) -- ``os.access`` alone is
    not enough, since root passes it for ``/proc``. Nothing is left behind.

    Raises UsageError ("cannot write PATH: reason") or, for a full disk, EnvironmentProblem.
    """
    if str(path) == STDOUT:
        return
    shown = str(path)
    try:
        target, _, via_link = _target(Path(path))
        try:
            st = os.stat(target)
        except FileNotFoundError:
            _check_new(target, shown, via_link)
            return
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            raise UsageError(f"cannot write {shown}: it is a directory")
        if stat.S_ISFIFO(mode):
            return
        if stat.S_ISSOCK(mode):
            raise UsageError(f"cannot write {shown}: it is a socket")
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            if not os.access(target, os.W_OK):
                raise UsageError(f"cannot write {shown}: {os.strerror(errno.EACCES)}")
            return
        # A regular file: writable in place is enough (write_output falls back to that).
        os.close(os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC))
    except LoadgenError:
        raise
    except OSError as exc:
        raise _error(shown, exc) from None


def _check_new(target: Path, shown: str, via_link: bool) -> None:
    """A path that does not exist yet: its directory must exist (or be creatable) and take a file."""
    parent = target.parent
    if via_link:
        if not parent.is_dir():
            raise UsageError(f"cannot write {shown}: the link's target directory {parent} does not exist")
        _probe_dir(parent)
        return
    ancestor = parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UsageError(f"cannot write {shown}: {ancestor} is not a directory")
    if ancestor == parent:
        _probe_dir(parent)
    else:  # the missing directories will be made there
        os.rmdir(tempfile.mkdtemp(dir=ancestor, prefix=".loadgen-check-"))


def _probe_dir(directory: Path) -> None:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".loadgen-check-")
    os.close(fd)
    os.unlink(name)


def _target(path: Path) -> tuple[Path, bool, bool]:
    """Where the bytes go: (the final path, write it in place?, reached through a symlink?).

    Follows the chain of symlinks one hop at a time; a hop through ``/proc/<pid>/fd`` (as
    ``/dev/stdout`` and ``/dev/fd/1`` are) names a file this process has open, which must be
    written in place, never replaced (that would cut it loose from the shell's redirection)."""
    current = Path(os.path.abspath(path))
    via_link = False
    for _ in range(_MAX_LINK_HOPS):
        current = Path(os.path.realpath(current.parent)) / current.name
        if _is_proc_fd(current):
            return current, True, True
        if not current.is_symlink():
            return current, False, via_link
        via_link = True
        current = Path(os.path.normpath(current.parent / os.readlink(current)))
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))


def _is_proc_fd(path: Path) -> bool:
    parts = path.parts
    return len(parts) >= 4 and parts[1] == "proc" and parts[-2] == "fd"


def _own_fd(path: Path) -> int | None:
    """N when ``path`` is /proc/<this process>/fd/N and N is open, else None."""
    pid, fd = path.parts[2], path.parts[-1]
    if pid not in ("self", "thread-self", str(os.getpid())) or not fd.isdigit():
        return None
    try:
        os.fstat(int(fd))
    except OSError:
        return None
    return int(fd)


def _write_in_place(target: Path, text: str, truncate: bool) -> None:
    flags = os.O_WRONLY | os.O_CLOEXEC | os.O_NOCTTY | (os.O_TRUNC if truncate else os.O_APPEND)
    fd = os.open(target, flags)
    try:
        _write_all(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _write_atomically(target: Path, text: str, existing: os.stat_result | None) -> None:
    try:
        fd, tmp = _create_temp(target)
    except PermissionError:
        if existing is None:
            raise
        # The directory refuses a new file but the file itself may take the text.
        _write_in_place(target, text, truncate=True)
        return
    _fill_and_replace(fd, tmp, target, text.encode("utf-8"), existing)


def write_bytes(path: Path, data: bytes) -> None:
    """A binary file (a PNG) written as :func:`write_output` writes a regular file: a temporary
    file beside it, fsync, os.replace -- a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    _fill_and_replace(fd, tmp, path, data, None)


def _fill_and_replace(fd: int, tmp: str, target: Path, data: bytes, existing: os.stat_result | None) -> None:
    """Write ``data`` to the temporary file ``fd`` (keeping ``existing``'s mode and owner), fsync
    it and put it in ``target``'s place; the temporary file is removed on any failure."""
    try:
        try:
            if existing is not None:
                os.fchmod(fd, stat.S_IMODE(existing.st_mode))
                if (existing.st_uid, existing.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(OSError):
                        os.fchown(fd, existing.st_uid, existing.st_gid)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _create_temp(target: Path) -> tuple[int, str]:
    """A new file beside ``target``, created with mode 0666 so the umask decides as for any file."""
    stem = target.name[:100]  # the suffix must not push a long name past NAME_MAX
    while True:
        tmp = str(target.with_name(f".{stem}.{secrets.token_hex(6)}.tmp"))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _error(shown: str, exc: OSError) -> LoadgenError:
    reason = exc.strerror or str(exc)
    error: LoadgenError
    if exc.errno in _ENVIRONMENT_ERRNOS:
        error = EnvironmentProblem(f"cannot write {shown}: {reason}")
    else:
        error = UsageError(f"cannot write {shown}: {reason}")
    error.errno = exc.errno  # type: ignore[attr-defined]  # EPIPE on stdout: the reader left (report/delivery.py)
    return error
