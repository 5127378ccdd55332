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

Change points are look boundaries (a batch is never split), so one function serves the
judge (one stream, called after every look) and the bench (thousands of streams at once).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy.special import gammaln, logsumexp


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


def log_evidence(cumulative: NDArray[np.float64], before: NDArray[np.float64]) -> tuple[NDArray[np.float64],
                                                                                      NDArray[np.int64]]:
    """log E_J at the last look, and the most probable change boundary, for each stream.

    ``cumulative`` has shape (J, runs, k): the counts per subset after each look 1..J.
    Returns (log E_J, j) with j the candidate look after which the change most likely came
    (0 when J < 2).
    """
    looks, runs, k = cumulative.shape
    jeffreys = np.full(k, 0.5)
    last = cumulative[-1]
    n = last.sum(axis=-1)
    g = CANDIDATES[looks > CANDIDATES]  # boundaries a change may already be after
    no_change_mass = 1.0 / (g[-1] + 1) if len(g) else 1.0
    whole = np.logaddexp(_log_dirichlet_marginal(last, before), _log_dirichlet_marginal(last, jeffreys)) - np.log(2)
    terms = [np.full(runs, np.log(no_change_mass)) + whole]
    best = np.zeros(runs, dtype=np.int64)
    if len(g):
        head = cumulative[g - 1]  # (G, runs, k): counts up to each candidate boundary
        prev = np.concatenate(([0], g[:-1])).astype(float)[:, None]
        log_pi = np.log(1.0 / (prev + 1) - 1.0 / (g.astype(float)[:, None] + 1))
        seg1 = np.logaddexp(_log_dirichlet_marginal(head, before), _log_dirichlet_marginal(head, jeffreys)) - np.log(2)
        seg2 = _log_dirichlet_marginal(last[None] - head, jeffreys)
        per_g = log_pi + seg1 + seg2
        terms.append(logsumexp(per_g, axis=0))
        best = g[per_g.argmax(axis=0)]
    numerator = logsumexp(np.stack(terms), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sup = np.where(last > 0, last * np.log(last / np.maximum(n, 1)[:, None]), 0.0).sum(axis=-1)
    return numerator - sup, best
