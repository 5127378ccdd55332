"""Reporters: turn results into files and screens (JSON, JUnit XML, HTML, PNG, terminal).

The public surface is listed in ``__all__``; its names are imported on first use (PEP 562),
so importing one reporter does not import the others' dependencies (the canary's statistics,
matplotlib).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from loadgen.report.files import check_output, write_json, write_output
    from loadgen.report.html import load_run, render, write_report
    from loadgen.report.run_files import build_summary, write_stage_files
    from loadgen.report.statusline import StatusLine
    from loadgen.report.summary import MalformedSummary, StageInfo, StageSummary

_WHERE = {
    "check_output": "files", "write_json": "files", "write_output": "files",
    "load_run": "html", "render": "html", "write_report": "html",
    "build_summary": "run_files", "write_stage_files": "run_files",
    "StatusLine": "statusline",
    "MalformedSummary": "summary", "StageInfo": "summary", "StageSummary": "summary",
}

__all__ = [
    "MalformedSummary",
    "StageInfo",
    "StageSummary",
    "StatusLine",
    "build_summary",
    "check_output",
    "load_run",
    "render",
    "write_json",
    "write_output",
    "write_report",
    "write_stage_files",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
