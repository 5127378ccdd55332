"""Error rates and requests to a verdict of the canary judge, by simulation, new judge beside the old.

For each scenario (expected split) and each truth it simulates R monitored runs: responses
arrive in batches of 50, the judge looks after every batch and stops at PASS or FAIL, or
gives INCONCLUSIVE when the canary's default budget (4 x the fixed test's n, at least 5,000)
runs out. Judged on the very same streams:

* ``new``   -- the SequentialJudge as it is (bands +- min(tolerance, w/2), mixture confidence
  sequences, the change test and the test of a split moving back and forth), via
  loadgen.stats.simulate; ``--check`` re-judges the first
  runs of every cell with the real SequentialJudge, one look at a time, and stops the bench
  if a verdict, its stopping n or its change reason differs;
* ``old``   -- the judge before it (every band +- tolerance, one Beta per subset centred on
  its weight with spread = tolerance, 90 % of alpha to the split, no change test), a copy
  of its rule kept here as the peer;
* ``fixed`` -- the FixedJudge (exact Clopper-Pearson TOST, the new bands) looking once at its
  n planned for 80 % power (its own stream of that length).

Truths per scenario: the expected split; the smallest subset one band (h) and two bands above
its weight; at half its weight; and starved (gets nothing). Change scenarios: 85/15 -> 50/50
after 1,000 responses, and 85/15 <-> 95/5 alternating every 500. The change test alone is
also run on constant splits for the whole budget, for its false-alarm rate.

Usage: python bench/judge_sim.py [--runs 10000] [--check 200] [--write-figures]
Prints the Markdown tables of bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass

import numpy as np

from loadgen.stats import JudgeConfig, SequentialJudge, SplitSpec, VerdictState, change, confseq
from loadgen.stats.bands import band_of
from loadgen.stats.figures import FIGURES, HELP_SCENARIOS, design_fingerprint
from loadgen.stats.fixed import clopper_pearson
from loadgen.stats.plan import default_budget, fixed_sample_size
from loadgen.stats.simulate import (
    FAIL,
    INCONCLUSIVE,
    LOOK_EVERY,
    PASS,
    Outcome,
    Rule,
    Summary,
    apply_rule,
    judge_streams,
)

SCENARIOS = ["85/15", "50/50", "99/1", "98/2", "95/5", "90/10", "70/20/10"]
OLD_SPLIT_ALPHA_SHARE = 0.9


def old_judge_streams(spec: SplitSpec, cfg: JudgeConfig, steps: np.ndarray, tol: float) -> Outcome:
    """The judge before this version: band +- tol for every subset, one Beta(w, tol) per subset,
    90 % of alpha to the split, no change test."""
    old = Rule(bands=[(max(0.0, w - tol), min(1.0, w + tol)) for w in spec.weights],
               mixtures=[confseq.single_beta(w, tol) for w in spec.weights],
               alpha_each=cfg.alpha * OLD_SPLIT_ALPHA_SHARE / (1 if spec.k == 2 else spec.k))
    return apply_rule(old, spec, steps)


def fixed_codes(spec: SplitSpec, cfg: JudgeConfig, c: np.ndarray) -> np.ndarray:
    """The FixedJudge's rule (new bands) on counts c (runs, k)."""
    k = c.shape[1]
    each = cfg.split_alpha_each(k)
    n = int(c[0].sum())
    widths = cfg.half_widths(spec)
    out = np.full(len(c), INCONCLUSIVE)
    inside_all = np.ones(len(c), dtype=bool)
    outside_any = np.zeros(len(c), dtype=bool)
    # Clopper-Pearson ends depend only on the count: tabulate them once per subset.
    for i, (w, h) in enumerate(zip(spec.weights, widths, strict=True)):
        lo_b, hi_b = band_of(w, h)
        values = np.unique(c[:, i])
        ends = np.array([clopper_pearson(int(x), n, each) for x in values])
        idx = np.searchsorted(values, c[:, i])
        lo, hi = ends[idx, 0], ends[idx, 1]
        outside_any |= (hi < lo_b) | (lo > hi_b) | ((w == 0) & (c[:, i] > 0))
        inside_all &= (lo >= lo_b) & (hi <= hi_b)
    out[inside_all] = PASS
    out[outside_any] = FAIL
    return out


def truths(spec: SplitSpec, cfg: JudgeConfig) -> list[tuple[str, np.ndarray]]:
    w = np.array(spec.weights, dtype=float)
    h = np.array(cfg.half_widths(spec))
    big = int(np.argmax(w))
    small = min((i for i in range(len(w)) if i != big and w[i] > 0), key=lambda i: w[i])
    out = [("expected", w.copy())]
    for label, new_small in ((f"{spec.names[small]} +1 band (edge)", w[small] + h[small]),
                             (f"{spec.names[small]} +2 bands", w[small] + 2 * h[small]),
                             (f"{spec.names[small]} at half its weight", w[small] / 2)):
        p = w.copy()
        p[big] -= new_small - w[small]
        p[small] = new_small
        out.append((label, p))
    starved = w.copy()
    starved[small] = 0
    out.append((f"{spec.names[small]} starved (gets nothing)", starved / starved.sum()))
    return out


