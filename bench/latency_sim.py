"""Is the canary slower? loadgen's anytime-valid latency verdict beside Kayenta's Mann-Whitney,
on the same simulated streams.

Each run is one canary at 85/15: requests go to v1 (baseline) or v2 (canary) at random, a look
after every 1,000 requests, up to a budget of 100,000. Latencies are log-normal (median 10 ms,
sigma 0.5) or a heavy tail (95 % that log-normal, 5 % Pareto with shape 1.5 from 20 ms); the
canary's are the baseline's distribution scaled (every quantile x s) or, for "variance", with a
wider sigma and the same median (its p99 +50 %).

* ``loadgen``: the real LatencyJudge (loadgen/stats/latency_compare.py) with LatencyBins, p99,
  margin 10 %, alpha 0.025 (the latency share of a 95 % run with --latency: share_alpha), looking
  after every batch and stopping at PASS or FAIL; INCONCLUSIVE at the budget.
* ``kayenta``: Kayenta's MannWhitneyClassifier at NetflixACAJudge's defaults (98 % interval on
  the Hodges-Lehmann shift canary - baseline, "High" when its lower end exceeds 0.25 x |HL|),
  on the metric as Kayenta sees it: a time series, here each subset's p99 per window of 1,000
  requests. ``horizon``: once, at the budget (100 windows). ``argo``: re-run after every window
  from the 10th, stopping at the first "High", as an Argo AnalysisRun with an interval does.

Usage: python bench/latency_sim.py [--runs 2000] [--processes 2] [--seed 20261207]
Prints the Markdown table of bench/README.md.
"""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from loadgen.stats.latency_bins import LatencyBins
from loadgen.stats.latency_compare import LatencyJudge, LatencyMargin
from loadgen.stats.verdict import VerdictState

BATCH, BUDGET, CANARY_WEIGHT = 1_000, 100_000, 0.15
ALPHA = 0.025
MEDIAN_S, SIGMA = 0.010, 0.5
KAYENTA_CONF, KAYENTA_FRACTION, ARGO_FIRST_WINDOW = 0.98, 0.25, 10


@dataclass(frozen=True)
class Truth:
    name: str
    tail: str  # "lognormal" or "heavy"
    scale: float = 1.0  # canary latency = baseline's distribution x scale
    sigma: float = SIGMA  # canary's sigma (variance-only rows)
    right: str = "PASS"  # the verdict that is right (margin 10 %)


def _p99_ratio(scale: float, sigma: float) -> float:
    return scale * math.exp(norm.ppf(0.99) * (sigma - SIGMA))


TRUTHS = [
    Truth("equal", "lognormal"),
    Truth("equal, heavy tail", "heavy"),
    Truth("+5 % (within the margin)", "lognormal", 1.05),
    Truth("+10 % (the margin's edge)", "lognormal", 1.10, right="edge"),
    Truth("+25 %", "lognormal", 1.25, right="FAIL"),
    Truth("+50 %", "lognormal", 1.50, right="FAIL"),
    Truth("+100 %", "lognormal", 2.00, right="FAIL"),
    Truth("variance only (p99 +50 %, same median)", "lognormal",
          sigma=SIGMA + math.log(1.5) / norm.ppf(0.99), right="FAIL"),
    Truth("+25 %, heavy tail", "heavy", 1.25, right="FAIL"),
]


def _latencies(rng: np.random.Generator, n: int, tail: str, scale: float, sigma: float) -> np.ndarray:
    x = rng.lognormal(math.log(MEDIAN_S), sigma, size=n)
    if tail == "heavy":
        pareto = 0.020 * (1 + rng.pareto(1.5, size=n))
        x = np.where(rng.random(n) < 0.05, pareto, x)
    return x * scale


