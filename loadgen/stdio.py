"""The standard streams as loadgen finds them, made safe to write to before anything else runs.

* A standard descriptor closed by the caller (``loadgen canary >&-``) gets /dev/null, so no
  socket or file opened later takes its number: a connection on descriptor 1 would receive the
  verdict, and uvloop aborts the process (exit 134) on a descriptor it did not open. That stdout
  was closed is remembered: a verdict that could be printed nowhere is an output that failed
  (report/delivery.py).
* A stream that cannot encode every character (``PYTHONIOENCODING=ascii``, a C locale) shows
  what it cannot encode as ``?`` instead of failing in the middle of a verdict.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys

__all__ = ["guard", "silence_stdout", "stdout_closed"]

_closed: set[int] = set()


def guard() -> None:
    """Run once, first thing (the CLI's main does)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            _closed.add(fd)
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if 1 in _closed and sys.stdout is None:
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 (the process's own stdout)
    if 2 in _closed and sys.stderr is None:
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            with contextlib.suppress(ValueError, io.UnsupportedOperation):
                stream.reconfigure(errors="replace")


def stdout_closed() -> bool:
    """Whether stdout was closed when loadgen started (it writes to /dev/null since)."""
    return 1 in _closed


def silence_stdout() -> None:
    """After a write to stdout failed (a closed pipe, a full device): send the rest, and what is
    still buffered, to /dev/null, so the interpreter's last flush cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return  # not a real descriptor (a test's capture): nothing will fail at exit
    if fd != 1:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
    finally:
        os.close(null)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
