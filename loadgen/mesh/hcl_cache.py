"""Parsed HCL, kept by content, so that a command reading the stage files does not parse them.

pyhcl builds its LALR tables (~35 ms) and a lexer per file in every process, and cannot save
them: reading consul/'s ~20 config entries cost each `loadgen status`, `stages`, `up`, `canary`
about 0.07 s of CPU. What a given pyhcl makes of a given text never changes, so the result is
stored as JSON under the cache directory, named by a hash of both; a missing, unreadable or
unwritable cache only costs the parse. A value JSON would not give back exactly is not stored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadgen.paths import cache_dir


def cached_parse(text: str, parse: Callable[[str], Any]) -> Any:
    """``parse(text)``, or what it returned for this text (and this pyhcl) before."""
    path = _entry(text)
    if path is not None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    value = parse(text)
    if path is not None:
        _store(path, value)
    return value


def _entry(text: str) -> Path | None:
    # pyhcl's version file, read without importing pyhcl (importing it is part of what a hit saves).
    spec = importlib.util.find_spec("hcl")
    if spec is None or spec.origin is None:
        return None
    try:
        version = (Path(spec.origin).parent / "version.py").read_bytes()
    except OSError:
        version = spec.origin.encode()
    key = hashlib.sha256(version + b"\0" + text.encode()).hexdigest()
    return cache_dir() / "hcl" / f"{key}.json"


def _store(path: Path, value: Any) -> None:
    try:
        encoded = json.dumps(value)
        if json.loads(encoded) != value or _types(json.loads(encoded)) != _types(value):
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_text(encoded)
        os.replace(partial, path)  # a reader sees the whole file or none
    except (OSError, TypeError, ValueError):
        pass


def _types(value: Any) -> Any:
    """The shape of ``value`` with its types (1 == 1.0 == True, and a tuple is no list)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (type(value), [_types(v) for v in value])
    return type(value)
