"""Anytime-valid confidence sequences for a quantile, from order statistics.

Howard & Ramdas, "Sequential estimation of quantiles with applications to A/B-testing and
best-arm identification" (Bernoulli 2022, arXiv 1906.09712), section 3: let q be the p-quantile
of the latencies' distribution and couple each latency with a uniform U_i (X_i = Q(U_i)). The
number B_n of U_i <= p among the first n is a Binomial(n, p) walk, and

    #{X_i < q} <= B_n <= #{X_i <= q}        (for every n, ties included).

Any confidence sequence for that walk -- here the beta-mixture martingale of confseq.py at the
*known* share p, so P(exists n: M_n(B_n) >= 1/alpha) <= alpha by Ville -- gives an acceptance
band a_n <= B_n <= b_n holding at every n at once, and with it

    X_(a_n) <= q <= X_(b_n + 1)             (X_(0) = 0, X_(n+1) = +inf)

at every n at once with probability >= 1 - alpha: the user may look after every request. The
band depends only on (n, p, alpha), not on the data, so it is computed once per n. Independence
is what it needs, not identical distributions: with independent requests whose distributions
drift (a busy machine), the same argument covers the quantile of their *average* distribution.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from loadgen.stats.confseq import Mixture

# Mixture components: Betas centred on p, each as sharp as a sample of this many requests
# (equal weights). One component would be sharpest near its own n and loose elsewhere; four
# a decade apart cost log(4) in the threshold and keep the band close to the best single one
# from a few hundred requests to millions (bench/latency_sim.py).
MIXTURE_SIZES = (300, 3_000, 30_000, 300_000)
_BRACKET_SDS = 12  # where rank_band looks for each end first, in binomial standard deviations


@lru_cache(maxsize=64)
def quantile_mixture(p: float) -> Mixture:
    """The mixing distribution for the share p = the quantile's level (0 < p < 1)."""
    a, b = [], []
    for m in MIXTURE_SIZES:
        c = max(float(m), 2.0 / min(p, 1 - p))  # keep both Beta parameters >= 2
        a.append(c * p)
        b.append(c * (1 - p))
    return Mixture(tuple(1.0 / len(MIXTURE_SIZES) for _ in MIXTURE_SIZES), tuple(a), tuple(b))


def _outside(s: int, n: int, p: float, threshold: float, mixture: Mixture) -> bool:
    """log M_n(s) >= log(1/alpha): confseq's martingale at the known share p, in plain floats."""
    log_null = (s * math.log(p) if s > 0 else 0.0) + ((n - s) * math.log1p(-p) if n > s else 0.0)
    return mixture.log_marginal_scalar(float(s), float(n - s)) - log_null >= threshold


@lru_cache(maxsize=4096)
def rank_band(n: int, p: float, alpha: float) -> tuple[int, int]:
    """(a_n, b_n): the Binomial(n, p) walk stays within [a_n, b_n] at every n with probability
    >= 1 - alpha. log M_n(s) is convex in s with its minimum near n p, so each end is found by
    bisection on its side."""
    if n <= 0:
        return 0, 0
    mixture = quantile_mixture(p)
    threshold = math.log(1.0 / alpha)
    centre = min(max(round(n * p), 0), n)
    if _outside(centre, n, p, threshold, mixture):
        return centre + 1, centre - 1  # empty: nothing is known yet (tiny n)
    # Each end lies within a few standard deviations of the centre: bracket it there first (the
    # same bisection, on a range ~100 times shorter for large n), else over the whole side.
    reach = math.ceil(_BRACKET_SDS * math.sqrt(n * p * (1 - p))) + 16
    # Lowest s still inside: search [0, centre].
    lo, hi = 0, centre
    if not _outside(0, n, p, threshold, mixture):
        a = 0
    else:
        if centre - reach > 0 and _outside(centre - reach, n, p, threshold, mixture):
            lo = centre - reach
        while hi - lo > 1:  # _outside(lo) and not _outside(hi)
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _outside(mid, n, p, threshold, mixture) else (lo, mid)
        a = hi
    lo, hi = centre, n
    if not _outside(n, n, p, threshold, mixture):
        b = n
    else:
        if centre + reach < n and _outside(centre + reach, n, p, threshold, mixture):
            hi = centre + reach
        while hi - lo > 1:  # not _outside(lo) and _outside(hi)
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if not _outside(mid, n, p, threshold, mixture) else (lo, mid)
        b = lo
    return a, b


def order_ranks(n: int, p: float, alpha: float) -> tuple[int, int]:
    """Ranks (1-based) of the order statistics bounding the p-quantile at n samples:
    q >= X_(lower) and q <= X_(upper); 0 means no lower bound yet (0), n + 1 no upper (+inf)."""
    a, b = rank_band(n, p, alpha)
    if a > b:
        return 0, n + 1
    return a, min(b + 1, n + 1)


def quantile_interval(sorted_values: np.ndarray, p: float, alpha: float) -> tuple[float, float]:
    """The confidence sequence's interval for the p-quantile, from all samples so far (sorted)."""
    n = len(sorted_values)
    lower_rank, upper_rank = order_ranks(n, p, alpha)
    lower = float(sorted_values[lower_rank - 1]) if lower_rank >= 1 else 0.0
    upper = float(sorted_values[upper_rank - 1]) if upper_rank <= n else math.inf
    return lower, upper
