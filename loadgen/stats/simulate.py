"""The SequentialJudge's rule on thousands of simulated streams at once: error rates and requests
to a verdict, measured rather than claimed.

One place for these figures: bench/judge_sim.py runs it at 10,000 runs per cell (and checks
it against the real SequentialJudge run by run), ``loadgen canary --plan`` runs it for the
user's own settings, and ``--help`` prints the bench's last figures (stats/simulated.json).

The rule is the judge's, evaluated where it decides: a subset's running interval lies above
its band's lower edge exactly when, at some look, the confidence sequence's martingale at that
edge reached 1/alpha with the observed share above it (and likewise for the other edge and for
FAIL), so only the band edges need evaluating -- no bisection -- with the judge's own mixtures
(confseq.mixture_for) and its own tests of an unsteady split (change.ChangeTest,
flapping.FlapTest).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from loadgen.stats import change, confseq, flapping
from loadgen.stats.bands import band_of
from loadgen.stats.decide import FLAP_HOLD_LOG_EVIDENCE, JudgeConfig
from loadgen.stats.spec import SplitSpec

PASS, FAIL, INCONCLUSIVE = 1, 2, 3
LOOK_EVERY = 50  # responses between looks in every simulation (the live canary looks every 0.1 s)


@dataclass(frozen=True)
class Outcome:
    """Per simulated run: verdict code, responses at the verdict (or at the budget), and whether
    the FAIL came from the change test or from the test of a split moving back and forth."""

    code: NDArray[np.int64]
    stop_n: NDArray[np.int64]
    by_change: NDArray[np.bool_]
    by_flap: NDArray[np.bool_]


@dataclass(frozen=True)
class Summary:
    runs: int
    pass_rate: float
    fail_rate: float
    inconclusive_rate: float
    change_rate: float  # share of runs that FAILed with the change reason
    flap_rate: float  # share of runs that FAILed with the moved-back-and-forth reason
    mean_n: float  # over runs that reached PASS or FAIL
    p95_n: float

    @classmethod
    def of(cls, outcome: Outcome) -> Summary:
        decided = outcome.stop_n[outcome.code != INCONCLUSIVE]
        return cls(
            runs=len(outcome.code), pass_rate=float((outcome.code == PASS).mean()),
            fail_rate=float((outcome.code == FAIL).mean()),
            inconclusive_rate=float((outcome.code == INCONCLUSIVE).mean()),
            change_rate=float(outcome.by_change.mean()), flap_rate=float(outcome.by_flap.mean()),
            mean_n=float(decided.mean()) if len(decided) else float("nan"),
            p95_n=float(np.percentile(decided, 95)) if len(decided) else float("nan"),
        )


def stationary_steps(p: NDArray[np.float64], runs: int, budget: int, rng: np.random.Generator,
                     batch: int = LOOK_EVERY) -> NDArray[np.int64]:
    """Per-look counts (looks, runs, k) of streams with a constant split p."""
    return rng.multinomial(batch, p, size=(max(budget // batch, 1), runs))


@dataclass(frozen=True)
class Rule:
    """What a judge's verdict depends on, per subset: its band, the mixture its confidence
    sequence bets with, the alpha of each interval; and whether it tests for a change."""

    bands: list[tuple[float, float]]
    mixtures: list[confseq.Mixture]
    alpha_each: float
    change_prior: NDArray[np.float64] | None = None  # None: no change test
    change_alpha: float = 0.0
    flap_expected: tuple[float, ...] | None = None  # None: no test of a split moving back and forth
    flap_concentration: float = 0.0
    flap_alpha: float = 0.0
    flap_hold: float = np.inf  # no PASS while the flapping test's log E is at least this

    @classmethod
    def of_judge(cls, spec: SplitSpec, config: JudgeConfig) -> Rule:
        """The SequentialJudge's own rule."""
        widths = config.half_widths(spec)
        return cls(
            bands=[band_of(w, h) for w, h in zip(spec.weights, widths, strict=True)],
            mixtures=[confseq.mixture_for(w, h) for w, h in zip(spec.weights, widths, strict=True)],
            alpha_each=config.split_alpha_each(spec.k), change_prior=change.before_prior(spec.weights, widths),
            change_alpha=config.change_alpha, flap_expected=spec.weights,
            flap_concentration=flapping.concentration(spec.weights, widths), flap_alpha=config.flap_alpha,
            flap_hold=FLAP_HOLD_LOG_EVIDENCE,
        )


