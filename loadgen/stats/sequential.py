"""SequentialJudge: a verdict that stays valid however often you look.

Call :meth:`SequentialJudge.update` with the cumulative counts after every batch and
stop as soon as the verdict is PASS or FAIL; call :meth:`finish` when the budget runs
out (RUNNING becomes INCONCLUSIVE). The intervals are confidence sequences
(:mod:`loadgen.stats.confseq`) that hold at every look at once, so stopping early
does not inflate the error rates -- unlike re-running a fixed-n test after each batch.

One judge follows one stream of responses: the intervals are intersected across looks
(still valid, and never widening), so counts must only grow.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loadgen.stats import confseq
from loadgen.stats.decide import JudgeConfig, decide
from loadgen.stats.spec import SplitSpec
from loadgen.stats.srm import chi_square_p, dirichlet_log_bf
from loadgen.stats.verdict import GuardResult, Verdict

GUARDS = ("unknown APP_IDs", "errors")


class SequentialJudge:
    """Anytime-valid PASS / FAIL / RUNNING for an expected split."""

    method = "sequential"

    def __init__(self, spec: SplitSpec, config: JudgeConfig | None = None) -> None:
        self.spec = spec
        self.config = config or JudgeConfig()
        tol = self.config.tolerance
        self._priors = [confseq.prior(w, tol) for w in spec.weights]
        self._alpha_each = self.config.split_alpha_each(spec.k)
        self._lower = np.zeros(spec.k)
        self._upper = np.ones(spec.k)
        limits = (self.config.max_unknown, self.config.max_errors)
        self._guard_priors = [confseq.prior(limit, limit) for limit in limits]
        self._guard_lower = np.zeros(2)
        self._guard_upper = np.ones(2)
        # Dirichlet-multinomial SRM test: concentration of the same order as the priors'.
        self._srm_concentration = 0.25 / tol**2
        self._max_log_bf = 0.0
        self._last_total = 0

    def update(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0) -> Verdict:
        """Judge the cumulative ``counts`` per subset (plus responses no subset claims and errors)."""
        return self._judge(counts, unknown, errors, final=False)

    def finish(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0) -> Verdict:
        """The last look: a verdict that is still RUNNING becomes INCONCLUSIVE."""
        return self._judge(counts, unknown, errors, final=True)

    def _judge(self, counts: Mapping[str, int], unknown: int, errors: int, final: bool) -> Verdict:
        c = [int(counts.get(name, 0)) for name in self.spec.names]
        if any(x < 0 for x in c) or unknown < 0 or errors < 0:
            raise ValueError("counts must not be negative")
        total = sum(c) + unknown + errors
        if total < self._last_total:
            raise ValueError("counts went down: a SequentialJudge follows one growing stream")
        self._last_total = total
        n = sum(c)
        lower, upper = self._split_intervals(c, n)
        self._lower, self._upper = _intersect(self._lower, self._upper, lower, upper)

        guards = []
        limits = (self.config.max_unknown, self.config.max_errors)
        # unknown APP_IDs among all responses; errors among all requests.
        guard_counts = ((unknown, n + unknown), (errors, total))
        for i, (name, limit, (k, m)) in enumerate(zip(GUARDS, limits, guard_counts, strict=True)):
            a, b = self._guard_priors[i]
            lo, hi = confseq.interval_scalar(k, m, self.config.guard_alpha, a, b)
            self._guard_lower[i], self._guard_upper[i] = _intersect1(
                self._guard_lower[i], self._guard_upper[i], lo, hi
            )
            guards.append(
                GuardResult(
                    name=name, count=k, share=k / m if m else 0.0, lower=float(self._guard_lower[i]),
                    upper=float(self._guard_upper[i]), limit=limit, exceeded=bool(self._guard_lower[i] > limit),
                )
            )

        self._max_log_bf = max(self._max_log_bf, dirichlet_log_bf(c, self.spec.weights, self._srm_concentration))
        return decide(
            self.spec, c, list(zip(self._lower.tolist(), self._upper.tolist(), strict=True)), guards, self.config,
            self.method, chi_square_p(c, self.spec.weights), min(1.0, float(np.exp(-self._max_log_bf))), final,
        )

    def _split_intervals(self, c: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.spec.k == 2:
            # One share decides both: the second subset's interval is the mirror image.
            a, b = self._priors[0]
            lo, hi = confseq.interval_scalar(c[0], n, self._alpha_each, a, b)
            return np.array([lo, 1 - hi]), np.array([hi, 1 - lo])
        lower, upper = np.zeros(self.spec.k), np.ones(self.spec.k)
        for i, (a, b) in enumerate(self._priors):
            lower[i], upper[i] = confseq.interval_scalar(c[i], n, self._alpha_each, a, b)
        return lower, upper


def _intersect(lo0: np.ndarray, hi0: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    new_lo, new_hi = np.maximum(lo0, lo), np.minimum(hi0, hi)
    # An empty intersection can only follow a miscovering look (probability <= alpha);
    # keep the newest interval rather than report an empty one.
    empty = new_lo > new_hi
    return np.where(empty, lo, new_lo), np.where(empty, hi, new_hi)


def _intersect1(lo0: float, hi0: float, lo: float, hi: float) -> tuple[float, float]:
    new_lo, new_hi = max(lo0, lo), min(hi0, hi)
    return (lo, hi) if new_lo > new_hi else (new_lo, new_hi)
