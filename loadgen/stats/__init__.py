"""The judge: is the observed split the expected one? Pure numpy/scipy -- no I/O, no clock.

Public surface: :class:`SplitSpec`, :class:`JudgeConfig`, :class:`SequentialJudge` and
:class:`FixedJudge` (both implement :class:`Judge`; :func:`make_judge` picks one),
:class:`Verdict`, :class:`Tolerance`, :func:`plan_sample_size`.

The names are imported on first use (PEP 562), not here: a load worker imports
``loadgen.stats.latency_bins`` (numpy only) and must not pay ~0.7 s for scipy.stats, which the
judges need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loadgen.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from loadgen.stats.bands import Tolerance
    from loadgen.stats.decide import JudgeConfig
    from loadgen.stats.fixed import FixedJudge
    from loadgen.stats.judge import Judge, make_judge
    from loadgen.stats.plan import SampleSizePlan, plan_sample_size
    from loadgen.stats.sequential import SequentialJudge
    from loadgen.stats.spec import SpecError, SplitSpec, parse_app_id_map
    from loadgen.stats.verdict import ChangeResult, FlapResult, Segment, SubsetResult, Verdict, VerdictState

_WHERE = {
    "Tolerance": "bands", "JudgeConfig": "decide", "FixedJudge": "fixed", "Judge": "judge", "make_judge": "judge",
    "SampleSizePlan": "plan", "plan_sample_size": "plan", "SequentialJudge": "sequential",
    "SpecError": "spec", "SplitSpec": "spec", "parse_app_id_map": "spec",
    "ChangeResult": "verdict", "FlapResult": "verdict", "Segment": "verdict", "SubsetResult": "verdict",
    "Verdict": "verdict", "VerdictState": "verdict",
}

__all__ = [
    "ChangeResult", "FixedJudge", "FlapResult", "Judge", "JudgeConfig", "SampleSizePlan", "Segment", "SequentialJudge",
    "SpecError", "SplitSpec", "SubsetResult", "Tolerance", "Verdict", "VerdictState", "make_judge",
    "parse_app_id_map", "plan_sample_size",
]

__getattr__, __dir__ = lazy_exports(__name__, _WHERE, globals())
