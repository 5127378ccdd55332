"""FixedJudge: one look at a pre-planned number of responses (exact Clopper-Pearson / TOST).

For users who want a classic fixed-sample test: decide n in advance
(:func:`loadgen.stats.plan.fixed_sample_size`), send exactly n requests, judge once.
Each subset's two one-sided tests (TOST) at level alpha are the Clopper-Pearson
interval at 1 - 2 alpha lying inside expected +- tolerance. Looking more than once
voids its guarantee; use the SequentialJudge for that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from scipy.special import betaincinv  # = scipy.stats.beta.ppf, bit for bit, without its import

from loadgen.stats.decide import JudgeConfig, decide, guard_exceeded
from loadgen.stats.spec import SplitSpec
from loadgen.stats.srm import chi_square_p
from loadgen.stats.verdict import GuardResult, Verdict, VerdictState


def clopper_pearson(successes: int, n: int, alpha_per_side: float) -> tuple[float, float]:
    """Exact interval with at most ``alpha_per_side`` miscoverage on each side."""
    if n <= 0:
        return 0.0, 1.0
    lo = 0.0 if successes <= 0 else float(betaincinv(successes, n - successes + 1, alpha_per_side))
    hi = 1.0 if successes >= n else float(betaincinv(successes + 1, n - successes, 1 - alpha_per_side))
    return lo, hi


class FixedJudge:
    method = "fixed"

    def __init__(self, spec: SplitSpec, config: JudgeConfig | None = None) -> None:
        self.spec = spec
        self.config = config or JudgeConfig()

    def update(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0, t: float | None = None) -> Verdict:
        """A look before the planned n is reached: shown while the run goes on, never final --
        what is not yet PASS or FAIL is RUNNING (one look is all this test's guarantee covers)."""
        v = self.judge(counts, unknown, errors)
        return dataclasses.replace(v, state=VerdictState.RUNNING) if v.state is VerdictState.INCONCLUSIVE else v

    def finish(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0, t: float | None = None) -> Verdict:
        """The one look the test is planned for (``t`` is ignored: this test has no change test)."""
        return self.judge(counts, unknown, errors)

    def judge(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0) -> Verdict:
        """Judge once at these counts."""
        c = [int(counts.get(name, 0)) for name in self.spec.names]
        n = sum(c)
        each = self.config.split_alpha_each(self.spec.k)
        intervals = [clopper_pearson(x, n, each) for x in c]
        guards = []
        total = n + unknown + errors
        for name, k, m, limit in (("unknown APP_IDs", unknown, n + unknown, self.config.max_unknown),
                                  ("errors", errors, total, self.config.max_errors)):
            lo, hi = clopper_pearson(k, m, self.config.guard_alpha)
            guards.append(GuardResult(name=name, count=k, share=k / m if m else 0.0, lower=lo, upper=hi,
                                      limit=limit, exceeded=guard_exceeded(k, lo, limit)))
        return decide(self.spec, c, intervals, guards, self.config, self.method,
                      chi_square_p(c, self.spec.weights), None, final=True)
