"""The old import path of loadgen.stage_load, for the two importers outside `loadgen run`.

bench/mesh_throughput.py calls ``run_stage`` and reads its summary as the JSON dict, and
loadgen/commands/probes.py takes ``new_run_id``; new code imports loadgen.stage_load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.load.engine import LoadPlan
from loadgen.stage_load import load_stage, new_run_id

__all__ = ["StageRun", "new_run_id", "run_stage"]


@dataclass
class StageRun:
    stage: str
    summary: dict[str, Any]  # summary.json's content
    files: list[Path] = field(default_factory=list)
    signum: int | None = None


def run_stage(stage: str, plan: LoadPlan, meta: dict[str, Any], out_dir: Path | None) -> StageRun:
    """load_stage with summary.json's dict; ``meta`` may name the ``runtime``."""
    result = load_stage(stage, plan, meta.get("runtime"), out_dir)
    return StageRun(result.stage, result.summary.to_json(), result.files, result.signum)
