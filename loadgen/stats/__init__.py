"""The judge: is the observed split the expected one? Pure numpy/scipy -- no I/O, no clock.

Public surface: :class:`SplitSpec`, :class:`JudgeConfig`, :class:`SequentialJudge`,
:class:`FixedJudge`, :class:`Verdict`, :func:`plan`.
"""

from loadgen.stats.decide import JudgeConfig
from loadgen.stats.fixed import FixedJudge
from loadgen.stats.plan import Plan, plan
from loadgen.stats.sequential import SequentialJudge
from loadgen.stats.spec import SpecError, SplitSpec, parse_app_id_map
from loadgen.stats.verdict import SubsetResult, Verdict, VerdictState

__all__ = [
    "FixedJudge", "JudgeConfig", "Plan", "SequentialJudge", "SpecError", "SplitSpec", "SubsetResult", "Verdict",
    "VerdictState", "parse_app_id_map", "plan",
]
