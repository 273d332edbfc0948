"""Every family score as a linear form in the item means: one matrix product scores many rows.

A centred score is a ratio of two linear forms in the item means (a weighted sum over the
dimension's items divided by their count, minus the same for the family's items). The kernel
holds all three families' weights as columns, so (N, I) item means -> (N, 19) centred scores
is two products and a division, whoever the respondents are: models, resamples, humans.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.dataset import Dataset
from vpbatch.benchmark.dims import FAMILIES
from vpbatch.scoring.scorer import ScoreOptions, item_weights

__all__ = ["Kernel", "build_kernel", "centre", "split", "score_rows"]

F64 = npt.NDArray[np.float64]
_MAX_RATING = 7.0  # reverse scoring is 7 - x on the 1..6 scale


@dataclass(frozen=True, slots=True)
class Kernel:
    """All families' dimensions as columns; each family ends with its 'family mean' column."""

    # float32 as built here (fast intervals); float64 in the trust panel's cut (exact ties).
    signed: npt.NDArray[np.floating[Any]]  # (I, G): +w on x, -w on reverse-scored items
    neg7: npt.NDArray[np.floating[Any]] | None  # (I, G): 7*w on reverse-scored items, or None
    weight: npt.NDArray[np.floating[Any]]  # (I, G): |w|, the denominator's weights
    slices: dict[str, slice]  # family -> its D columns; the family-mean column follows
    dim_cols: npt.NDArray[np.intp]  # (sum D,): each dimension's column
    fam_cols: npt.NDArray[np.intp]  # (sum D,): the family-mean column it is centred on
    exact: F64  # (I, G) the signed weights in float64, for scores that ties depend on

    @property
    def counts(self) -> npt.NDArray[np.bool_]:
        """(I, sum D): the item counts for the dimension (either sign)."""
        return np.asarray(self.weight[:, self.dim_cols] > 0)


def build_kernel(ds: Dataset, options: ScoreOptions) -> Kernel:
    cols: list[F64] = []
    slices: dict[str, slice] = {}
    dim_cols: list[int] = []
    fam_cols: list[int] = []
    start = 0
    for fam in FAMILIES:
        w = np.asarray(item_weights(ds, fam, options), dtype=np.float64)
        union = (w != 0).any(axis=1).astype(np.float64)
        cols += [w, union[:, None]]
        d = w.shape[1]
        slices[fam] = slice(start, start + d)
        dim_cols += range(start, start + d)
        fam_cols += [start + d] * d
        start += d + 1
    full = np.concatenate(cols, axis=1)
    neg = np.where(full < 0, -full, 0.0)
    return Kernel(
        signed=full.astype(np.float32),
        neg7=(_MAX_RATING * neg).astype(np.float32) if neg.any() else None,
        weight=np.abs(full).astype(np.float32),
        slices=slices,
        dim_cols=np.array(dim_cols, np.intp),
        fam_cols=np.array(fam_cols, np.intp),
        exact=full,
    )


def centre(num: npt.NDArray[Any], den: npt.NDArray[Any], k: Kernel, axis: int) -> npt.NDArray[Any]:
    """Sums over columns G (on `axis`) -> centred scores: dimension mean minus family mean."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = num / den
    return np.take(mean, k.dim_cols, axis=axis) - np.take(mean, k.fam_cols, axis=axis)


def split(flat: npt.NDArray[Any], k: Kernel) -> dict[str, npt.NDArray[Any]]:
    """(..., sum D) -> family -> (..., D)."""
    out, start = {}, 0
    for fam, s in k.slices.items():
        n = s.stop - s.start
        out[fam] = flat[..., start : start + n]
        start += n
    return out


def score_rows(x: F64, k: Kernel, *, exact: bool = False) -> F64:
    """(N, I) item means (NaN = missing) -> (N, sum D) centred scores.

    float32 products by default (intervals); `exact` keeps float64 throughout, for comparisons
    where a tie between two respondents must stay a tie.
    """
    present = ~np.isnan(x)
    if exact:
        w = k.exact
        pos, neg = np.abs(w), np.where(w < 0, -w, 0.0)
        total: F64 = np.nan_to_num(x) @ w
        if neg.any():
            total = total + present @ (_MAX_RATING * neg)
        return np.asarray(centre(total, present @ pos, k, axis=-1), dtype=np.float64)
    p32 = present.astype(np.float32)
    num = np.nan_to_num(x).astype(np.float32) @ k.signed
    if k.neg7 is not None:
        num += p32 @ k.neg7
    return np.asarray(centre(num, p32 @ k.weight, k, axis=-1), dtype=np.float64)