def judge_streams(spec: SplitSpec, config: JudgeConfig, steps: NDArray[np.int64]) -> Outcome:
    """The SequentialJudge's verdicts on streams given as per-look counts (looks, runs, k); each run
    stops at its first PASS or FAIL, else is INCONCLUSIVE at the last look."""
    return apply_rule(Rule.of_judge(spec, config), spec, steps)


def apply_rule(rule: Rule, spec: SplitSpec, steps: NDArray[np.int64]) -> Outcome:
    """:func:`judge_streams` for any :class:`Rule` (the bench also runs the judge's predecessor)."""
    looks, runs, k = steps.shape
    cum = steps.cumsum(axis=0).astype(float)
    threshold = np.log(1 / rule.alpha_each)
    tested = [0] if k == 2 else list(range(k))
    zero = np.array(spec.weights) == 0
    change_test = None if rule.change_prior is None else change.ChangeTest(rule.change_prior, runs)
    flap_test = None if rule.flap_expected is None else \
        flapping.FlapTest(rule.flap_expected, rule.flap_concentration, runs)

    low_ok = np.zeros((runs, k), dtype=bool)
    high_ok = np.zeros((runs, k), dtype=bool)
    for i, (lo, hi) in enumerate(rule.bands):
        low_ok[:, i] = lo <= 0 or i not in tested
        high_ok[:, i] = hi >= 1 or i not in tested
    code = np.zeros(runs, dtype=np.int64)
    stop_n = np.zeros(runs, dtype=np.int64)
    by_change = np.zeros(runs, dtype=bool)
    by_flap = np.zeros(runs, dtype=bool)
    for t in range(looks):
        active = np.flatnonzero(code == 0)
        if not len(active):
            break
        c = cum[t, active]
        n = c.sum(axis=1)
        fail = (zero & (c > 0)).any(axis=1)
        for i in tested:
            lo, hi = rule.bands[i]
            share = c[:, i] / np.maximum(n, 1)
            if lo > 0:
                proved = confseq.log_martingale(lo, c[:, i], n, rule.mixtures[i]) >= threshold
                low_ok[active, i] |= proved & (share > lo)
                fail |= proved & (share < lo)
            if hi < 1:
                proved = confseq.log_martingale(hi, c[:, i], n, rule.mixtures[i]) >= threshold
                high_ok[active, i] |= proved & (share < hi)
                fail |= proved & (share > hi)
        changed = np.zeros(len(active), dtype=bool)
        if change_test is not None:
            log_e, _ = change_test.look(c, active)
            changed = log_e >= np.log(1 / rule.change_alpha)
        flapped = np.zeros(len(active), dtype=bool)
        held = np.zeros(len(active), dtype=bool)
        if flap_test is not None:
            log_e, _ = flap_test.look(c, active)
            flapped = log_e >= np.log(1 / rule.flap_alpha)
            held = log_e >= rule.flap_hold
        passed = low_ok[active].all(axis=1) & high_ok[active].all(axis=1) & ~held
        verdict = np.where(changed | flapped | fail, FAIL, np.where(passed, PASS, 0))
        decided = verdict > 0
        code[active[decided]] = verdict[decided]
        stop_n[active[decided]] = n[decided]
        by_change[active[decided & changed]] = True
        by_flap[active[decided & flapped]] = True
    undecided = code == 0
    code[undecided] = INCONCLUSIVE
    stop_n[undecided] = cum[-1].sum(axis=1)[undecided]
    return Outcome(code, stop_n, by_change, by_flap)


def simulate(spec: SplitSpec, config: JudgeConfig, truth: NDArray[np.float64] | list[float], budget: int,
             runs: int = 1000, seed: int = 20261128) -> Summary:
    """Monitored runs at a constant true split, looking every LOOK_EVERY responses."""
    rng = np.random.default_rng(seed)
    steps = stationary_steps(np.asarray(truth, dtype=float), runs, budget, rng)
    return Summary.of(judge_streams(spec, config, steps))
