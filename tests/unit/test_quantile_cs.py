"""The quantile confidence sequences and the latency comparison, on simulated latencies.

Coverage is checked on the counts the order statistics stand for: X_(a) <= q <=> #{X <= q} >= a
and q <= X_(b) <=> #{X < q} < b, so a stream's interval misses the true quantile at a look
exactly when those counts leave the rank band (test_the_interval_is_the_order_statistics...
checks that equivalence on the real function)."""

import itertools
import math

import numpy as np
import pytest

from loadgen.stats.latency_bins import FAILED, LOWER_EDGES, UPPER_EDGES, LatencyBins, bin_of, bin_of_one
from loadgen.stats.latency_compare import LatencyJudge, LatencyMargin, parse_quantile
from loadgen.stats.quantile_cs import order_ranks, quantile_interval, rank_band
from loadgen.stats.verdict import VerdictState

LOOKS = np.arange(100, 20_001, 100)  # every 100 requests up to 20,000


def _ever_missed(below: np.ndarray, at_or_below: np.ndarray, p: float, alpha: float) -> np.ndarray:
    """Per stream: did the interval exclude the true quantile at any look? ``below`` and
    ``at_or_below`` are the cumulative counts of X < q and X <= q at each look."""
    lower_rank, upper_rank = np.array([order_ranks(int(n), p, alpha) for n in LOOKS]).T
    lower_misses = (lower_rank >= 1) & (at_or_below < lower_rank)  # X_(a) > q
    upper_misses = (upper_rank <= LOOKS) & (below >= upper_rank)  # X_(b) < q
    return (lower_misses | upper_misses).any(axis=1)


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_the_interval_covers_the_true_quantile_at_every_look(p):
    # 1,000 log-normal streams, 200 looks each; alpha = 0.1 so a broken sequence shows.
    rng = np.random.default_rng(11)
    alpha, streams = 0.1, 1_000
    q = math.exp(-4 + 0.8 * {0.5: 0.0, 0.9: 1.2815515655446004, 0.99: 2.3263478740408408}[p])
    x = rng.lognormal(-4, 0.8, size=(streams, LOOKS[-1]))
    below = np.cumsum(x < q, axis=1)[:, LOOKS - 1]
    missed = _ever_missed(below, below, p, alpha)
    assert missed.mean() <= alpha, missed.mean()


def test_ties_at_the_quantile_are_covered_too():
    # Latencies on a 1 ms grid with the p90 on an atom (P(X <= 3) = 0.95, P(X < 3) = 0.6).
    rng = np.random.default_rng(5)
    alpha, streams = 0.1, 1_000
    x = rng.choice([1, 2, 3, 4], p=[0.3, 0.3, 0.35, 0.05], size=(streams, LOOKS[-1]))
    below = np.cumsum(x < 3, axis=1)[:, LOOKS - 1]
    at_or_below = np.cumsum(x <= 3, axis=1)[:, LOOKS - 1]
    assert _ever_missed(below, at_or_below, 0.9, alpha).mean() <= alpha


def test_the_interval_is_the_order_statistics_of_the_band():
    rng = np.random.default_rng(2)
    values = np.sort(rng.exponential(size=5_000))
    lower, upper = quantile_interval(values, 0.99, 0.05)
    a, b = rank_band(5_000, 0.99, 0.05)
    assert lower == values[a - 1] and upper == values[b]  # X_(a) and X_(b + 1)
    assert lower < np.quantile(values, 0.99) < upper
    # Too few samples for an upper end of a p99: it is +inf, never a made-up number.
    assert quantile_interval(values[:50], 0.99, 0.05)[1] == math.inf


@pytest.mark.parametrize("p", [0.5, 0.9, 0.99, 0.999])
def test_the_rank_band_never_shrinks_as_requests_come(p):
    # What makes counting unknown failures as one subset's the worst case (latency_compare.py).
    for window in (range(1, 400), range(5_000, 5_060), range(80_000, 80_030)):
        bands = [rank_band(n, p, 0.025) for n in window]
        known = [(a, b) for a, b in bands if a <= b]
        assert all(x[0] <= y[0] and x[1] <= y[1] for x, y in itertools.pairwise(known)), p


def test_bins_bound_every_order_statistic():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.lognormal(-5, 2, size=20_000), [0.0, 1e-7, 599.0, 1e4, math.inf]])
    bins = LatencyBins()
    bins.add(x)
    s = np.sort(x)
    for rank in (1, 2, 100, 10_000, 19_999, 20_003, 20_004, 20_005):
        lo, hi = bins.order_bounds(rank, rank)
        assert lo <= s[rank - 1] <= hi
        if s[rank - 1] < 600:  # within the bins' range: at most 0.1 % wide (above it: unbounded)
            assert hi <= max(s[rank - 1] * 1.0011, 2e-6)
    assert bins.failed == 1 and bins.n == 20_005


def test_quantiles_and_margins_parse_or_say_what_is_wrong():
    assert parse_quantile("p99") == 0.99 and parse_quantile("p99.9") == pytest.approx(0.999)
    assert parse_quantile("P50") == 0.5
    for bad in ("99", "p100", "p0", "p", "pnan", "p99.99999", "x" * 1000):
        with pytest.raises(ValueError, match="is not a quantile"):
            parse_quantile(bad)
    assert LatencyMargin.parse("10%").allowed(0.1) == pytest.approx(0.11)
    assert LatencyMargin.parse("5ms").allowed(0.1) == pytest.approx(0.105)
    assert LatencyMargin.parse("0.5s").absolute_s == 0.5
    for bad in ("10", "-5%", "0%", "nan%", "inf ms", "5 minutes", "0ms"):
        with pytest.raises(ValueError):
            LatencyMargin.parse(bad)