def check_against_judge(spec: SplitSpec, cfg: JudgeConfig, steps: np.ndarray, outcome: Outcome, runs: int) -> int:
    """Re-judge the first runs with the real SequentialJudge; stop the bench on any difference."""
    cum = steps.cumsum(axis=0)
    for r in range(min(runs, steps.shape[1])):
        judge = SequentialJudge(spec, cfg)
        for t in range(cum.shape[0]):
            v = judge.update(dict(zip(spec.names, cum[t, r].tolist(), strict=True)))
            if v.decided:
                break
        code = {VerdictState.PASS: PASS, VerdictState.FAIL: FAIL}.get(v.state, INCONCLUSIVE)
        by_change = v.change is not None and v.change.detected
        by_flap = v.flapping is not None and v.flapping.detected
        if code != outcome.code[r] or (code != INCONCLUSIVE and v.n != outcome.stop_n[r]) \
                or by_change != outcome.by_change[r] or by_flap != outcome.by_flap[r]:
            raise SystemExit(f"simulate.judge_streams differs from SequentialJudge ({spec.as_percent()}): run {r} "
                             f"{v.state} n={v.n} change={by_change} flap={by_flap} vs {outcome.code[r]} "
                             f"n={outcome.stop_n[r]} change={outcome.by_change[r]} flap={outcome.by_flap[r]}")
    return min(runs, steps.shape[1])


@dataclass
class Row:
    scenario: str
    bands: str
    truth: str
    truth_text: str
    new: Summary
    old: Summary
    fixed_n80: int
    fixed_n90: int
    fixed_pass: float
    fixed_fail: float


def bands_text(spec: SplitSpec, cfg: JudgeConfig) -> str:
    h = cfg.half_widths(spec)[0 if spec.k == 2 else -1]
    return f"+-{h * 100:.2g}" if len(set(cfg.half_widths(spec))) == 1 else \
        "/".join(f"+-{x * 100:.2g}" for x in cfg.half_widths(spec))


