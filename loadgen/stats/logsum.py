"""log(sum(exp(a))) along an axis, without overflow: scipy.special.logsumexp's arithmetic
without its per-call dispatch (array-API checks, ~0.2 ms a call), which the judge pays at every
look of every subset. Same results, including -inf rows."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def logsumexp(a: ArrayLike, axis: int = 0) -> NDArray[np.float64]:
    a = np.asarray(a, dtype=float)
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)  # an all -inf row stays -inf; no inf - inf
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(a - top), axis=axis)) + np.squeeze(top, axis=axis)
