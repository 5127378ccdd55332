"""How close the judge gets to the floor: requests to a verdict against an oracle that knows the truth.

No anytime-valid test can beat, on average, the sequential probability ratio test that bets
on the true split itself (Wald): for a FAIL, the likelihood ratio of the truth against the
nearest band edge reaching 1/alpha; for a PASS, that of the expected split against each band
edge (both must reach it). The oracle is not a judge anyone can run -- it needs the truth --
so it marks the floor. Both are run on the very same simulated streams, with the judge's own
alpha per interval, beside the fixed test's n planned for 90 % power.

Usage: python bench/judge_floor.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from loadgen.stats import JudgeConfig, SplitSpec
from loadgen.stats.bands import band_of
from loadgen.stats.plan import default_budget, fixed_sample_size
from loadgen.stats.simulate import FAIL, LOOK_EVERY, PASS, judge_streams

SCENARIOS = ["85/15", "50/50", "99/1", "98/2", "95/5", "90/10"]


def log_lr(s: np.ndarray, n: np.ndarray, alt: float, null: float) -> np.ndarray:
    return s * np.log(alt / null) + (n - s) * np.log((1 - alt) / (1 - null))


def oracle_n(cum: np.ndarray, w: float, band: tuple[float, float], truth: float, threshold: float) -> np.ndarray:
    """Stopping n of the oracle on share 0: PASS (truth == w) or FAIL (truth outside the band)."""
    s = cum[..., 0].astype(float)
    n = cum.sum(axis=-1).astype(float)
    lo, hi = band
    if truth == w:
        low = np.maximum.accumulate(log_lr(s, n, w, lo) >= threshold, axis=0)
        high = np.maximum.accumulate(log_lr(s, n, w, hi) >= threshold, axis=0)
        done = low & high
    else:
        done = log_lr(s, n, truth, lo if truth < lo else hi) >= threshold
    first = np.where(done.any(axis=0), done.argmax(axis=0), -1)
    return (first[first >= 0] + 1) * LOOK_EVERY


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    started = time.time()
    cfg = JudgeConfig()
    rng = np.random.default_rng(args.seed)
    print(f"{args.runs} runs per row, a look every {LOOK_EVERY}, defaults (tolerance 2 points, 99 %), "
          f"seed {args.seed}\n")
    print("| expected | true split | verdict | judge mean n | oracle mean n | judge / oracle | fixed n (90 %) "
          "| judge / fixed | oracle / fixed |")
    print("|" + "---|" * 9)
    for text in SCENARIOS:
        spec = SplitSpec.parse(text)
        h = cfg.half_widths(spec)[0]
        w = spec.weights[0]
        band = band_of(w, h)
        f90 = fixed_sample_size(spec, cfg, 0.9) or 0
        budget = default_budget(fixed_sample_size(spec, cfg, 0.8))
        threshold = np.log(1 / cfg.split_alpha_each(spec.k))
        # v1's share: the expected split, and two bands towards the smaller subset.
        for truth, want in ((w, PASS), (w - 2 * h, FAIL)):
            p = np.array([truth, 1 - truth])
            steps = rng.multinomial(LOOK_EVERY, p, size=(budget // LOOK_EVERY, args.runs))
            judged = judge_streams(spec, cfg, steps)
            judge_mean = judged.stop_n[judged.code == want].mean()
            oracle = oracle_n(steps.cumsum(axis=0), w, band, truth, threshold)
            print(f"| {text} | {truth * 100:.4g}/{(1 - truth) * 100:.4g} | {'PASS' if want == PASS else 'FAIL'} "
                  f"({(judged.code == want).mean():.4f} of runs) | {judge_mean:.0f} | {oracle.mean():.0f} "
                  f"| {judge_mean / oracle.mean():.2f} | {f90} | {judge_mean / f90:.2f} | {oracle.mean() / f90:.2f} |",
                  flush=True)
    print(f"\n{time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