def run_scenarios(args: argparse.Namespace, cfg: JudgeConfig, rng: np.random.Generator) -> tuple[list[Row], int]:
    rows, checked = [], 0
    for text in args.scenarios.split(","):
        spec = SplitSpec.parse(text)
        f80 = fixed_sample_size(spec, cfg, 0.8) or 0
        f90 = fixed_sample_size(spec, cfg, 0.9) or 0
        budget = default_budget(f80)
        for label, p in truths(spec, cfg):
            steps = rng.multinomial(LOOK_EVERY, p, size=(budget // LOOK_EVERY, args.runs))
            new = judge_streams(spec, cfg, steps)
            checked += check_against_judge(spec, cfg, steps, new, args.check)
            old = old_judge_streams(spec, cfg, steps, args.tolerance / 100)
            fixed = fixed_codes(spec, cfg, rng.multinomial(f80, p, size=args.runs))
            row = Row(text, bands_text(spec, cfg), label, "/".join(f"{x * 100:.3g}" for x in p), Summary.of(new),
                      Summary.of(old), f80, f90, float((fixed == PASS).mean()), float((fixed == FAIL).mean()))
            rows.append(row)
            print(f"  {text} {label}: {time.time() - args.started:.0f}s", file=sys.stderr, flush=True)
    return rows, checked


def change_steps(kind: str, looks: int, runs: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros((looks, runs, 2), dtype=np.int64)
    for t in range(looks):
        n = (t + 1) * LOOK_EVERY
        step = 0.85 if n <= 1000 else 0.5
        alternating = 0.85 if ((n - 1) // 500) % 2 == 0 else 0.95
        p = step if kind == "step" else alternating
        out[t] = rng.multinomial(LOOK_EVERY, [p, 1 - p], size=runs)
    return out


def change_alone_alarms(spec: SplitSpec, cfg: JudgeConfig, runs: int, responses: int,
                        rng: np.random.Generator) -> float:
    """The change test on its own (no stop at PASS/FAIL) over a constant split: share of runs that ever alarm."""
    steps = rng.multinomial(LOOK_EVERY, spec.weights, size=(responses // LOOK_EVERY, runs))
    cum = steps.cumsum(axis=0).astype(float)
    test = change.ChangeTest(change.before_prior(spec.weights, cfg.half_widths(spec)), runs)
    threshold = np.log(1 / cfg.change_alpha)
    ever = np.zeros(runs, dtype=bool)
    for t in range(cum.shape[0]):
        log_e, _ = test.look(cum[t])
        ever |= log_e >= threshold
    return float(ever.mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--tolerance", type=float, default=2.0, help="percentage points")
    ap.add_argument("--confidence", type=float, default=99.0, help="percent")
    ap.add_argument("--check", type=int, default=200, help="runs per cell re-judged by the real SequentialJudge")
    ap.add_argument("--seed", type=int, default=20261128)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated; each like 85/15")
    ap.add_argument("--write-figures", action="store_true",
                    help=f"write the --help figures to {FIGURES} (default settings and all help scenarios only)")
    args = ap.parse_args()
    args.started = time.time()
    # Rounded: 1 - 99/100 is 0.010000000000000009 in floating point, not the default 0.01.
    cfg = JudgeConfig(tolerance=round(args.tolerance / 100, 12), alpha=round(1 - args.confidence / 100, 12))
    rng = np.random.default_rng(args.seed)
    print(f"runs per cell {args.runs}, a look every {LOOK_EVERY} responses, budget max(5000, 4 x fixed n at 80 % "
          f"power), tolerance {args.tolerance:g} points (at most half a weight), alpha {cfg.alpha:g}, "
          f"seed {args.seed}\n")
    rows, checked = run_scenarios(args, cfg, rng)
    print("| expected | bands | true split | new PASS | new FAIL | new INCONCL. | new mean n | new p95 n "
          "| ÷ fixed n (80 %) | ÷ fixed n (90 %) | old PASS | old FAIL | old INCONCL. | old mean n | fixed n (80 %) "
          "| fixed PASS | fixed FAIL |")
    print("|" + "---|" * 17)
    for r in rows:
        print(f"| {r.scenario} | {r.bands} | {r.truth_text} ({r.truth}) | {r.new.pass_rate:.4f} "
              f"| {r.new.fail_rate:.4f} | {r.new.inconclusive_rate:.4f} | {r.new.mean_n:.0f} | {r.new.p95_n:.0f} "
              f"| {r.new.mean_n / r.fixed_n80:.2f} | {r.new.mean_n / r.fixed_n90:.2f} "
              f"| {r.old.pass_rate:.4f} | {r.old.fail_rate:.4f} "
              f"| {r.old.inconclusive_rate:.4f} | {r.old.mean_n:.0f} | {r.fixed_n80} | {r.fixed_pass:.4f} "
              f"| {r.fixed_fail:.4f} |")

    spec = SplitSpec.parse("85/15")
    budget = default_budget(fixed_sample_size(spec, cfg, 0.8))
    print("\n| split during the run (expected 85/15) | new FAIL | new FAIL with the change reason "
          "| new FAIL with the back-and-forth reason | new median n at FAIL | new INCONCL. | old FAIL | old PASS "
          "| old median n at FAIL |")
    print("|" + "---|" * 9)
    for kind, label in (("step", "85/15, then 50/50 after 1,000"), ("alternate", "85/15 <-> 95/5 every 500")):
        steps = change_steps(kind, budget // LOOK_EVERY, args.runs, rng)
        new = judge_streams(spec, cfg, steps)
        checked += check_against_judge(spec, cfg, steps, new, args.check)
        old = old_judge_streams(spec, cfg, steps, args.tolerance / 100)
        print(f"| {label} | {(new.code == FAIL).mean():.4f} | {new.by_change.mean():.4f} | {new.by_flap.mean():.4f} "
              f"| {np.median(new.stop_n[new.code == FAIL]):.0f} | {(new.code == INCONCLUSIVE).mean():.4f} "
              f"| {(old.code == FAIL).mean():.4f} | {(old.code == PASS).mean():.4f} "
              f"| {np.median(old.stop_n[old.code == FAIL]):.0f} |", flush=True)

    print("\n| change test alone, constant split | responses per run | runs | runs that ever alarmed | limit (alpha "
          "share) |")
    print("|---|---|---|---|---|")
    for text in ("85/15", "99/1", "70/20/10"):
        s = SplitSpec.parse(text)
        rate = change_alone_alarms(s, cfg, args.runs, 20_000, rng)
        print(f"| {text} | 20,000 | {args.runs} | {rate:.4f} | {cfg.change_alpha:g} |", flush=True)

    if args.write_figures:
        write_figures(rows, cfg, args)
    print(f"\n{checked} runs re-judged by the real SequentialJudge: identical verdicts, stopping n and change "
          f"reasons. {time.time() - args.started:.0f} s.", file=sys.stderr)
    return 0


def write_figures(rows: list[Row], cfg: JudgeConfig, args: argparse.Namespace) -> None:
    if cfg != JudgeConfig() or any(s not in args.scenarios.split(",") for s in HELP_SCENARIOS):
        raise SystemExit("--write-figures needs the default tolerance and confidence and every help scenario")
    by = {(r.scenario, r.truth.split(" ")[-1] if "starved" not in r.truth else "starved"): r for r in rows}
    scenarios = {}
    for text in HELP_SCENARIOS:
        expected = by[(text, "expected")]
        starved = by[(text, "starved")]
        scenarios[text] = {
            "fixed_n_80": expected.fixed_n80, "fixed_n_90": expected.fixed_n90,
            "pass_mean_n": round(expected.new.mean_n), "pass_p95_n": round(expected.new.p95_n),
            "starved_mean_n": round(starved.new.mean_n), "starved_p95_n": round(starved.new.p95_n),
        }
    data = {"fingerprint": design_fingerprint(cfg), "runs": args.runs, "seed": args.seed,
            "written": time.strftime("%Y-%m-%d"), "scenarios": scenarios}
    FIGURES.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {FIGURES}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
