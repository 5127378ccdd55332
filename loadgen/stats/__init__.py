"""The judge: is the observed split the expected one? Pure numpy/scipy -- no I/O, no clock.

Public surface: :class:`SplitSpec`, :class:`JudgeConfig`, :class:`SequentialJudge` and
:class:`FixedJudge` (both implement :class:`Judge`; :func:`make_judge` picks one),
:class:`Verdict`, :class:`Tolerance`, :func:`plan_sample_size`.
"""

from loadgen.stats.bands import Tolerance
from loadgen.stats.decide import JudgeConfig
from loadgen.stats.fixed import FixedJudge
from loadgen.stats.judge import Judge, make_judge
from loadgen.stats.plan import SampleSizePlan, plan_sample_size
from loadgen.stats.sequential import SequentialJudge
from loadgen.stats.spec import SpecError, SplitSpec, parse_app_id_map
from loadgen.stats.verdict import ChangeResult, FlapResult, Segment, SubsetResult, Verdict, VerdictState

__all__ = [
    "ChangeResult", "FixedJudge", "FlapResult", "Judge", "JudgeConfig", "SampleSizePlan", "Segment", "SequentialJudge",
    "SpecError", "SplitSpec", "SubsetResult", "Tolerance", "Verdict", "VerdictState", "make_judge",
    "parse_app_id_map", "plan_sample_size",
]
