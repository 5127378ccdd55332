"""A split that moves back and forth: detection, false FAIL and requests to PASS, by simulation.

Issue 23 section 2. A run whose split alternates between 85/15 and 95/5 every L responses
averages 90/10; judged with --expect 90/10 the judge before the flapping test PASSed it. For
each L in 250, 500, 1,000, 2,000 this simulates R monitored runs judged by the SequentialJudge's
rule (loadgen.stats.simulate, with the change test and the flapping test), stopping at PASS or
FAIL or at the canary's default budget, and reports how many FAIL and with which reason.
Phase: "aligned" starts the run at the start of an 85/15 stretch (a recording made from the
first response of a fight); "random" starts it anywhere in the cycle.

Look patterns, both as the judge sees them (cumulative counts per look):
* replay -- 50 responses per look (loadgen/canary/replay.py REPLAY_LOOK_EVERY);
* live   -- a look every 0.1 s at 500 requests/s: Poisson(50) responses per look.

Then, at a constant split (the expected 90/10 and both band edges, 88/12 and 92/8):
* the flapping test alone, never stopped by a verdict, over the whole budget: share of runs
  that ever reach its threshold (the bound is its alpha share, 0.025 % at the defaults);
* the whole judge with the flapping test and as it was before it (the change test with the
  whole 5 % share, no flapping test), on the very same streams: PASS rate, FAILs by the
  flapping reason, mean and p95 requests to PASS.

``--check N`` re-judges the first N runs of every detection cell (live pattern) and the first
N at 90/10 with the real SequentialJudge, one look at a time, and stops if a verdict, its
stopping n or its reason differs.

Last, the flapping test alone at other expected splits (--alone-splits; 20,000 responses per run).

Usage: python bench/flap_sim.py [--runs 2000] [--null-runs 10000] [--check 100]
Prints the Markdown tables of bench/README.md ("A split that moves back and forth").
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from loadgen.stats import JudgeConfig, SequentialJudge, SplitSpec, VerdictState, flapping
from loadgen.stats.decide import CHANGE_ALPHA_SHARE, FLAP_ALPHA_SHARE
from loadgen.stats.plan import default_budget, fixed_sample_size
from loadgen.stats.simulate import FAIL, INCONCLUSIVE, PASS, Outcome, Rule, apply_rule

EXPECT = "90/10"
HIGH, LOW = 0.85, 0.95  # v1's share in the two alternating stretches
STRETCHES = (250, 500, 1000, 2000)
PER_LOOK = 50


def look_sizes(pattern: str, looks: int, runs: int, rng: np.random.Generator) -> np.ndarray:
    """Responses per look (looks, runs): 50 each (replay) or Poisson(50) (live, 500/s looked at every 0.1 s)."""
    if pattern == "replay":
        return np.full((looks, runs), PER_LOOK, dtype=np.int64)
    return rng.poisson(PER_LOOK, size=(looks, runs))


def alternating_steps(stretch: int, sizes: np.ndarray, phase: str, rng: np.random.Generator) -> np.ndarray:
    """Per-look counts (looks, runs, 2) of runs whose v1 share is HIGH for `stretch` responses,
    then LOW for `stretch`, and so on; a look that spans a switch draws each part at its share."""
    looks, runs = sizes.shape
    offset = rng.integers(0, 2 * stretch, size=runs) if phase == "random" else np.zeros(runs, dtype=np.int64)
    out = np.zeros((looks, runs, 2), dtype=np.int64)
    done = np.zeros(runs, dtype=np.int64)
    for t in range(looks):
        pos = done + offset  # position in the cycle of this look's first response
        to_switch = stretch - pos % stretch  # responses left in the current stretch
        first = np.minimum(sizes[t], to_switch)
        rest = sizes[t] - first  # stretch >= 250 > any look, so a look spans at most one switch
        share_now = np.where((pos // stretch) % 2 == 0, HIGH, LOW)
        share_next = np.where(share_now == HIGH, LOW, HIGH)
        v1 = rng.binomial(first, share_now) + rng.binomial(rest, share_next)
        out[t, :, 0] = v1
        out[t, :, 1] = sizes[t] - v1
        done += sizes[t]
    return out


def constant_steps(p1: float, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    v1 = rng.binomial(sizes, p1)
    return np.stack([v1, sizes - v1], axis=-1)


def before_flapping(rule: Rule, cfg: JudgeConfig) -> Rule:
    """The judge as it was before the flapping test: the change test had the whole 5 % share."""
    return dataclasses.replace(rule, flap_expected=None,
                               change_alpha=cfg.alpha * (CHANGE_ALPHA_SHARE + FLAP_ALPHA_SHARE))


def flap_alone_alarms(spec: SplitSpec, cfg: JudgeConfig, steps: np.ndarray) -> tuple[float, float]:
    """The flapping test on its own (no stop at PASS/FAIL): share of runs that ever reach its threshold."""
    cum = steps.cumsum(axis=0).astype(float)
    test = flapping.FlapTest(spec.weights, flapping.concentration(spec.weights, cfg.half_widths(spec)),
                             steps.shape[1])
    threshold = np.log(1 / cfg.flap_alpha)
    ever = np.zeros(steps.shape[1], dtype=bool)
    peak = np.full(steps.shape[1], -np.inf)
    for t in range(cum.shape[0]):
        log_e, _ = test.look(cum[t])
        ever |= log_e >= threshold
        peak = np.maximum(peak, log_e)
    return float(ever.mean()), float(np.percentile(peak, 99.9))


def check_against_judge(spec: SplitSpec, cfg: JudgeConfig, steps: np.ndarray, outcome: Outcome, runs: int) -> int:
    """Re-judge the first runs with the real SequentialJudge; stop on any difference."""
    cum = steps.cumsum(axis=0)
    for r in range(min(runs, steps.shape[1])):
        judge = SequentialJudge(spec, cfg)
        for t in range(cum.shape[0]):
            v = judge.update(dict(zip(spec.names, cum[t, r].tolist(), strict=True)), t=0.1 * (t + 1))
            if v.decided:
                break
        code = {VerdictState.PASS: PASS, VerdictState.FAIL: FAIL}.get(v.state, INCONCLUSIVE)
        by_change = v.change is not None and v.change.detected
        by_flap = v.flapping is not None and v.flapping.detected
        if code != outcome.code[r] or (code != INCONCLUSIVE and v.n != outcome.stop_n[r]) \
                or by_change != outcome.by_change[r] or by_flap != outcome.by_flap[r]:
            raise SystemExit(f"simulate differs from SequentialJudge: run {r} {v.state} n={v.n} change={by_change} "
                             f"flap={by_flap} vs {outcome.code[r]} n={outcome.stop_n[r]} "
                             f"change={outcome.by_change[r]} flap={outcome.by_flap[r]}")
        if by_flap and "the split moved" not in v.reason:
            raise SystemExit(f"run {r}: flapping detected but the reason does not name it: {v.reason}")
    return min(runs, steps.shape[1])


def _mean(x: np.ndarray) -> str:
    return f"{x.mean():.0f}" if len(x) else "-"


def _p95(x: np.ndarray) -> str:
    return f"{np.percentile(x, 95):.0f}" if len(x) else "-"


def band_edges(cfg: JudgeConfig, runs: int, seed: int) -> None:
    """False PASS on a band's edge (the small subset one band above its weight), with the flapping
    test and as before it, on the very same streams (the judge_sim.py scenarios' edge truths)."""
    print("| expected | true split (band edge) | runs | PASS | PASS before the flapping test | FAIL | FAIL before |")
    print("|---|---|---|---|---|---|---|")
    for text, p in (("85/15", [0.83, 0.17]), ("99/1", [0.985, 0.015])):
        spec = SplitSpec.parse(text)
        budget = default_budget(fixed_sample_size(spec, cfg, 0.8) or 0)
        steps = np.random.default_rng(seed).multinomial(PER_LOOK, p, size=(budget // PER_LOOK, runs))
        rule = Rule.of_judge(spec, cfg)
        new, old = apply_rule(rule, spec, steps), apply_rule(before_flapping(rule, cfg), spec, steps)
        print(f"| {text} | {p[0] * 100:g}/{p[1] * 100:g} | {runs} | {(new.code == PASS).mean():.4f} "
              f"| {(old.code == PASS).mean():.4f} | {(new.code == FAIL).mean():.4f} "
              f"| {(old.code == FAIL).mean():.4f} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=2000, help="runs per detection cell")
    ap.add_argument("--null-runs", type=int, default=10_000, help="runs per constant-split cell")
    ap.add_argument("--check", type=int, default=100, help="runs per cell re-judged by the real SequentialJudge")
    ap.add_argument("--seed", type=int, default=20261129)
    ap.add_argument("--alone-splits", default="85/15,99/1,70/20/10",
                    help="expected splits the flapping test alone is also run at (empty: none)")
    ap.add_argument("--edges-only", action="store_true",
                    help="only the false-PASS check on band edges of 85/15 and 99/1 (--null-runs runs each)")
    args = ap.parse_args()
    started = time.time()
    cfg = JudgeConfig()
    if args.edges_only:
        band_edges(cfg, args.null_runs, args.seed)
        return 0
    spec = SplitSpec.parse(EXPECT)
    budget = default_budget(fixed_sample_size(spec, cfg, 0.8) or 0)
    looks = budget // PER_LOOK
    rng = np.random.default_rng(args.seed)
    rule = Rule.of_judge(spec, cfg)
    old = before_flapping(rule, cfg)
    checked = 0
    print(f"expected {EXPECT} (bands {spec.names[0]} 88-92 %), tolerance 2 points, alpha {cfg.alpha:g} "
          f"(flapping test {cfg.flap_alpha:g}, change test {cfg.change_alpha:g}), budget {budget:,} responses "
          f"({looks} looks), seed {args.seed}; windows {flapping.WINDOWS} x {flapping.PHASES} phases, "
          f"prior concentration {flapping.concentration(spec.weights, cfg.half_widths(spec)):.1f}\n")

    print("| v1 share alternates 85 <-> 95 % every | looks | phase | runs | FAIL | FAIL: moved back and forth "
          "| FAIL: changed (one change point) | median n at FAIL | p90 n at FAIL | PASS | INCONCL. "
          "| before the flapping test: PASS | FAIL |")
    print("|" + "---|" * 13)
    for stretch in STRETCHES:
        for pattern in ("replay", "live"):
            for phase in ("aligned", "random"):
                steps = alternating_steps(stretch, look_sizes(pattern, looks, args.runs, rng), phase, rng)
                new = apply_rule(rule, spec, steps)
                before = apply_rule(old, spec, steps)
                if pattern == "live":
                    checked += check_against_judge(spec, cfg, steps, new, args.check)
                failed = new.stop_n[new.code == FAIL]
                print(f"| {stretch:,} | {pattern} | {phase} | {args.runs} | {(new.code == FAIL).mean():.4f} "
                      f"| {new.by_flap.mean():.4f} | {new.by_change.mean():.4f} "
                      f"| {np.median(failed) if len(failed) else float('nan'):.0f} "
                      f"| {np.percentile(failed, 90) if len(failed) else float('nan'):.0f} "
                      f"| {(new.code == PASS).mean():.4f} | {(new.code == INCONCLUSIVE).mean():.4f} "
                      f"| {(before.code == PASS).mean():.4f} | {(before.code == FAIL).mean():.4f} |", flush=True)
                print(f"  {stretch} {pattern} {phase}: {time.time() - started:.0f}s", file=sys.stderr, flush=True)

    print("\n| constant split | looks | runs | flapping test alone: runs that ever alarmed (whole budget) "
          "| its 99.9th pct of max log E (threshold) | judge: FAIL by flapping | judge: FAIL | FAIL before it "
          "| judge: PASS | PASS before it | mean n to PASS | before | p95 n to PASS | before |")
    print("|" + "---|" * 14)
    for p1 in (0.90, 0.88, 0.92):
        for pattern in ("replay", "live"):
            steps = constant_steps(p1, look_sizes(pattern, looks, args.null_runs, rng), rng)
            alone, peak = flap_alone_alarms(spec, cfg, steps)
            new = apply_rule(rule, spec, steps)
            before = apply_rule(old, spec, steps)
            if p1 == 0.90 and pattern == "live":
                checked += check_against_judge(spec, cfg, steps, new, args.check)
            passed, passed_before = new.stop_n[new.code == PASS], before.stop_n[before.code == PASS]
            print(f"| {p1 * 100:.0f}/{100 - p1 * 100:.0f} | {pattern} | {args.null_runs} | {alone:.5f} "
                  f"| {peak:.2f} ({np.log(1 / cfg.flap_alpha):.2f}) | {new.by_flap.mean():.5f} "
                  f"| {(new.code == FAIL).mean():.4f} | {(before.code == FAIL).mean():.4f} "
                  f"| {(new.code == PASS).mean():.4f} | {(before.code == PASS).mean():.4f} "
                  f"| {_mean(passed)} | {_mean(passed_before)} | {_p95(passed)} | {_p95(passed_before)} |", flush=True)
            print(f"  {p1} {pattern}: {time.time() - started:.0f}s", file=sys.stderr, flush=True)

    if args.alone_splits:
        print("\n| flapping test alone, constant split at the expected one | responses per run | runs "
              "| runs that ever alarmed | 99.9th pct of max log E (threshold) |")
        print("|---|---|---|---|---|")
        alone_rng = np.random.default_rng(args.seed + 1)  # its own stream: the tables above do not move
        for text in args.alone_splits.split(","):
            other = SplitSpec.parse(text)
            steps = alone_rng.multinomial(PER_LOOK, other.weights, size=(20_000 // PER_LOOK, args.null_runs))
            alone, peak = flap_alone_alarms(other, cfg, steps)
            print(f"| {text} | 20,000 | {args.null_runs} | {alone:.5f} | {peak:.2f} ({np.log(1 / cfg.flap_alpha):.2f}) "
                  "|", flush=True)

    print(f"\n{checked} runs re-judged by the real SequentialJudge: identical verdicts, stopping n and reasons. "
          f"{time.time() - started:.0f} s.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
