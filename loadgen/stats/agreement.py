"""Do two observations of one split agree? (APP_ID counts vs the client sidecar's counters.)

Both count the same requests, so without other traffic through the sidecar and without
retries they are equal. Pearson's chi-square test of homogeneity treats them as two
independent samples, which makes it conservative here (the same requests vary less than
two samples would): a small p-value is a real disagreement, not chance.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import chdtrc

__all__ = ["homogeneity_p"]


def homogeneity_p(a: Mapping[str, int], b: Mapping[str, int]) -> float | None:
    """p-value that ``a`` and ``b`` come from one split (None when either is empty or only
    one category was seen in both, so there is nothing to compare)."""
    names = sorted(n for n in set(a) | set(b) if a.get(n, 0) + b.get(n, 0) > 0)
    if len(names) < 2 or sum(a.values()) == 0 or sum(b.values()) == 0:
        return None
    table = np.array([[a.get(n, 0) for n in names], [b.get(n, 0) for n in names]], dtype=float)
    # Pearson's statistic against the expected counts of one common split, and its chi-square tail
    # (scipy.stats.chi2_contingency without the continuity correction; scipy.stats itself costs
    # every canary ~0.7 s of import).
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    return float(chdtrc(len(names) - 1, float(((table - expected) ** 2 / expected).sum())))
