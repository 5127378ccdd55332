"""How many requests a latency verdict needs, before any is sent.

The quantile sequences (quantile_cs.py) bound each subset's p-quantile between two of its order
statistics, whose levels a_n / n and (b_n + 1) / n close in on p as n grows: that part is exact
and depends on nothing but (n, p, alpha). What those levels mean in milliseconds depends on the
latencies' shape near the quantile, unknown before the run; the plan takes a log-normal shape
with a stated spread (sigma 0.5: p99 about 3.2 x the median, loopback-like) and says so. A
heavier tail needs more (bench/latency_sim.py: a 5 % Pareto tail barely decides p99 within 10 %
in 100,000 requests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy.special import ndtri  # = scipy.stats.norm.ppf, bit for bit, without its import

from loadgen.stats.quantile_cs import order_ranks

ASSUMED_SIGMA = 0.5
_MAX_N = 50_000_000


@dataclass(frozen=True)
class LatencyPlan:
    level: float
    relative_margin: float
    canary_weight: float
    sigma: float
    pass_n: int | None  # total requests until equal latencies are proved within the margin (None: > _MAX_N)
    fail_n: int | None  # ... until a canary twice the margin slower is proved beyond it

    def to_json(self) -> dict[str, object]:
        return {"quantile": f"p{self.level * 100:g}", "margin": self.relative_margin, "canary_weight":
                self.canary_weight, "assumed_sigma": self.sigma, "pass_n": self.pass_n, "fail_n": self.fail_n}


def _level_band(n: int, level: float, alpha: float) -> tuple[float, float]:
    """The levels of the order statistics that bound the quantile at n samples (0 / 1: none yet)."""
    lower_rank, upper_rank = order_ranks(n, level, alpha)
    return (lower_rank / (n + 1) if lower_rank >= 1 else 0.0,
            upper_rank / (n + 1) if upper_rank <= n else 1.0)


def _decides(n: int, level: float, margin: float, weight: float, alpha: float, slowdown: float, sigma: float,
             want_pass: bool) -> bool:
    canary_n, base_n = max(1, round(n * weight)), max(1, round(n * (1 - weight)))
    c_lo, c_hi = _level_band(canary_n, level, alpha)
    b_lo, b_hi = _level_band(base_n, level, alpha)
    if want_pass:
        if c_hi >= 1.0 or b_lo <= 0.0:
            return False  # canary's upper end / baseline's lower end not bounded yet
        return math.log(slowdown) + sigma * (ndtri(c_hi) - ndtri(b_lo)) <= math.log(1 + margin)
    if c_lo <= 0.0 or b_hi >= 1.0:
        return False
    return math.log(slowdown) + sigma * (ndtri(c_lo) - ndtri(b_hi)) > math.log(1 + margin)


def _first_n(predicate: Callable[[int], bool]) -> int | None:
    """The smallest n (to ~1 %) for which ``predicate(n)`` holds, by doubling then bisection."""
    hi = 100
    while not predicate(hi):
        hi *= 2
        if hi > _MAX_N:
            return None
    lo = hi // 2
    while hi - lo > max(50, hi // 100):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if predicate(mid) else (mid, hi)
    return hi


def plan_latency(level: float, relative_margin: float, canary_weight: float, alpha_each: float,
                 sigma: float = ASSUMED_SIGMA) -> LatencyPlan:
    """Requests (all subsets together) for a PASS when the canary is exactly as fast, and for a FAIL
    when it is twice the margin slower, on log-normal latencies of spread ``sigma``."""
    w = min(max(canary_weight, 1e-6), 1 - 1e-6)
    pass_n = _first_n(lambda n: _decides(n, level, relative_margin, w, alpha_each, 1.0, sigma, True))
    fail_n = _first_n(lambda n: _decides(n, level, relative_margin, w, alpha_each, 1 + 2 * relative_margin, sigma,
                                         False))
    return LatencyPlan(level, relative_margin, canary_weight, sigma, pass_n, fail_n)
