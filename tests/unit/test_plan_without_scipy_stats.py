"""The judge's planning and agreement tests use scipy.special only (scipy.stats' import cost
every canary ~0.7 s): their values against scipy.stats' own, and a canary that imports neither."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy import stats

from loadgen.stats import JudgeConfig, SplitSpec, Tolerance
from loadgen.stats.agreement import homogeneity_p
from loadgen.stats.bands import band_of
from loadgen.stats.fixed import clopper_pearson
from loadgen.stats.plan import _fixed_power, fixed_sample_size


def _power_by_pmf(n: int, w: float, half_width: float, alpha_each: float) -> float:
    lo_band, hi_band = band_of(w, half_width)
    s = np.arange(0, n + 1)
    lo = np.where(s <= 0, 0.0, stats.beta.ppf(alpha_each, np.maximum(s, 1), n - s + 1))
    hi = np.where(s >= n, 1.0, stats.beta.ppf(1 - alpha_each, s + 1, np.maximum(n - s, 1)))
    ok = (lo >= lo_band) & (hi <= hi_band)
    return float(stats.binom.pmf(s[ok], n, w).sum())


def test_the_fixed_tests_power_is_the_binomial_sum_and_plans_the_same_n():
    rng = np.random.default_rng(11)
    for _ in range(60):
        n = int(rng.integers(20, 5_000))
        w = float(rng.choice([0.01, 0.05, 0.15, 0.5, rng.uniform(0.005, 0.995)]))
        h, a = float(rng.choice([0.01, 0.02, 0.05])), float(rng.choice([0.025, 0.005]))
        assert abs(_fixed_power(n, w, h, a) - _power_by_pmf(n, w, h, a)) < 1e-9, (n, w, h, a)
    # The README's figure: --method fixed at 85/15, defaults.
    assert fixed_sample_size(SplitSpec.parse("85/15"), JudgeConfig()) == 4331
    assert fixed_sample_size(SplitSpec.parse("99/1"), JudgeConfig(tolerance=Tolerance.parse("0.5"))) is not None


def test_clopper_pearson_and_agreement_are_scipy_stats_values():
    for s, n in [(0, 10), (1, 10), (37, 250), (850, 1000), (1000, 1000)]:
        lo, hi = clopper_pearson(s, n, 0.025)
        assert lo == (0.0 if s == 0 else stats.beta.ppf(0.025, s, n - s + 1))
        assert hi == (1.0 if s == n else stats.beta.ppf(0.975, s + 1, n - s))
    for a, b in [({"1": 850, "2": 150}, {"1": 845, "2": 155}), ({"1": 500, "2": 300, "3": 200}, {"1": 80, "2": 10})]:
        names = sorted(set(a) | set(b))
        table = [[a.get(k, 0) for k in names], [b.get(k, 0) for k in names]]
        assert abs(homogeneity_p(a, b) - stats.chi2_contingency(table, correction=False)[1]) < 1e-12


def test_a_canary_imports_the_judge_without_scipy_stats():
    code = "import sys, loadgen.canary.check, loadgen.canary.result; print('scipy.stats' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr[-2000:]
