"""Latencies in fixed memory, with order statistics bounded exactly.

A subset's latencies go into log-spaced bins (0.1 % wide, 1 µs .. 10 min) plus one bin for
requests that got no usable answer (+inf: a failure is not a fast answer). Memory is fixed
(~20,000 counters a subset, however long the run), counts add up exactly across looks and
processes, and the k-th smallest latency is known to lie within its bin's edges: the quantile
judge takes the *lower* edge for a lower bound and the *upper* edge for an upper bound, so
binning widens an interval by at most 0.1 % and never makes it wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

LOWEST_S = 1e-6
HIGHEST_S = 600.0
GROWTH = 1.001  # each bin's upper edge is 0.1 % above its lower edge
_LOG_GROWTH = math.log(GROWTH)
FINITE_BINS = math.ceil(math.log(HIGHEST_S / LOWEST_S) / _LOG_GROWTH) + 1  # bin 0 holds [0, LOWEST_S)
FAILED = FINITE_BINS  # the last bin: no answer (timeout, error), latency +inf


def _edges() -> tuple[np.ndarray, np.ndarray]:
    upper = LOWEST_S * GROWTH ** np.arange(FINITE_BINS, dtype=float)
    lower = np.concatenate(([0.0], upper[:-1]))
    upper[-1] = math.inf  # the top finite bin holds everything >= its lower edge
    return np.concatenate((lower, [math.inf])), np.concatenate((upper, [math.inf]))


LOWER_EDGES, UPPER_EDGES = _edges()


def bin_of(seconds: ArrayLike) -> np.ndarray:
    """Bin index of each latency in seconds: the bin whose [lower, upper) edges hold it; +inf or
    NaN (no answer) go to FAILED."""
    x = np.asarray(seconds, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.floor(np.log(np.maximum(x, LOWEST_S) / LOWEST_S) / _LOG_GROWTH).astype(np.int64) + 1
    finite = np.isfinite(x)
    k = np.where((x < LOWEST_S) | ~finite, 0, np.minimum(k, FINITE_BINS - 1))
    # The log's last-bit rounding can put a value on an edge one bin off: the edges decide.
    k = k - ((k > 0) & (x < LOWER_EDGES[k])) + ((k < FINITE_BINS - 1) & (x >= UPPER_EDGES[k]))
    return np.where(finite, k, FAILED)


def bin_of_one(seconds: float) -> int:
    """:func:`bin_of` of one latency, without numpy's per-call cost (~1 µs instead of ~40 µs: it
    runs once per answer on the live paths). Same bins, value for value."""
    if not math.isfinite(seconds):
        return FAILED
    if seconds < LOWEST_S:
        return 0
    k = min(math.floor(math.log(seconds / LOWEST_S) / _LOG_GROWTH) + 1, FINITE_BINS - 1)
    if k > 0 and seconds < LOWER_EDGES[k]:
        return k - 1
    if k < FINITE_BINS - 1 and seconds >= UPPER_EDGES[k]:
        return k + 1
    return k


@dataclass
class LatencyBins:
    counts: np.ndarray = field(default_factory=lambda: np.zeros(FINITE_BINS + 1, dtype=np.int64))

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def failed(self) -> int:
        return int(self.counts[FAILED])

    def add(self, seconds: ArrayLike) -> None:
        np.add.at(self.counts, bin_of(seconds), 1)

    def add_one(self, seconds: float) -> None:
        self.counts[bin_of_one(seconds)] += 1

    def add_failed(self, count: int) -> None:
        self.counts[FAILED] += count

    def merge(self, other: LatencyBins) -> None:
        self.counts += other.counts

    def plus_failed(self, count: int) -> LatencyBins:
        """A copy with ``count`` more failures (the worst case for requests of unknown subset)."""
        out = LatencyBins(self.counts.copy())
        out.counts[FAILED] += count
        return out

    def order_bounds(self, lower_rank: int, upper_rank: int) -> tuple[float, float]:
        """(a value <= X_(lower_rank), a value >= X_(upper_rank)), ranks 1-based; rank 0 is
        0 and rank n + 1 is +inf, as the quantile sequence uses them."""
        cumulative = np.cumsum(self.counts)
        n = int(cumulative[-1])
        lower = 0.0 if lower_rank < 1 else float(LOWER_EDGES[np.searchsorted(cumulative, lower_rank)])
        upper = math.inf if upper_rank > n else float(UPPER_EDGES[np.searchsorted(cumulative, upper_rank)])
        return lower, upper