def _run(judge: LatencyJudge, draw, rng, batch=1_000, budget=60_000, unattributed_rate=0.0) -> VerdictState:
    """One monitored run: ``draw(rng, n) -> (subset names, latencies)``, a look every batch."""
    bins = {s: LatencyBins() for s in judge.subsets}
    unattributed = 0
    sent = 0
    while sent < budget:
        names, lat = draw(rng, batch)
        for s in judge.subsets:
            bins[s].add(lat[names == s])
        unattributed += rng.binomial(batch, unattributed_rate) if unattributed_rate else 0
        sent += batch
        (result,) = judge.look(bins, unattributed)
        if result.state is not VerdictState.RUNNING:
            return result.state
    (result,) = judge.look(bins, unattributed, final=True)
    return result.state


def _draw(slowdown: float, weights=(0.85, 0.15)):
    def draw(rng, n):
        names = rng.choice(np.array(["v1", "v2"]), p=list(weights), size=n)
        lat = rng.lognormal(math.log(0.010), 0.5, size=n)
        return names, np.where(names == "v2", lat * slowdown, lat)
    return draw


def test_equal_latency_is_never_failed_and_mostly_passed():
    rng = np.random.default_rng(21)
    judge = LatencyJudge(0.99, LatencyMargin.parse("10%"), "v1", ["v1", "v2"], alpha=0.1)
    states = [_run(judge, _draw(1.0, (0.5, 0.5)), rng) for _ in range(40)]
    assert VerdictState.FAIL not in states
    # 30,000 requests a subset prove a p99 within 10 % most of the time (bench/latency_sim.py has the rates).
    assert states.count(VerdictState.PASS) >= 30, states


def test_a_canary_twice_as_slow_fails_and_one_a_bit_faster_passes():
    rng = np.random.default_rng(22)
    judge = LatencyJudge(0.99, LatencyMargin.parse("10%"), "v1", ["v1", "v2"], alpha=0.05)
    assert [_run(judge, _draw(2.0), rng) for _ in range(10)] == [VerdictState.FAIL] * 10
    assert [_run(judge, _draw(0.9), rng) for _ in range(10)] == [VerdictState.PASS] * 10


def test_failures_of_unknown_subset_never_make_a_slow_canary_pass():
    # 2 % of requests fail with no subset: if they were all v2's, its p99 would be +inf. The
    # canary may not PASS on the hope that they were v1's.
    rng = np.random.default_rng(23)
    judge = LatencyJudge(0.99, LatencyMargin.parse("10%"), "v1", ["v1", "v2"], alpha=0.05)
    states = [_run(judge, _draw(1.0), rng, unattributed_rate=0.02) for _ in range(5)]
    assert VerdictState.PASS not in states and VerdictState.FAIL not in states, states


def test_a_subset_that_never_answered_is_not_faster():
    judge = LatencyJudge(0.99, LatencyMargin.parse("5ms"), "v1", ["v1", "v2"], alpha=0.05)
    v1 = LatencyBins()
    v1.add(np.full(10_000, 0.01))
    v2 = LatencyBins()
    v2.add_failed(2_000)
    (result,) = judge.look({"v1": v1, "v2": v2})
    assert result.state is VerdictState.FAIL and "∞" in result.reason
    with pytest.raises(ValueError, match="baseline 'v3'"):
        LatencyJudge(0.99, LatencyMargin.parse("5ms"), "v3", ["v1", "v2"], alpha=0.05)



def test_the_latency_plan_grows_with_the_quantile_and_shrinks_with_the_canary_weight():
    from loadgen.stats.latency_plan import plan_latency

    p99 = plan_latency(0.99, 0.10, 0.15, 0.0125)
    # bench/latency_sim.py: median 68,000 requests to PASS equal log-normal latencies (sigma 0.5) at 85/15.
    assert 40_000 <= p99.pass_n <= 120_000 and p99.fail_n is not None
    assert plan_latency(0.5, 0.10, 0.15, 0.0125).pass_n < p99.pass_n / 4
    assert plan_latency(0.99, 0.10, 0.01, 0.0125).pass_n > 5 * p99.pass_n  # a 1 % canary: hours at 500/s


def test_every_latency_lies_within_its_bins_edges_and_one_at_a_time_bins_the_same():
    # Values on every edge and one step either side, where the log's last-bit rounding would put a
    # value one bin off: the edges decide, for arrays (the judge) and for one answer (live paths).
    edges = LOWER_EDGES[1:-1]
    xs = np.concatenate([np.random.default_rng(7).lognormal(-4, 2, 20_000), edges,
                         np.nextafter(edges, 0), np.nextafter(edges, np.inf)])
    k = bin_of(xs)
    assert not ((xs < LOWER_EDGES[k]) | (xs >= UPPER_EDGES[k])).any()
    assert [bin_of_one(float(x)) for x in xs] == k.tolist()
    assert [bin_of_one(x) for x in (-1.0, 0.0, math.inf, math.nan)] == [0, 0, FAILED, FAILED]
