"""How many requests a verdict needs, for a given split, bands, alpha and power.

:func:`fixed_sample_size` -- the smallest n at which the FixedJudge (exact Clopper-Pearson
TOST) PASSes with probability >= power when the true split is exactly the expected one,
computed exactly from the binomial distribution, each subset against its own band. The
SequentialJudge's requests to a verdict are random; their mean and p95 come from simulation
(loadgen.stats.simulate), never from a formula.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.special import bdtr, betaincinv, ndtri

from loadgen.stats.bands import band_of
from loadgen.stats.decide import JudgeConfig
from loadgen.stats.spec import SplitSpec

MAX_N = 10_000_000


@dataclass(frozen=True)
class SampleSizePlan:
    fixed_n: int | None  # None: not reachable below MAX_N
    power: float


def _fixed_power(n: int, w: float, half_width: float, alpha_each: float) -> float:
    """P(Clopper-Pearson interval inside the band) at n when the true share is w."""
    lo_band, hi_band = band_of(w, half_width)
    # Only counts whose share lies inside the band can have their interval inside it; their
    # interval ends come from one vectorised inverse incomplete beta (beta.ppf per count made
    # a 0.1-point band take 4 s to plan).
    s = np.arange(max(0, int(np.floor(lo_band * n)) - 1), min(n, int(np.ceil(hi_band * n)) + 1) + 1)
    with np.errstate(all="ignore"):
        lo = np.where(s <= 0, 0.0, betaincinv(np.maximum(s, 1), n - s + 1, alpha_each))
        hi = np.where(s >= n, 1.0, betaincinv(s + 1, np.maximum(n - s, 1), 1 - alpha_each))
    ok = (lo >= lo_band) & (hi <= hi_band)
    # P(count in ok) from the binomial CDF over each run of consecutive counts (scipy.special's
    # bdtr: scipy.stats' binom.pmf costs every canary ~0.7 s of import). Within 2e-10 of the sum
    # of pmfs on 3,000 random (n, w, band, alpha), the same fixed n on 132 plans
    # (tests/unit/test_plan_without_scipy_stats.py keeps the comparison).
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ok.view(np.int8), [0]))))
    return float(sum(bdtr(int(e), n, w) - (bdtr(int(b) - 1, n, w) if b > 0 else 0.0)
                     for b, e in zip(s[edges[0::2]], s[edges[1::2] - 1], strict=True)))


def fixed_sample_size(spec: SplitSpec, config: JudgeConfig, power: float = 0.8) -> int | None:
    each = config.split_alpha_each(spec.k)
    widths = config.half_widths(spec)
    # The subset with the widest binomial spread for its band needs the most requests.
    needs = []
    pairs = list(zip(spec.weights, widths, strict=True))
    for w, h in pairs[:1] if spec.k == 2 else pairs:
        if w in (0.0, 1.0):
            continue
        sigma2 = w * (1 - w)
        guess = int(sigma2 / h**2 * 4) + 10
        # Power is not monotone in n (binomial lattice), so take the first n from a
        # doubling bracket and refine by bisection on a smoothed criterion.
        lo, hi = 1, guess
        while _fixed_power(hi, w, h, each) < power:
            lo, hi = hi, hi * 2
            if hi > MAX_N:
                return None
        while hi - lo > max(1, hi // 1000):
            mid = (lo + hi) // 2
            if _fixed_power(mid, w, h, each) >= power:
                hi = mid
            else:
                lo = mid
        needs.append(hi)
    return max(needs) if needs else int(np.ceil(np.log(1 / each) / min(widths)))


def approximate_fixed_n(spec: SplitSpec, config: JudgeConfig, power: float) -> int:
    """The fixed test's n by the normal approximation, w(1-w) (z_(1-alpha) + z_((1+power)/2))^2 / h^2:
    instant where :func:`fixed_sample_size` takes seconds for narrow bands, and within a few percent
    of it (a warning's threshold, not a plan)."""
    z = ndtri(1 - config.split_alpha_each(spec.k)) + ndtri((1 + power) / 2)
    pairs = list(zip(spec.weights, config.half_widths(spec), strict=True))
    return int(max(w * (1 - w) * z**2 / h**2 for w, h in (pairs[:1] if spec.k == 2 else pairs)))


def default_budget(fixed_n: int | None) -> int:
    """The sequential canary's request budget when the user gives none: 4 x the fixed test's n at 80 %
    power (the simulated p95 to a verdict is about 2 x), at least 5,000."""
    return max(5000, 4 * (fixed_n or 25_000))


@functools.lru_cache(maxsize=32)
def plan_sample_size(spec: SplitSpec, config: JudgeConfig, power: float = 0.8) -> SampleSizePlan:
    """The fixed test's n at ``power`` (None when above MAX_N), for budgets and --plan.
    Cached: a canary asks for its plan when checking its options and again when it starts."""
    return SampleSizePlan(fixed_sample_size(spec, config, power), power)


def fewest_to_decide(spec: SplitSpec, config: JudgeConfig, method: str = "sequential") -> int:
    """The fewest judged answers at which the judge can decide the split even in its clearest cases:
    FAIL when one subset gets all of the answers or none of them, or PASS when the answers are
    exactly at the expected split. A budget that judges fewer can only end INCONCLUSIVE (whatever
    the traffic does, the split's intervals cannot leave or fit its bands), so the canary refuses
    it up front. ``method``: whose intervals -- the sequential judge's confidence sequences or the
    fixed test's Clopper-Pearson intervals."""
    from loadgen.stats import confseq
    from loadgen.stats.fixed import clopper_pearson

    each = config.split_alpha_each(spec.k)
    widths = config.half_widths(spec)
    bands = [band_of(w, h) for w, h in zip(spec.weights, widths, strict=True)]
    if method == "fixed":
        def interval(i: int, s: int, n: int) -> tuple[float, float]:
            return clopper_pearson(s, n, each)
    else:
        mixtures = [confseq.mixture_for(w, h) for w, h in zip(spec.weights, widths, strict=True)]

        def interval(i: int, s: int, n: int) -> tuple[float, float]:
            return confseq.interval_scalar(s, n, each, mixtures[i])

    def fails_when_lopsided(n: int) -> bool:
        for i, w in enumerate(spec.weights):
            lo_band, hi_band = bands[i]
            if w == 0:
                return True  # one answer from a subset expected at 0 is a FAIL
            if interval(i, 0, n)[1] < lo_band or interval(i, n, n)[0] > hi_band:
                return True
        return False

    def passes_when_exact(n: int) -> bool:
        for i, w in enumerate(spec.weights):
            lo, hi = interval(i, round(w * n), n)
            if lo < bands[i][0] or hi > bands[i][1]:
                return False
        return True

    def decides(n: int) -> bool:
        return fails_when_lopsided(n) or passes_when_exact(n)

    # Both clear cases only get clearer with more answers: the first n found by doubling, then bisection.
    hi = 1
    while not decides(hi):
        if hi > MAX_N:
            return MAX_N
        hi *= 2
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if decides(mid):
            hi = mid
        else:
            lo = mid
    return hi
