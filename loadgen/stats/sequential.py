"""SequentialJudge: a verdict that stays valid however often you look.

Call :meth:`SequentialJudge.update` with the cumulative counts after every batch and
stop as soon as the verdict is PASS or FAIL; call :meth:`finish` when the budget runs
out (RUNNING becomes INCONCLUSIVE). The intervals are confidence sequences
(:mod:`loadgen.stats.confseq`) that hold at every look at once, so stopping early
does not inflate the error rates -- unlike re-running a fixed-n test after each batch.

One judge follows one stream of responses: the intervals are intersected across looks
(still valid, and never widening), so counts must only grow. Each look's new responses are
also kept per look for the test of a split that changed during the run
(:mod:`loadgen.stats.change`) and for one that moves back and forth
(:mod:`loadgen.stats.flapping`); pass ``t`` (seconds into the run) so a change is reported
with its time.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from loadgen.stats import change, confseq, flapping
from loadgen.stats.decide import FLAP_HOLD_LOG_EVIDENCE, ZERO_LIMIT_CENTER, JudgeConfig, decide, guard_exceeded
from loadgen.stats.spec import SplitSpec
from loadgen.stats.srm import chi_square_p, dirichlet_log_bf
from loadgen.stats.verdict import ChangeResult, FlapResult, GuardResult, Segment, Verdict

GUARDS = ("unknown APP_IDs", "errors")


class SequentialJudge:
    """Anytime-valid PASS / FAIL / RUNNING for an expected split."""

    method = "sequential"

    def __init__(self, spec: SplitSpec, config: JudgeConfig | None = None) -> None:
        self.spec = spec
        self.config = config or JudgeConfig()
        widths = self.config.half_widths(spec)
        self._mixtures = [confseq.mixture_for(w, h) for w, h in zip(spec.weights, widths, strict=True)]
        self._alpha_each = self.config.split_alpha_each(spec.k)
        self._lower = np.zeros(spec.k)
        self._upper = np.ones(spec.k)
        limits = (self.config.max_unknown, self.config.max_errors)
        # A limit of 0 is decided by the count alone (see guard_exceeded); the mixture then only
        # shapes the interval shown, so it is centred on a small share instead of a degenerate 0.
        self._guard_mixtures = [confseq.single_beta(max(limit, ZERO_LIMIT_CENTER), max(limit, ZERO_LIMIT_CENTER))
                                for limit in limits]
        self._guard_lower = np.zeros(2)
        self._guard_upper = np.ones(2)
        # Dirichlet-multinomial SRM test: concentration of the same order as the bands'.
        self._srm_concentration = 0.25 / min(widths) ** 2
        self._max_log_bf = 0.0
        self._last_counts = [0] * (len(spec.names) + 2)  # per subset, then unknown and errors
        # Change test: cumulative counts and time at each look that brought new responses.
        self._change_test = change.ChangeTest(change.before_prior(spec.weights, widths))
        self._looks: list[list[int]] = []
        self._look_times: list[float | None] = []
        self._change: ChangeResult | None = None
        self._flap_test = flapping.FlapTest(spec.weights, flapping.concentration(spec.weights, widths))
        self._flap: FlapResult | None = None

    def update(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0, t: float | None = None) -> Verdict:
        """Judge the cumulative ``counts`` per subset (plus responses no subset claims and errors);
        ``t`` is the time of this look in seconds into the run (for reporting a change)."""
        return self._judge(counts, unknown, errors, t, final=False)

    def finish(self, counts: Mapping[str, int], unknown: int = 0, errors: int = 0, t: float | None = None) -> Verdict:
        """The last look: a verdict that is still RUNNING becomes INCONCLUSIVE."""
        return self._judge(counts, unknown, errors, t, final=True)

    def _judge(self, counts: Mapping[str, int], unknown: int, errors: int, t: float | None, final: bool) -> Verdict:
        c = [int(counts.get(name, 0)) for name in self.spec.names]
        if any(x < 0 for x in c) or unknown < 0 or errors < 0:
            raise ValueError("counts must not be negative")
        total = sum(c) + unknown + errors
        # Cumulative counts never go down; one that does is a caller's bug (a window that
        # moved, a baseline reset) and would fake a change of split.
        if any(now < then for now, then in zip([*c, unknown, errors], self._last_counts, strict=True)):
            raise ValueError("counts went down: a SequentialJudge follows one growing stream")
        self._last_counts = [*c, unknown, errors]
        n = sum(c)
        lower, upper = self._split_intervals(c, n)
        self._lower, self._upper = _intersect(self._lower, self._upper, lower, upper)

        guards = []
        limits = (self.config.max_unknown, self.config.max_errors)
        # unknown APP_IDs among all responses; errors among all requests.
        guard_counts = ((unknown, n + unknown), (errors, total))
        for i, (name, limit, (k, m)) in enumerate(zip(GUARDS, limits, guard_counts, strict=True)):
            lo, hi = confseq.interval_scalar(k, m, self.config.guard_alpha, self._guard_mixtures[i])
            self._guard_lower[i], self._guard_upper[i] = _intersect1(
                self._guard_lower[i], self._guard_upper[i], lo, hi
            )
            guards.append(
                GuardResult(
                    name=name, count=k, share=k / m if m else 0.0, lower=float(self._guard_lower[i]),
                    upper=float(self._guard_upper[i]), limit=limit,
                    exceeded=guard_exceeded(k, float(self._guard_lower[i]), limit),
                )
            )

        # A look without new responses is no look for the tests of an unsteady split (a boundary
        # would cost the change test prior mass); the others are kept with their times.
        fresh = n > 0 and (not self._looks or c != self._looks[-1])
        if fresh:
            self._looks.append(c)
            self._look_times.append(t)
        self._max_log_bf = max(self._max_log_bf, dirichlet_log_bf(c, self.spec.weights, self._srm_concentration))
        return decide(
            self.spec, c, list(zip(self._lower.tolist(), self._upper.tolist(), strict=True)), guards, self.config,
            self.method, chi_square_p(c, self.spec.weights), min(1.0, float(np.exp(-self._max_log_bf))), final,
            change=self._test_change(c, fresh), flapping=self._test_flapping(fresh),
        )

    def _test_change(self, c: list[int], fresh: bool) -> ChangeResult:
        """Test one constant split throughout against one change point (once proved, it stays)."""
        if self._change is not None and (self._change.detected or not fresh):
            return self._change
        threshold = float(np.log(1 / self.config.change_alpha))
        if not fresh:
            return ChangeResult(detected=False, log_evidence=0.0, log_threshold=round(threshold, 3))
        log_e, best = self._change_test.look(np.asarray([c], dtype=float))
        result = ChangeResult(detected=bool(log_e[0] >= threshold), log_evidence=round(float(log_e[0]), 3),
                              log_threshold=round(threshold, 3))
        if result.detected:
            j = int(best[0])  # the change came after look j (1-based)
            before = np.asarray(self._looks[j - 1])
            after = np.asarray(self._looks[-1]) - before
            at_t = self._look_times[j - 1]
            result = ChangeResult(
                detected=True, log_evidence=result.log_evidence, log_threshold=result.log_threshold,
                at_t=at_t, at_n=int(before.sum()),
                before=self._segment(before, None if at_t is None else 0.0, at_t),
                after=self._segment(after, at_t, self._look_times[-1]),
            )
        self._change = result
        return result

    def _test_flapping(self, fresh: bool) -> FlapResult:
        """Test one constant split throughout against a split that moves back and forth (once
        proved, it stays)."""
        if self._flap is not None and (self._flap.detected or not fresh):
            return self._flap
        threshold = float(np.log(1 / self.config.flap_alpha))
        if not fresh:
            return FlapResult(detected=False, log_evidence=0.0, log_threshold=round(threshold, 3))
        log_e, best = self._flap_test.look(np.asarray(self._looks[-1:], dtype=float))
        detected = bool(log_e[0] >= threshold)
        self._flap = FlapResult(detected=detected, log_evidence=round(float(log_e[0]), 3),
                                log_threshold=round(threshold, 3),
                                holding=not detected and bool(log_e[0] >= FLAP_HOLD_LOG_EVIDENCE))
        if self._flap.detected:
            self._flap = self._flap_windows(*self._flap_test.grids[int(best[0])])
        return self._flap

    def _flap_windows(self, size: int, offset: int) -> FlapResult:
        """The proved result with the shares seen over the windows of grid (size, offset): every
        window that holds at least half of ``size`` responses, the one still filling included."""
        assert self._flap is not None
        looks = np.asarray(self._looks, dtype=np.int64)
        n = looks.sum(axis=1)
        index = flapping.window_of(n, size, offset)
        ends = np.flatnonzero(np.r_[index[1:] != index[:-1], True])  # each window's last look
        counts = np.diff(np.vstack([np.zeros((1, looks.shape[1]), dtype=np.int64), looks[ends]]), axis=0)
        big = counts.sum(axis=1) >= size / 2
        if big.sum() < 2:  # proved early (one full window and a short one): show them all
            big = counts.sum(axis=1) > 0
        shares = counts[big] / counts[big].sum(axis=1, keepdims=True)
        # How often the share of the subset that moved most crossed the middle of its range from
        # one window to the next: one crossing is a move, two or more are back and forth.
        spread = shares.max(axis=0) - shares.min(axis=0)
        moving = shares[:, int(spread.argmax())]
        above = moving > (moving.min() + moving.max()) / 2
        reversals = int((above[1:] != above[:-1]).sum())
        # Durations from one window's last look to the next one's (the first window's start is
        # not a look: it may include a warm-up).
        ends_t = [self._look_times[j] for j in ends]
        window_s = None
        if len(ends) > 1 and all(t is not None for t in ends_t) and big[1:].any():
            window_s = round(float(np.diff(np.asarray(ends_t, dtype=float))[big[1:]].mean()), 3)
        names = self.spec.names
        return FlapResult(
            detected=True, log_evidence=self._flap.log_evidence, log_threshold=self._flap.log_threshold,
            window=size, windows=int(big.sum()), window_s=window_s, crossings=reversals,
            low=dict(zip(names, shares.min(axis=0).round(4).tolist(), strict=True)),
            high=dict(zip(names, shares.max(axis=0).round(4).tolist(), strict=True)),
        )

    def _segment(self, counts: np.ndarray, t_start: float | None, t_end: float | None) -> Segment:
        n = int(counts.sum())
        names = self.spec.names
        return Segment(counts=dict(zip(names, counts.astype(int).tolist(), strict=True)),
                       shares={name: float(x) / n if n else 0.0 for name, x in zip(names, counts, strict=True)},
                       n=n, t_start=t_start, t_end=t_end)

    def _split_intervals(self, c: list[int], n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.spec.k == 2:
            # One share decides both: the second subset's interval is the mirror image.
            lo, hi = confseq.interval_scalar(c[0], n, self._alpha_each, self._mixtures[0])
            return np.array([lo, 1 - hi]), np.array([hi, 1 - lo])
        lower, upper = np.zeros(self.spec.k), np.ones(self.spec.k)
        for i, mixture in enumerate(self._mixtures):
            lower[i], upper[i] = confseq.interval_scalar(c[i], n, self._alpha_each, mixture)
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
