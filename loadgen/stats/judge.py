"""The one interface both judges implement, and how a run picks one.

A caller (the canary's live loop, a replay, the Locust plugin) looks after every batch with
:meth:`Judge.update` and ends with :meth:`Judge.finish`; it never needs to know which judge
it holds. Counts are cumulative: per subset, plus responses no subset claims and failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from loadgen.stats.decide import JudgeConfig
from loadgen.stats.fixed import FixedJudge
from loadgen.stats.sequential import SequentialJudge
from loadgen.stats.spec import SplitSpec
from loadgen.stats.verdict import Verdict

METHODS = ("sequential", "fixed")


@runtime_checkable
class Judge(Protocol):
    spec: SplitSpec
    config: JudgeConfig
    method: str  # "sequential" (may stop at any look) or "fixed" (judged once, at the planned n)

    def update(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0,
               t: float | None = None) -> Verdict:
        """A look during the run: PASS or FAIL when proved, otherwise RUNNING. ``t`` (seconds
        into the run, from the caller) only dates a change in the split."""
        ...

    def finish(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0,
               t: float | None = None) -> Verdict:
        """The last look: what is still undecided becomes INCONCLUSIVE."""
        ...


def make_judge(spec: SplitSpec, config: JudgeConfig, method: str = "sequential") -> Judge:
    if method == "fixed":
        return FixedJudge(spec, config)
    if method == "sequential":
        return SequentialJudge(spec, config)
    raise ValueError(f"unknown judge method {method!r} (one of {', '.join(METHODS)})")
