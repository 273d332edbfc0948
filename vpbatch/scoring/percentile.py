"""Each model among the survey's human raters: its percentile per dimension (issue 11).

For rater group g (items I_g, raters H_g with questionnaire scores) a respondent's score is
the centred score of `kernel` restricted to the items of I_g it rated; a model's percentile
in g is 100 × (raters below + ½ raters level) / raters with a score, and its percentile is
the mean over groups weighted by n_gd, the items of I_g that count for d and that it rated.
Humans and models go through the same float64 weights, so a tie stays a tie.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.survey import Survey
from vpbatch.scoring.kernel import Kernel, centre, score_rows

__all__ = ["human_percentiles", "group_scores", "TIE"]

F64 = npt.NDArray[np.float64]
TIE = 1e-9  # scores this close are level: float rounding must not split a tie
_REVERSE = 7.0


def group_scores(x: F64, k: Kernel, group_items: npt.NDArray[np.bool_]) -> F64:
    """(N, I) item means -> (N, G, sum D): each row's centred scores over each group's items.

    The kernel's columns are repeated once per group with the other groups' items zeroed, so
    all groups are scored by one pair of matrix products.
    """
    n_items, n_cols = k.exact.shape
    n_groups = group_items.shape[0]
    mask = group_items.T[:, :, None].astype(np.float64)  # (I, G, 1)
    w = (k.exact[:, None, :] * mask).reshape(n_items, n_groups * n_cols)
    ok = ~np.isnan(x)
    present = ok.astype(np.float64)
    num = np.where(ok, x, 0.0) @ w
    neg = np.where(w < 0, -w, 0.0)
    if neg.any():
        num += present @ (_REVERSE * neg)
    # Rows mostly share one pattern of answered items: count each pattern's denominators once.
    _, first, which = np.unique(np.packbits(ok, axis=1), axis=0, return_index=True,
                                return_inverse=True)
    den = (present[first] @ np.abs(w))[which.ravel()]
    shape = (x.shape[0], n_groups, n_cols)
    return np.asarray(centre(num.reshape(shape), den.reshape(shape), k, axis=-1))


def human_percentiles(x: F64, survey: Survey, k: Kernel) -> F64:
    """(N, I) model item means -> (N, sum D) percentiles among the raters (NaN: undefined)."""
    n_dims = len(k.dim_cols)
    # Each rater has ratings for its own group's items only: its row scores that group.
    humans = score_rows(survey.ratings, k, exact=True)
    model = group_scores(x, k, survey.group_items)  # (N, G, sum D)
    # n_gd for every group at once: the items of g that count for d and that the row rated.
    in_group = survey.group_items.T[:, :, None] * k.counts[:, None, :]  # (I, G, sum D)
    rated = (~np.isnan(x)).astype(np.float64)
    n_all = (rated @ in_group.reshape(x.shape[1], -1).astype(np.float64)).reshape(model.shape)
    num = np.zeros((x.shape[0], n_dims))
    den = np.zeros((x.shape[0], n_dims))
    for g in range(survey.n_groups):  # 12 groups x 19 dimensions; raters sorted, not looped
        n_gd = n_all[:, g]
        h = humans[(survey.group == g) & survey.has_values]
        for d in range(n_dims):
            ref = np.sort(h[~np.isnan(h[:, d]), d])
            s = model[:, g, d]
            use = (n_gd[:, d] > 0) & ~np.isnan(s) & (ref.size > 0)
            if not use.any():
                continue
            below = np.searchsorted(ref, s - TIE, side="left")
            level = np.searchsorted(ref, s + TIE, side="right") - below
            pct = 100.0 * (below + 0.5 * level) / max(ref.size, 1)
            num[:, d] += np.where(use, n_gd[:, d] * pct, 0.0)
            den[:, d] += np.where(use, n_gd[:, d], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)
