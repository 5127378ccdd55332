"""Error rates and sample sizes of the canary judge, by simulation, side by side with peers.

For each scenario (expected split) and each truth (the expected split itself, a
deviation of one tolerance, and of two), it simulates R monitored runs: responses
arrive in batches of B, the judge looks after every batch and stops at PASS or FAIL,
or gives INCONCLUSIVE when the budget (a multiple of the fixed test's n) runs out.

Peers judged on the very same simulated streams:

* ``fixed``  -- the FixedJudge (exact Clopper-Pearson TOST) looking once, at its planned n;
* ``peeking`` -- the same fixed test looked at after every batch and stopped at the first
  PASS/FAIL: what people do with a fixed test in a dashboard;
* ``chi2``   -- a repeated chi-square SRM test (FAIL at p < alpha after any batch) at the
  true split, for its false-alarm rate.

The sequential judge is evaluated with a vectorised copy of its rule (same interval
code from loadgen.stats.confseq, same band and alpha split from loadgen.stats.decide);
--check runs the real SequentialJudge on the first runs of each cell and asserts the
verdicts and stopping points are identical, so the copy cannot drift.

Usage: python bench/judge_sim.py [--runs 10000] [--batch 50] [--budget-factor 4] [--check 200]
Prints a Markdown table (the one in bench/README.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import chi2

from loadgen.stats import JudgeConfig, SequentialJudge, SplitSpec, VerdictState, confseq, plan
from loadgen.stats.decide import band

SCENARIOS = ["85/15", "50/50", "99/1", "70/20/10"]
PASS, FAIL, INCONCLUSIVE = 1, 2, 3


@dataclass
class CellResult:
    scenario: str
    truth: str
    runs: int
    seq_pass: float
    seq_fail: float
    seq_inconclusive: float
    seq_mean_n: float
    seq_p95_n: float
    fixed_n: int
    fixed_pass: float
    fixed_fail: float
    peek_pass: float
    peek_fail: float
    chi2_fail: float | None


def truth_for(spec: SplitSpec, shift: float) -> np.ndarray:
    """Move ``shift`` of share from the largest subset to the smallest."""
    p = np.array(spec.weights, dtype=float)
    if shift:
        big = int(np.argmax(p))
        small = min((i for i in range(len(p)) if i != big), key=lambda i: p[i])
        p[big] -= shift
        p[small] += shift
    return p


def sequential_vectorised(spec: SplitSpec, cfg: JudgeConfig, counts_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Verdict code and stopping n per run; counts_at has shape (looks, runs, k), cumulative."""
    looks, runs, k = counts_at.shape
    each = cfg.split_alpha_each(k)
    tested = [0] if k == 2 else list(range(k))
    priors = [confseq.prior(w, cfg.tolerance) for w in spec.weights]
    bands = np.array([band(w, cfg.tolerance) for w in spec.weights])
    lower = np.zeros((runs, k))
    upper = np.ones((runs, k))
    verdict = np.zeros(runs, dtype=int)
    stop_n = np.zeros(runs, dtype=int)
    for t in range(looks):
        active = verdict == 0
        if not active.any():
            break
        c = counts_at[t][active]
        n = c.sum(axis=1)
        lo = np.zeros((len(n), k))
        hi = np.ones((len(n), k))
        for i in tested:
            a, b = priors[i]
            lo[:, i], hi[:, i] = confseq.interval(c[:, i], n, each, a, b)
        if k == 2:
            lo[:, 1], hi[:, 1] = 1 - hi[:, 0], 1 - lo[:, 0]
        # Running intersection, keeping the newest interval if it would be empty (as the judge does).
        new_lo = np.maximum(lower[active], lo)
        new_hi = np.minimum(upper[active], hi)
        empty = new_lo > new_hi
        new_lo = np.where(empty, lo, new_lo)
        new_hi = np.where(empty, hi, new_hi)
        lower[active], upper[active] = new_lo, new_hi
        zero_hit = (np.array(spec.weights) == 0) & (c > 0)
        outside = (new_hi < bands[:, 0]) | (new_lo > bands[:, 1]) | zero_hit
        inside = (new_lo >= bands[:, 0]) & (new_hi <= bands[:, 1])
        code = np.where(outside.any(axis=1), FAIL, np.where(inside.all(axis=1), PASS, 0))
        idx = np.flatnonzero(active)
        decided = code > 0
        verdict[idx[decided]] = code[decided]
        stop_n[idx[decided]] = n[decided]
    undecided = verdict == 0
    verdict[undecided] = INCONCLUSIVE
    stop_n[undecided] = counts_at[-1].sum(axis=1)[undecided]
    return verdict, stop_n


