"""How many requests a verdict needs, for a given split, tolerance, alpha and power.

* :func:`fixed_sample_size` -- the smallest n at which the FixedJudge (exact
  Clopper-Pearson TOST) PASSes with probability >= power when the true split is
  exactly the expected one. Computed exactly from the binomial distribution.
* :func:`sequential_sample_size` -- the n at which the SequentialJudge's intervals,
  with the observed shares equal to the expected ones, first fit inside the band: the
  typical n to a PASS at the expected split. Its distribution (mean, p95) under
  monitoring comes from bench/judge_sim.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from loadgen.stats import confseq
from loadgen.stats.decide import JudgeConfig, band
from loadgen.stats.fixed import clopper_pearson
from loadgen.stats.spec import SplitSpec

MAX_N = 10_000_000


@dataclass(frozen=True)
class Plan:
    fixed_n: int | None  # None: not reachable below MAX_N
    sequential_n: int | None
    power: float


def _fixed_power(n: int, w: float, tol: float, alpha_each: float) -> float:
    """P(Clopper-Pearson interval inside the band) at n when the true share is w."""
    lo_band, hi_band = band(w, tol)
    s = np.arange(n + 1)
    # Interval ends are monotone in s, so the PASSing s form one run; find it exactly.
    ok = np.zeros(n + 1, dtype=bool)
    centre = round(w * n)
    for direction in (1, -1):
        x = centre if direction == 1 else centre - 1
        while 0 <= x <= n:
            lo, hi = clopper_pearson(int(x), n, alpha_each)
            if lo >= lo_band and hi <= hi_band:
                ok[x] = True
                x += direction
            else:
                break
    return float(binom.pmf(s[ok], n, w).sum()) if ok.any() else 0.0


def fixed_sample_size(spec: SplitSpec, config: JudgeConfig, power: float = 0.8) -> int | None:
    each = config.split_alpha_each(spec.k)
    # The subset with the widest binomial spread needs the most requests.
    needs = []
    subsets = spec.weights[:1] if spec.k == 2 else spec.weights
    for w in subsets:
        if w in (0.0, 1.0):
            continue
        sigma2 = w * (1 - w)
        guess = int(sigma2 / config.tolerance**2 * 4) + 10
        # Power is not monotone in n (binomial lattice), so take the first n from a
        # doubling bracket and refine by bisection on a smoothed criterion.
        lo, hi = 1, guess
        while _fixed_power(hi, w, config.tolerance, each) < power:
            lo, hi = hi, hi * 2
            if hi > MAX_N:
                return None
        while hi - lo > max(1, hi // 1000):
            mid = (lo + hi) // 2
            if _fixed_power(mid, w, config.tolerance, each) >= power:
                hi = mid
            else:
                lo = mid
        needs.append(hi)
    return max(needs) if needs else int(np.ceil(np.log(1 / each) / config.tolerance))


def sequential_sample_size(spec: SplitSpec, config: JudgeConfig) -> int | None:
    each = config.split_alpha_each(spec.k)
    subsets = list(zip(spec.weights[:1] if spec.k == 2 else spec.weights, strict=False))
    needs = []
    for (w,) in subsets:
        a, b = confseq.prior(w, config.tolerance)
        lo_band, hi_band = band(w, config.tolerance)

        def inside(n: int, w: float = w, a: float = a, b: float = b, lo_band: float = lo_band,
                   hi_band: float = hi_band) -> bool:
            lo, hi = confseq.interval(round(w * n), n, each, a, b)
            return bool(lo[0] >= lo_band and hi[0] <= hi_band)

        lo_n, hi_n = 1, 64
        while not inside(hi_n):
            lo_n, hi_n = hi_n, hi_n * 2
            if hi_n > MAX_N:
                return None
        while hi_n - lo_n > max(1, hi_n // 1000):
            mid = (lo_n + hi_n) // 2
            if inside(mid):
                hi_n = mid
            else:
                lo_n = mid
        needs.append(hi_n)
    return max(needs)


def plan(spec: SplitSpec, config: JudgeConfig, power: float = 0.8) -> Plan:
    return Plan(fixed_sample_size(spec, config, power), sequential_sample_size(spec, config), power)
