"""Exit codes and the one error type every command raises.

Every command and the Locust plugin use these codes, so CI can gate on them (a verdict's
code is :func:`exit_code`). The library raises only :class:`LoadgenError` subclasses for
conditions a user can cause (bad input, an unreachable target, a busy port, a timeout while
waiting for the mesh): each carries one line of message and its code, and the CLI prints that
line. Anything else that escapes is a bug (exit 70).

==  =====================================================================
0   OK / PASS
1   FAIL, or a security violation
2   usage or input error (bad option, unknown stage, malformed file, a token that cannot be
    sent as a header, a URL with a password, a run state loadgen did not write)
3   INCONCLUSIVE (the budget ran out before the verdict was clear)
4   target or mesh unreachable, or a mesh component failed to come up
5   environment: a required binary is missing or a port is already taken
6   the run ended (a PASS, a finished load) but an output failed: stdout, --json, --junit
    (every other output was still written; see with_output_failure for how it combines)
70  internal error (a bug; LOADGEN_DEBUG=1 shows the traceback)
130 interrupted (Ctrl-C); what was collected is still reported
143 terminated (SIGTERM, e.g. from timeout, CI cancellation or docker stop): as 130
==  =====================================================================
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # errors.py is imported everywhere; the judge's numpy/scipy must not be
    from loadgen.stats.verdict import VerdictState


class ExitCode(IntEnum):
    OK = 0
    FAIL = 1
    USAGE = 2
    INCONCLUSIVE = 3
    UNREACHABLE = 4
    ENVIRONMENT = 5
    OUTPUT_FAILED = 6
    INTERNAL = 70  # EX_SOFTWARE
    INTERRUPTED = 130  # 128 + SIGINT, as shells report it
    TERMINATED = 143  # 128 + SIGTERM


# A verdict's code. RUNNING only happens when a run is cut short before its last look:
# nothing was decided, as for INCONCLUSIVE. Keyed by the states' values (VerdictState is a
# StrEnum) so that this module needs no import of the judge.
_VERDICT_CODES = {"PASS": ExitCode.OK, "FAIL": ExitCode.FAIL, "INCONCLUSIVE": ExitCode.INCONCLUSIVE,
                  "RUNNING": ExitCode.INCONCLUSIVE}


def exit_code(state: VerdictState) -> ExitCode:
    """The exit code of a verdict, the same for ``loadgen canary`` and the Locust plugin."""
    return _VERDICT_CODES[str(state)]


def with_output_failure(code: int) -> int:
    """The exit code of a command that reached its result but could not deliver an output.

    A result that is already non-zero (FAIL 1, INCONCLUSIVE 3, unreachable 4, interrupted 130 /
    143, ...) keeps its code: it says more than a lost report, a gate already stops on it, and a
    FAIL must never read as anything milder. Only a success (0: PASS, a finished run) becomes
    OUTPUT_FAILED (6), so a job whose requested report or verdict line is missing never passes
    silently -- and never looks like a FAIL of the split either."""
    return ExitCode.OUTPUT_FAILED if code == ExitCode.OK else code


class LoadgenError(Exception):
    """An error a person can act on: one line of message and the exit code to leave with."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        # Extra lines (e.g. the tail of a component's log) shown after the message.
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class UsageError(LoadgenError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


class UnreachableError(LoadgenError):
    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message, ExitCode.UNREACHABLE, detail)


class EnvironmentProblem(LoadgenError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.ENVIRONMENT)
