"""Each subpackage has a deliberate public surface (``__all__``), like httpx's own test of it:
every listed name exists, each is defined inside loadgen (no re-export of a dependency), and
each subpackage imports cleanly on its own, in a fresh interpreter (no import-order cycles)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["loadgen.canary", "loadgen.stats", "loadgen.load", "loadgen.report", "loadgen.mesh",
            "loadgen.mesh.runtime", "loadgen.probes"]


@pytest.mark.parametrize("name", PACKAGES)
def test_public_surface(name):
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported, f"{name} declares no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ lists a name twice"
    for member in exported:
        value = getattr(package, member)  # raises when listed but missing
        module = getattr(value, "__module__", None)
        if module is not None and callable(value):
            assert module.startswith("loadgen."), f"{name}.{member} comes from {module}"


@pytest.mark.parametrize("name", PACKAGES)
def test_imports_alone(name):
    proc = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
