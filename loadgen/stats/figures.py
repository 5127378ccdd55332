"""The judge's published figures: what bench/judge_sim.py last measured at the default settings.

``loadgen canary --help`` prints them, so the help and bench/README.md show the same numbers
(the bench writes this file with ``--write-figures``). Each file carries a fingerprint of the
judge's design; when the design changes without the bench being re-run, :func:`published`
returns None and a unit test fails, so stale figures are never shown.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from loadgen.stats import change, confseq, decide, flapping
from loadgen.stats.decide import JudgeConfig
from loadgen.stats.simulate import LOOK_EVERY

FIGURES = Path(__file__).with_name("simulated.json")
HELP_SCENARIOS = ("85/15", "50/50", "95/5", "99/1", "70/20/10")


def design_fingerprint(config: JudgeConfig) -> str:
    """Changes whenever anything that moves the simulated figures changes."""
    design = repr((confseq.MIXTURE_DESIGN, decide.SPLIT_ALPHA_SHARE, decide.GUARD_ALPHA_SHARE,
                   decide.CHANGE_ALPHA_SHARE, change.CANDIDATES[:64].tolist(), LOOK_EVERY, config.tolerance,
                   config.alpha, decide.FLAP_ALPHA_SHARE, decide.FLAP_HOLD_LOG_EVIDENCE, flapping.grids(),
                   flapping.FLAP_DESIGN, flapping.MIN_CONCENTRATION))
    return hashlib.sha256(design.encode()).hexdigest()[:16]


def published(path: Path = FIGURES) -> dict[str, Any] | None:
    """{scenario: {...}} as the bench wrote it, or None if missing or made by another design."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != design_fingerprint(JudgeConfig()):
        return None
    return data
