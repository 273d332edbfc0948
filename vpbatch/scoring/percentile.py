"""Each model among the survey's human raters: its percentile per dimension (issue 11).

For rater group g (items I_g, raters H_g with questionnaire scores) a respondent's score is
the centred score of `kernel` restricted to the items of I_g it rated; a model's percentile
in g is 100 × (raters below + ½ raters level) / raters with a score, and its percentile is
the mean over groups weighted by n_gd, the items of I_g that count for d and that it rated.
Humans and models go through the same float64 kernel, so a tie stays a tie.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.survey import Survey
from vpbatch.scoring.kernel import Kernel, score_rows

__all__ = ["human_percentiles", "TIE"]

F64 = npt.NDArray[np.float64]
TIE = 1e-9  # scores this close are level: float rounding must not split a tie


def human_percentiles(x: F64, survey: Survey, k: Kernel) -> F64:
    """(N, I) model item means -> (N, sum D) percentiles among the raters (NaN: undefined)."""
    n_rows, n_dims = x.shape[0], len(k.dim_cols)
    # Each rater's scores over its own group's items: its other items are NaN already.
    humans = score_rows(survey.ratings, k, exact=True)
    rated = (~np.isnan(x)).astype(np.float64)
    counts = k.counts.astype(np.float64)  # (I, sum D)
    num = np.zeros((n_rows, n_dims))
    den = np.zeros((n_rows, n_dims))
    for g in range(survey.n_groups):  # 12 groups; raters and models are vectorised inside
        items = survey.group_items[g]
        n_gd = (rated * items) @ counts  # (N, sum D)
        model = score_rows(np.where(items, x, np.nan), k, exact=True)
        h = humans[(survey.group == g) & survey.has_values]  # (H_g, sum D)
        ok = ~np.isnan(h)
        diff = h[None, :, :] - model[:, None, :]  # (N, H_g, sum D)
        below = ((diff < -TIE) & ok).sum(axis=1)
        level = ((np.abs(diff) <= TIE) & ok).sum(axis=1)
        n_h = ok.sum(axis=0)  # raters with a score, per dimension
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = 100.0 * (below + 0.5 * level) / n_h
        use = (n_gd > 0) & (n_h > 0) & ~np.isnan(model)
        num += np.where(use, n_gd * pct, 0.0)
        den += np.where(use, n_gd, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)