def clopper_pearson_vec(s: np.ndarray, n: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(s <= 0, 0.0, beta_dist.ppf(a, s, n - s + 1))
        hi = np.where(s >= n, 1.0, beta_dist.ppf(1 - a, s + 1, n - s))
    return lo, hi


def fixed_codes(spec: SplitSpec, cfg: JudgeConfig, c: np.ndarray) -> np.ndarray:
    """FixedJudge's rule on counts c (runs, k)."""
    k = c.shape[1]
    each = cfg.split_alpha_each(k)
    n = c.sum(axis=1)
    bands = np.array([band(w, cfg.tolerance) for w in spec.weights])
    lo, hi = clopper_pearson_vec(c, n[:, None], each)
    zero_hit = (np.array(spec.weights) == 0) & (c > 0)
    outside = (hi < bands[:, 0]) | (lo > bands[:, 1]) | zero_hit
    inside = (lo >= bands[:, 0]) & (hi <= bands[:, 1])
    return np.where(outside.any(axis=1), FAIL, np.where(inside.all(axis=1), PASS, INCONCLUSIVE))


def peeking_codes(spec: SplitSpec, cfg: JudgeConfig, counts_at: np.ndarray) -> np.ndarray:
    looks, runs, _ = counts_at.shape
    verdict = np.zeros(runs, dtype=int)
    for t in range(looks):
        active = verdict == 0
        if not active.any():
            break
        code = fixed_codes(spec, cfg, counts_at[t][active])
        code = np.where(code == INCONCLUSIVE, 0, code)
        verdict[np.flatnonzero(active)] = code
    verdict[verdict == 0] = INCONCLUSIVE
    return verdict


def chi2_peeking_fail(spec: SplitSpec, cfg: JudgeConfig, counts_at: np.ndarray) -> float:
    w = np.array(spec.weights)
    keep = w > 0
    n = counts_at.sum(axis=2)
    expected = n[..., None] * w[keep]
    stat = ((counts_at[..., keep] - expected) ** 2 / expected).sum(axis=2)
    p = chi2.sf(stat, df=keep.sum() - 1)
    return float((p < cfg.alpha).any(axis=0).mean())


def run_cell(spec: SplitSpec, cfg: JudgeConfig, shift: float, runs: int, batch: int, budget: int,
             fixed_n: int, rng: np.random.Generator, check: int) -> tuple[CellResult, int]:
    p = truth_for(spec, shift)
    looks = budget // batch
    steps = rng.multinomial(batch, p, size=(looks, runs))
    counts_at = steps.cumsum(axis=0)
    verdict, stop_n = sequential_vectorised(spec, cfg, counts_at)
    checked = 0
    for r in range(min(check, runs)):
        judge = SequentialJudge(spec, cfg)
        for t in range(looks):
            v = judge.update(dict(zip(spec.names, counts_at[t, r].tolist(), strict=True)))
            if v.decided:
                break
        code = {VerdictState.PASS: PASS, VerdictState.FAIL: FAIL}.get(v.state, INCONCLUSIVE)
        if code != verdict[r] or (code != INCONCLUSIVE and v.n != stop_n[r]):
            raise SystemExit(f"vectorised rule differs from SequentialJudge: run {r} {v.state} n={v.n} "
                             f"vs {verdict[r]} n={stop_n[r]}")
        checked += 1
    fixed_counts = rng.multinomial(fixed_n, p, size=runs)
    fixed = fixed_codes(spec, cfg, fixed_counts)
    peek = peeking_codes(spec, cfg, counts_at)
    decided_n = stop_n[verdict != INCONCLUSIVE]
    label = "expected" if shift == 0 else f"off by {shift / cfg.tolerance:g} tol"
    return CellResult(
        scenario=spec.as_percent(), truth=label, runs=runs,
        seq_pass=float((verdict == PASS).mean()), seq_fail=float((verdict == FAIL).mean()),
        seq_inconclusive=float((verdict == INCONCLUSIVE).mean()),
        seq_mean_n=float(decided_n.mean()) if len(decided_n) else float("nan"),
        seq_p95_n=float(np.percentile(decided_n, 95)) if len(decided_n) else float("nan"),
        fixed_n=fixed_n, fixed_pass=float((fixed == PASS).mean()), fixed_fail=float((fixed == FAIL).mean()),
        peek_pass=float((peek == PASS).mean()), peek_fail=float((peek == FAIL).mean()),
        chi2_fail=chi2_peeking_fail(spec, cfg, counts_at) if shift == 0 else None,
    ), checked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=50, help="responses between looks")
    ap.add_argument("--budget-factor", type=float, default=4.0, help="budget = factor x fixed n")
    ap.add_argument("--tolerance", type=float, default=2.0, help="percentage points")
    ap.add_argument("--confidence", type=float, default=99.0, help="percent")
    ap.add_argument("--check", type=int, default=200, help="runs per cell re-judged by the real SequentialJudge")
    ap.add_argument("--seed", type=int, default=20261126)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated; each like 85/15")
    args = ap.parse_args()
    cfg = JudgeConfig(tolerance=args.tolerance / 100, alpha=1 - args.confidence / 100)
    rng = np.random.default_rng(args.seed)
    started = time.time()
    print(f"runs per cell {args.runs}, look every {args.batch} responses, budget {args.budget_factor:g} x fixed n, "
          f"tolerance {args.tolerance:g} points, alpha {cfg.alpha:g}, seed {args.seed}\n")
    print("| expected | true split | seq PASS | seq FAIL | seq INCONCL. | seq mean n | seq p95 n | fixed n "
          "| mean n / fixed n | fixed PASS | fixed FAIL | peeking PASS | peeking FAIL | repeated chi² FAIL |")
    print("|" + "---|" * 14)
    checked_total = 0
    for text in args.scenarios.split(","):
        spec = SplitSpec.parse(text)
        fixed_n = plan(spec, cfg).fixed_n or 0
        budget = int(args.budget_factor * fixed_n)
        for shift in (0.0, cfg.tolerance, 2 * cfg.tolerance):
            res, checked = run_cell(spec, cfg, shift, args.runs, args.batch, budget, fixed_n, rng, args.check)
            checked_total += checked
            truth = truth_for(spec, shift)
            truth_txt = "/".join(f"{x * 100:.4g}" for x in truth)
            print(f"| {text} | {truth_txt} ({res.truth}) | {res.seq_pass:.4f} | {res.seq_fail:.4f} | "
                  f"{res.seq_inconclusive:.4f} | {res.seq_mean_n:.0f} | {res.seq_p95_n:.0f} | {fixed_n} | "
                  f"{res.seq_mean_n / fixed_n:.2f} | {res.fixed_pass:.4f} | {res.fixed_fail:.4f} | "
                  f"{res.peek_pass:.4f} | {res.peek_fail:.4f} | "
                  f"{'' if res.chi2_fail is None else f'{res.chi2_fail:.4f}'} |", flush=True)
    print(f"\n{checked_total} runs re-judged by the real SequentialJudge: identical verdicts and stopping n. "
          f"{time.time() - started:.0f} s.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
