"""`loadgen` run inside the test process, for judge and replay cases that need no subprocess.

A subprocess pays the CLI's start (numpy, scipy) for every case; in-process the imports are paid
once. The result has the subprocess's shape (returncode, stdout, stderr), so a case can move
between the two. Each command keeps a few subprocess tests: that is how users run it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner


def loadgen_in_process(*args: str, tmp_path: Path,
                       env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """``env``: variables to set for the call (None unsets one)."""
    from loadgen.cli import cli

    result = CliRunner().invoke(cli, list(args), env={"LOADGEN_RUN_DIR": str(tmp_path / "run"), **(env or {})},
                                catch_exceptions=False)
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)
