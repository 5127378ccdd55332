"""Does the canary fail more often than the baseline? Each subset's error rate, compared with a
margin in points, decided anytime-validly.

Each subset's error rate has a confidence sequence (confseq.py's beta-mixture martingale) at
level alpha / k for k subsets, so all hold at every look with probability >= 1 - alpha. A
canary is PASS once its upper end is at most the baseline's lower end plus the margin, FAIL once
its lower end is above the baseline's upper end plus the margin; a wrong verdict needs a
sequence to miss. Requests that failed before any answer named a subset are the worst case for
each verdict, as in latency_compare.py: the canary's when proving PASS, the baseline's when
proving FAIL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from loadgen.stats import confseq
from loadgen.stats.verdict import VerdictState


@dataclass(frozen=True)
class ErrorCounts:
    requests: int  # judged requests of this subset, failures included
    errors: int


@dataclass(frozen=True)
class ErrorComparison:
    subset: str
    baseline: str
    state: VerdictState
    reason: str
    rate: float  # observed, without the requests of unknown subset
    rate_lower: float
    rate_upper: float  # with them, as the canary's
    base_rate: float
    base_lower: float
    base_upper: float


def error_mixture(margin: float) -> confseq.Mixture:
    """Where the error-rate questions are decided: near 0 (a healthy subset), around the margin
    (its edge) and a wide component for anything else. Fixed before the data, as Ville needs."""
    m = min(max(margin, 1e-4), 0.5)
    parts = [confseq.single_beta(m / 4, m / 4), confseq.single_beta(m, m / 2), confseq.single_beta(0.5, 0.29)]
    return confseq.Mixture(weights=(0.4, 0.4, 0.2), a=tuple(p.a[0] for p in parts), b=tuple(p.b[0] for p in parts))


class ErrorJudge:
    """Each non-baseline subset's error rate against ``baseline`` + ``margin`` (a share, 0.005 = 0.5 points)."""

    def __init__(self, margin: float, baseline: str, subsets: Sequence[str], alpha: float) -> None:
        if not 0 < margin < 1:
            raise ValueError("the error margin is a share between 0 and 1 (points / 100)")
        if baseline not in subsets:
            raise ValueError(f"baseline {baseline!r} is not one of the subsets {', '.join(subsets)}")
        self.margin, self.baseline, self.subsets = margin, baseline, tuple(subsets)
        self.alpha_each = alpha / len(self.subsets)
        self._mixture = error_mixture(margin)

    def _bounds(self, errors: int, requests: int) -> tuple[float, float]:
        return confseq.interval_scalar(errors, requests, self.alpha_each, self._mixture)

    def look(self, counts: Mapping[str, ErrorCounts], unattributed: int = 0, final: bool = False
             ) -> list[ErrorComparison]:
        base = counts.get(self.baseline, ErrorCounts(0, 0))
        base_lower, _ = self._bounds(base.errors, base.requests)
        _, base_upper = self._bounds(base.errors + unattributed, base.requests + unattributed)
        out = []
        for subset in self.subsets:
            if subset == self.baseline:
                continue
            own = counts.get(subset, ErrorCounts(0, 0))
            lower, _ = self._bounds(own.errors, own.requests)
            _, upper = self._bounds(own.errors + unattributed, own.requests + unattributed)
            pts = f"{self.margin * 100:g} points"
            if upper <= base_lower + self.margin:
                state = VerdictState.PASS
                reason = (f"{subset} fails at most {upper:.2%} of requests, within {pts} of {self.baseline} "
                          f"(at least {base_lower:.2%})")
            elif lower > base_upper + self.margin:
                state = VerdictState.FAIL
                reason = (f"{subset} fails at least {lower:.2%} of requests, more than {pts} above "
                          f"{self.baseline} (at most {base_upper:.2%})")
            else:
                state = VerdictState.INCONCLUSIVE if final else VerdictState.RUNNING
                reason = (f"{subset}'s error rate is between {lower:.2%} and {upper:.2%}, {self.baseline}'s between "
                          f"{base_lower:.2%} and {base_upper:.2%}: not yet decided against a margin of {pts}")
            out.append(ErrorComparison(subset, self.baseline, state, reason,
                                       own.errors / own.requests if own.requests else 0.0, lower, upper,
                                       base.errors / base.requests if base.requests else 0.0, base_lower, base_upper))
        return out


@dataclass(frozen=True)
class AlphaShares:
    """How the run's alpha (1 - confidence) is shared between its verdicts: each verdict's own
    guarantee holds at its share, so the overall verdict is wrong with probability <= alpha
    (union bound). Without a latency or error comparison the split keeps all of it, as before."""

    split: float
    latency: float
    errors: float


def share_alpha(alpha: float, latency: bool, errors: bool) -> AlphaShares:
    """Half to the split, the other half in equal parts to the latency and error comparisons asked for."""
    others = int(latency) + int(errors)
    if others == 0:
        return AlphaShares(alpha, 0.0, 0.0)
    each = alpha / 2 / others
    return AlphaShares(alpha / 2, each if latency else 0.0, each if errors else 0.0)
