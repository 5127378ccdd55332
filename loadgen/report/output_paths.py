"""Every output a command was asked for, checked together before it sends or writes anything.

:func:`check_outputs` takes the output options by name: each must be writable
(:func:`loadgen.report.files.check_output`), no two may be one file (they would overwrite each
other, or interleave on a device: ``/dev/null`` alone may take several), none may be one of the
command's inputs (``--replay run.jsonl --json run.jsonl`` would destroy the recording), and at
most one may be ``-`` (stdout). :func:`check_output_dir` is the same for a directory option
(``--out``, ``--plots``, ``--html``): a directory, or a path where one can be made.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from loadgen.errors import UsageError
from loadgen.report.files import STDOUT, check_output

__all__ = ["check_output_dir", "check_outputs"]


def _same_file_key(path: Path) -> str:
    """Where ``path``'s bytes would go, for comparing two options (symlinks and ``..`` resolved)."""
    return os.path.realpath(path)


def check_outputs(outputs: Mapping[str, Path | str | None], inputs: Mapping[str, Path | str | None] | None = None
                  ) -> None:
    """``outputs``: option name -> path (None: not asked for). Raises UsageError (one line)."""
    given = {name: Path(path) for name, path in outputs.items() if path is not None}
    to_stdout = [name for name, path in given.items() if str(path) == STDOUT]
    if len(to_stdout) > 1:
        both = "both" if len(to_stdout) == 2 else "all"
        raise UsageError(f"{' and '.join(f'{n} -' for n in to_stdout)} cannot {both} go to stdout; give "
                         f"{'one' if len(to_stdout) == 2 else 'all but one'} of them a file")
    seen: dict[str, str] = {}
    for name, path in given.items():
        if str(path) == STDOUT:
            continue
        key = _same_file_key(path)
        if key in seen and key != os.devnull:
            raise UsageError(f"{seen[key]} and {name} both write {path}: give each output its own file")
        seen.setdefault(key, name)
    for name, path in (inputs or {}).items():
        if path is None:
            continue
        key = _same_file_key(Path(path))
        if key in seen and key != os.devnull:
            raise UsageError(f"{seen[key]} would overwrite {name} {path}: write the output elsewhere")
    for path in given.values():
        check_output(path)


def check_output_dir(path: Path | str, option: str) -> None:
    """A directory option: an existing, writable directory, or a path whose nearest existing
    ancestor is a writable directory (the missing ones are made when writing). Nothing is left
    behind. Raises UsageError naming ``option``."""
    shown = f"{option} {path}"
    target = Path(os.path.abspath(path))
    existing = target
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "it is" if existing == target else f"{existing} is"
        raise UsageError(f"cannot write reports under {shown}: {what} not a directory")
    if not existing.exists():  # a dangling symlink on the way
        raise UsageError(f"cannot write reports under {shown}: {existing} is a broken link")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".loadgen-check-"))
    except OSError as exc:
        raise UsageError(f"cannot write reports under {shown}: {exc.strerror or exc}") from None
