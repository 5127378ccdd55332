"""Did the split change during the run? An anytime-valid test of "one constant split throughout".

The split judge assumes every response comes from the same split. When the weights move
mid-run (another operator's write, a flapping instance) its interval describes no split
that ever existed, so the change must be found and named instead.

The test is an e-process for the composite null "the responses are i.i.d. with *some*
constant split p" (universal inference, Wasserman, Ramdas & Balakrishnan 2020):

    E_J = m(x_1..x_J) / sup_p L(p; x_1..x_J)

where m is the marginal likelihood of a Bayesian model in which the split is p1 up to an
unknown look boundary j and p2 after it, with P(change in looks (g', g]) = 1/(g' + 1) - 1/(g + 1)
lumped at the candidate boundaries g of CANDIDATES (every look up to 20, then every ~10 %
more looks: a late change is placed at most ~10 % of the run late, and each look costs
O(log J) instead of O(J)); "no change yet" keeps the remaining mass. m is a product of
predictive probabilities, so m / L(p*) is a test martingale under any constant p*; the
supremum in the denominator only makes E_J smaller.
By Ville's inequality a constant split reaches E_J >= 1/alpha at any look with probability
<= alpha, however long the run and however often it is checked.

Segment priors: before the change, half Dirichlet centred on the expected split (with the
spread of its bands) and half Jeffreys; after it, Jeffreys. Centring the first segment on
what the user expects makes the usual case -- right split, then a change -- cheaper to
prove, without giving up the case of a split that was wrong from the start.

Change points are look boundaries (a batch is never split), so one class serves the judge
(one stream, a look at a time) and the simulation (thousands of streams at once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln

from loadgen.stats.logsum import logsumexp


def _log_dirichlet_marginal(c: NDArray[np.float64], beta: NDArray[np.float64]) -> NDArray[np.float64]:
    """log probability of one particular sequence with category counts ``c`` (last axis) under Dirichlet(beta)."""
    n = c.sum(axis=-1)
    return (gammaln(beta.sum()) - gammaln(beta.sum() + n)
            + (gammaln(beta + c) - gammaln(beta)).sum(axis=-1))


def _candidates(limit: int) -> list[int]:
    out = list(range(1, 21))
    while out[-1] < limit:
        out.append(int(np.ceil(out[-1] * 1.1)))
    return out


CANDIDATES = np.asarray(_candidates(10_000_000))


def before_prior(weights: Sequence[float], half_widths: Sequence[float]) -> NDArray[np.float64]:
    """Dirichlet parameters centred on the expected split, about as concentrated as its narrowest band."""
    w = np.asarray(weights, dtype=float)
    h = np.asarray(half_widths, dtype=float)
    positive = w > 0
    concentration = float(np.min(w[positive] * (1 - w[positive]) / h[positive] ** 2))
    return concentration * w + 0.5


class ChangeTest:
    """E_J for one stream or many at once, one look at a time.

    Each candidate boundary's first segment is fixed once the run is past it, so its marginal
    is computed once; a look costs one second-segment marginal per candidate (O(log J)).
    Rows are streams; ``look`` may be given a subset of them (the bench drops streams that
    reached a verdict), and a row left out of a look must not come back.
    """

    def __init__(self, before: NDArray[np.float64], runs: int = 1) -> None:
        self._before = np.asarray(before, dtype=float)
        self._jeffreys = np.full(len(self._before), 0.5)
        self._runs = runs
        self._last = np.zeros((runs, len(self._before)))  # counts at the latest look, every row
        self.looks = 0
        self._g: list[int] = []  # candidate boundaries passed so far
        self._heads: list[NDArray[np.float64]] = []  # counts up to each, (runs, k)
        self._seg1: list[NDArray[np.float64]] = []  # log marginal of the segment before it, (runs,)

    def _first_segment(self, counts: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.logaddexp(_log_dirichlet_marginal(counts, self._before),
                            _log_dirichlet_marginal(counts, self._jeffreys)) - np.log(2)

    def look(self, cumulative: NDArray[np.float64], rows: NDArray[np.int64] | None = None
             ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Add a look with cumulative counts (len(rows), k) and return (log E, most likely boundary g).

        g is the look after which the change most likely came (0 while no boundary is passed).
        """
        cumulative = np.asarray(cumulative, dtype=float)
        rows = np.arange(self._runs) if rows is None else rows
        if self.looks and self.looks == int(CANDIDATES[len(self._g)]):
            # The boundary after the previous look is now behind us: freeze its first segment.
            self._g.append(self.looks)
            self._heads.append(self._last.copy())
            self._seg1.append(self._first_segment(self._last))
        self.looks += 1
        self._last[rows] = cumulative
        n = cumulative.sum(axis=-1)
        no_change_mass = 1.0 / (self._g[-1] + 1) if self._g else 1.0
        terms = [np.log(no_change_mass) + self._first_segment(cumulative)]
        best = np.zeros(len(rows), dtype=np.int64)
        if self._g:
            g = np.asarray(self._g)
            heads = np.stack([h[rows] for h in self._heads])
            seg1 = np.stack([s[rows] for s in self._seg1])
            prev = np.concatenate(([0], g[:-1])).astype(float)[:, None]
            log_pi = np.log(1.0 / (prev + 1) - 1.0 / (g.astype(float)[:, None] + 1))
            per_g = log_pi + seg1 + _log_dirichlet_marginal(cumulative[None] - heads, self._jeffreys)
            terms.append(logsumexp(per_g, axis=0))
            best = g[per_g.argmax(axis=0)]
        numerator = logsumexp(np.stack(terms), axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            sup = np.where(cumulative > 0, cumulative * np.log(cumulative / np.maximum(n, 1)[:, None]), 0.0)
        return numerator - sup.sum(axis=-1), best