def _hl_lower(canary: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """Hodges-Lehmann shift (canary - base) and the lower end of its two-sided 98 % interval
    (normal approximation of the Mann-Whitney U, as R's wilcox.test does for large samples)."""
    d = (canary[:, None] - base[None, :]).ravel()
    n1, n2 = len(canary), len(base)
    z = norm.ppf(1 - (1 - KAYENTA_CONF) / 2)
    k = max(math.floor(n1 * n2 / 2 - z * math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)), 0)
    # Three order statistics, not a full sort: the k-th difference and the two middle ones (their
    # mean is np.median's). Same values, a fraction of the time.
    middle = ((d.size - 1) // 2, d.size // 2)
    part = np.partition(d, sorted({k, *middle}))
    return float((part[middle[0]] + part[middle[1]]) / 2), float(part[k])


def _kayenta_high(canary_windows: list[float], base_windows: list[float]) -> bool:
    hl, lower = _hl_lower(np.asarray(canary_windows), np.asarray(base_windows))
    return lower > KAYENTA_FRACTION * abs(hl)


def one_run(truth: Truth, seed: int) -> tuple[str, int, bool, int | None]:
    """(loadgen's verdict, requests it used, kayenta at the horizon says High, argo's first High window)."""
    rng = np.random.default_rng(seed)
    judge = LatencyJudge(0.99, LatencyMargin.parse("10%"), "v1", ["v1", "v2"], alpha=ALPHA)
    bins = {"v1": LatencyBins(), "v2": LatencyBins()}
    windows: dict[str, list[float]] = {"v1": [], "v2": []}
    verdict, used, argo = None, BUDGET, None
    for sent in range(BATCH, BUDGET + 1, BATCH):
        canary = rng.random(BATCH) < CANARY_WEIGHT
        base_lat = _latencies(rng, int((~canary).sum()), truth.tail, 1.0, SIGMA)
        canary_lat = _latencies(rng, int(canary.sum()), truth.tail, truth.scale, truth.sigma)
        windows["v1"].append(float(np.quantile(base_lat, 0.99)))
        windows["v2"].append(float(np.quantile(canary_lat, 0.99)) if len(canary_lat) else math.nan)
        if verdict is None:
            bins["v1"].add(base_lat)
            bins["v2"].add(canary_lat)
            (result,) = judge.look(bins, final=sent == BUDGET)
            if result.state is not VerdictState.RUNNING:
                verdict, used = result.state.value, sent
        w = len(windows["v1"])
        if argo is None and w >= ARGO_FIRST_WINDOW and _kayenta_high(windows["v2"], windows["v1"]):
            argo = w
    horizon = _kayenta_high(windows["v2"], windows["v1"])
    return verdict or "INCONCLUSIVE", used, horizon, argo


def _row(truth: Truth, runs: int, seed: int, processes: int) -> str:
    with ProcessPoolExecutor(processes) as pool:
        results = list(pool.map(one_run, [truth] * runs, [seed + i for i in range(runs)], chunksize=20))
    verdicts = [r[0] for r in results]
    share = {v: verdicts.count(v) / runs for v in ("PASS", "FAIL", "INCONCLUSIVE")}
    decided = [r[1] for r in results if r[0] != "INCONCLUSIVE"]
    median_n = f"{int(np.median(decided)):,}" if decided else "—"
    horizon = sum(r[2] for r in results) / runs
    argo = sum(r[3] is not None for r in results) / runs
    ratio = _p99_ratio(truth.scale, truth.sigma) if truth.tail == "lognormal" else truth.scale
    return (f"| {truth.name} | {ratio:.2f} | {truth.right} | {share['PASS']:.2%} | {share['FAIL']:.2%} | "
            f"{share['INCONCLUSIVE']:.2%} | {median_n} | {horizon:.2%} | {argo:.2%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--only", default="", help="comma-separated row numbers (1-based) to run")
    args = parser.parse_args()
    rows = [TRUTHS[int(i) - 1] for i in args.only.split(",")] if args.only else TRUTHS
    print(f"{args.runs:,} runs per row, 85/15, look every {BATCH:,} requests, budget {BUDGET:,}, "
          f"p99 margin 10 %, alpha {ALPHA}\n")
    print("| canary's truth | p99 ratio | right verdict | loadgen PASS | loadgen FAIL | loadgen INCONCL. | "
          "requests to a verdict (median) | Kayenta High, at the horizon | Kayenta High, re-run each window (Argo) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for truth in rows:
        start = time.monotonic()
        print(_row(truth, args.runs, args.seed, args.processes), flush=True)
        print(f"<!-- {time.monotonic() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
