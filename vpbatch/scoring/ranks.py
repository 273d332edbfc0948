"""Spearman's rho along an axis, vectorised over many rows: the trust panel's correlations."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

__all__ = ["spearman", "nanmean", "complete_ranks"]

F64 = npt.NDArray[np.float64]
_PAIRWISE_MAX = 32  # rows this short are ranked by pairwise counts, longer ones by sorting


def nanmean(a: npt.NDArray[Any], axis: int) -> F64:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all undefined: undefined
        return np.asarray(np.nanmean(a, axis=axis), dtype=np.float64)


def spearman(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> F64:
    """Spearman's rho along the last axis over the pairs where neither side is NaN.

    NaN where fewer than 3 pairs remain or either side is constant over them.
    """
    ok = ~(np.isnan(a) | np.isnan(b))
    a = np.where(ok, a, np.nan)
    b = np.where(ok, b, np.nan)
    n = ok.sum(axis=-1)
    da, db = (_centred_ranks(x, ok, n) for x in (a, b))
    va, vb = (da * da).sum(axis=-1), (db * db).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (da * db).sum(axis=-1) / np.sqrt(va * vb)
    return np.asarray(np.where((n >= 3) & (va > 0) & (vb > 0), rho, np.nan), dtype=np.float64)


def complete_ranks(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """Average ranks along the last axis of rows without NaN: one argsort, and pairwise
    counts only for the rows that hold a tie."""
    order = np.argsort(x, axis=-1)
    ranks = np.empty(x.shape, np.float32)
    np.put_along_axis(ranks, order, np.arange(1.0, x.shape[-1] + 1), axis=-1)
    tied = (np.diff(np.sort(x, axis=-1), axis=-1) == 0).any(axis=-1)
    if tied.any():
        t = x[tied]
        less = (t[..., None, :] < t[..., :, None]).sum(axis=-1)
        same = (t[..., None, :] == t[..., :, None]).sum(axis=-1)
        ranks[tied] = less + (same + 1) / 2.0
    return ranks


def _centred_ranks(x: F64, ok: npt.NDArray[np.bool_], n: npt.NDArray[np.intp]) -> F64:
    """Average ranks among the valid entries, minus their mean; 0 where invalid."""
    if not x.size:
        return np.zeros(x.shape)
    if x.shape[-1] <= _PAIRWISE_MAX:
        # Short rows (profiles, millions of them in a bootstrap): rank by counting, which
        # is many times faster than sorting each row. NaN compares False: never counted.
        less = (x[..., None, :] < x[..., :, None]).sum(axis=-1, dtype=np.int16)
        same = (x[..., None, :] == x[..., :, None]).sum(axis=-1, dtype=np.int16)
        r = less + (same + 1) / 2.0
    else:
        r = rankdata(x, axis=-1, nan_policy="omit")
    mean = (n + 1) / 2.0  # ranks 1..n average to this, ties or not
    return np.where(ok, r - mean[..., None], 0.0)
