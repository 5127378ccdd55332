"""`loadgen run` where matplotlib is not installed (the loadgen image leaves it out): every report
file but the PNG plots, one line saying so, exit 0; before, the run crashed after its load (exit 70)."""

from __future__ import annotations

import sys

from tests.unit.cli_in_process import loadgen_in_process
from tests.unit.standin_target import standin_target


def test_run_writes_its_reports_without_plots_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError, find_spec -> None
    with standin_target(lambda n: (200, "1")) as url:
        proc = loadgen_in_process("run", "--target", url, "--rate", "100", "--duration", "0.2s", "--out",
                                  str(tmp_path / "r"), "--run-id", "x", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "no PNG plots: matplotlib is not installed here" in proc.stderr
    stage = tmp_path / "r" / "x" / "target"
    assert {p.name for p in stage.iterdir()} == {"summary.json", "histogram.hgrm", "timeseries.csv"}
