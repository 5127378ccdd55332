"""Where loadgen finds its stage files and keeps its state and caches."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The checkout holding consul/, nomad/ and services/ (LOADGEN_PROJECT overrides)."""
    override = os.environ.get("LOADGEN_PROJECT")
    return Path(override).resolve() if override else Path(__file__).resolve().parent.parent


def consul_dir() -> Path:
    return project_root() / "consul"


def cache_dir() -> Path:
    """Built binaries, keyed by version; outside the repo so clean clones reuse them."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("LOADGEN_CACHE", str(Path(base) / "loadgen")))


def run_dir() -> Path:
    """State of the running local mesh (pids, logs), shared by every shell."""
    override = os.environ.get("LOADGEN_RUN_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "loadgen" / "mesh"
