"""loadgen.probes: a deliberate public surface that imports cleanly, and commands that only call it."""

from __future__ import annotations

import importlib
import subprocess
import sys


def test_import_loadgen_probes_alone_in_a_fresh_interpreter():
    code = "import loadgen.probes as p; print(len(p.__all__))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout) > 0


def test_every_listed_name_is_defined_in_the_probes():
    probes = importlib.import_module("loadgen.probes")
    assert len(set(probes.__all__)) == len(probes.__all__)
    for name in probes.__all__:
        value = getattr(probes, name)
        if callable(value):
            assert value.__module__.startswith("loadgen.probes."), (name, value.__module__)
            assert value.__name__ == name
    # What the commands call is on the surface.
    for name in ("measure_intentions", "measure_propagation", "protocols_to_probe", "TargetOptions",
                 "IntentionsReport", "PropagationResult"):
        assert name in probes.__all__


def test_the_probe_commands_resolve_no_target_themselves():
    # Target resolution (borrowing the local mesh, Consul clients) lives in loadgen.probes.target.
    commands = importlib.import_module("loadgen.commands.probes")
    for name in ("borrowed_stage", "ConsulClient", "subset_map", "live_splitter", "_mesh", "_summarise",
                 "_phase_json", "_max"):
        assert not hasattr(commands, name), name
