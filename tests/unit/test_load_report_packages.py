"""loadgen.load and loadgen.report: a deliberate public surface that costs nothing to import.

Every load worker process imports loadgen.load.engine (and so loadgen/load/__init__.py): the
package's surface must not pull in the plotting or statistics stacks a worker never uses.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

HEAVY = ("matplotlib", "scipy", "numpy", "loadgen.stats", "loadgen.report", "loadgen.mesh")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(proc.stdout.split())


@pytest.mark.parametrize("package", ["loadgen.load", "loadgen.report"])
def test_every_listed_name_resolves(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module._WHERE), "__all__ and the lazy map list the same names"
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(value, "__name__", name) == name
        assert value.__module__ == f"{package}.{module._WHERE[name]}"
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


@pytest.mark.parametrize("package", ["loadgen.load", "loadgen.report"])
def test_package_imports_cleanly_alone(package):
    modules = _imported_after(f"import {package}")
    assert package in modules


def test_a_worker_process_imports_nothing_heavy():
    # What a --workers process imports: the engine, the worker loop and the Tally.
    modules = _imported_after("import loadgen.load.engine, loadgen.load.workers, loadgen.load")
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY or any(m.startswith(h + ".") or m == h
                                                                          for h in HEAVY))
    assert heavy == [], heavy


def test_writing_a_summary_does_not_import_plots_or_statistics():
    # matplotlib only when a PNG is drawn; the canary's statistics never.
    modules = _imported_after("import loadgen.report.summary, loadgen.report.run_files, loadgen.stage_load")
    assert not {"matplotlib", "scipy"} & {m.split(".")[0] for m in modules}
