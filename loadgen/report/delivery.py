"""Delivering a command's outputs once its result is known: every one is tried, whatever the others do.

A canary's verdict is printed first, then ``--json`` and ``--junit`` are written; one that
fails (a full disk, a closed stdout, a reader that went away) never stops the others, never
turns the result into a traceback, and never replaces the result's code by a milder or a
harsher one: :func:`loadgen.errors.with_output_failure` says how the two combine.

A reader that closes the pipe early (``loadgen canary ... | head -1``) chose to read no more:
that is no failure, and the rest of stdout is dropped quietly. stdout that was closed before
loadgen started (``>&-``) could show nothing: that is one (see :func:`loadgen.stdio.guard`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from loadgen import stdio
from loadgen.errors import LoadgenError, with_output_failure

__all__ = ["Delivery", "stdout_console"]


def stdout_console(**options: Any) -> Console:
    """A rich Console on stdout whose closed pipe is an EPIPE for :class:`Delivery` to judge: rich's
    own reaction is ``SystemExit(1)`` -- the FAIL code, whatever the verdict was."""
    console = Console(**options)

    def broken_pipe() -> None:
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    console.on_broken_pipe = broken_pipe  # type: ignore[method-assign]
    return console


@dataclass
class Delivery:
    """The outputs of one command: try each, remember which failed and why."""

    failures: list[str] = field(default_factory=list)
    reader_gone: bool = False  # stdout's reader closed the pipe

    def stdout(self, what: str, action: Callable[[], None]) -> None:
        """Print on stdout (``what``: "the verdict", "--json -"); a closed stdout is a failure."""
        if stdio.stdout_closed():
            self.failures.append(f"{what}: stdout was closed, nothing could be printed")
            return
        if self.reader_gone:
            return
        self._attempt(what, action, on_stdout=True)

    def file(self, what: str, action: Callable[[], None]) -> None:
        """Write an output file (``what``: "--json out.json")."""
        self._attempt(what, action, on_stdout=False)

    def _attempt(self, what: str, action: Callable[[], None], on_stdout: bool) -> None:
        try:
            action()
        except (LoadgenError, OSError, UnicodeError) as exc:
            code = getattr(exc, "errno", None)
            if on_stdout and code == errno.EPIPE:
                self.reader_gone = True
                stdio.silence_stdout()
                return
            if on_stdout:
                stdio.silence_stdout()  # what is still buffered must not fail again at exit
            reason = exc.message if isinstance(exc, LoadgenError) else (
                getattr(exc, "strerror", None) or str(exc))
            self.failures.append(f"{what}: {reason}")

    def exit_code(self, code: int) -> int:
        """``code`` (the result's), combined with any failed output."""
        return with_output_failure(code) if self.failures else code

    def tell(self) -> None:
        """One line on stderr per failed output (stderr may be gone too: then nothing)."""
        for failure in self.failures:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"loadgen: error: output not written: {failure}\n")
                sys.stderr.flush()

