"""Cronbach's alpha: how consistently a dimension's items rank the respondents (Table 1)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vpbatch.benchmark.dims import FAMILY_DIMS, VANILLA
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.scorer import REVERSE, ScoreOptions, item_weights

if TYPE_CHECKING:
    from vpbatch.benchmark.dataset import Dataset

__all__ = ["cronbach_alpha", "alpha_by_dimension", "respondent_matrix", "describe_items"]


def describe_items(rule: ScoreOptions | None, options: ScoreOptions) -> str:
    """In words, which items an alpha runs over: Table 1's set (rule None) or a rule's."""
    t = options.threshold
    if rule is None:
        return f"items with r > {t:g} (positive correlations, no p-value cut: Table 1's set)"
    if rule.rule == "authors":
        return f"the authors' rule's items (tagged r > {t:g}, three pairs dropped)"
    p = "" if rule.p_max >= 1 else f" and p < {rule.p_max:g}"
    if rule.rule == "absolute":
        return f"the absolute rule's items (|r| > {t:g}{p}; negative ones reversed, 7 − x)"
    return f"the paper rule's items (r > {t:g}{p})"


def cronbach_alpha(matrix: np.ndarray) -> float:
    """Alpha of a respondents × items matrix; rows with a missing answer are left out.

    NaN when fewer than two items or two complete rows remain, or the totals do not vary.
    """
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"cronbach_alpha needs a 2-D respondents × items matrix, got {x.shape}")
    x = x[~np.isnan(x).any(axis=1)]
    n, k = x.shape
    if k < 2 or n < 2:
        return float("nan")
    total_var = x.sum(axis=1).var(ddof=1)
    if total_var == 0:
        return float("nan")
    return float(k / (k - 1) * (1.0 - x.var(axis=0, ddof=1).sum() / total_var))


def respondent_matrix(
    cube: RatingCube, condition: str = VANILLA, models: list[str] | None = None
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Rows = each model × version (a respondent), columns = items; raw 1-6, NaN if failed."""
    ci = cube.conditions.index(condition)
    names = cube.models if models is None else models
    idx = [cube.models.index(name) for name in names]
    matrix = cube.ratings[idx, ci].reshape(-1, cube.ratings.shape[-1])
    return matrix, [(name, v) for name in names for v in cube.versions]


def alpha_by_dimension(
    cube: RatingCube,
    ds: Dataset,
    family: str = "pvq",
    *,
    threshold: float = 0.3,
    condition: str = VANILLA,
    models: list[str] | None = None,
    rule: ScoreOptions | None = None,
) -> dict[str, float]:
    """Alpha per dimension: columns are its items with r > threshold, rows each model × version.

    A row with a failed answer among a dimension's items is left out of that dimension only
    (listwise per value), which is what reproduces the paper's Table 1 within 0.01. With
    `rule`, the columns are that scoring rule's items instead (reverse-scored ones as 7 - x).
    """
    if condition not in cube.conditions:
        return {dim: float("nan") for dim in FAMILY_DIMS[family]}
    matrix, _ = respondent_matrix(cube, condition, models)
    if rule is None:
        w = (np.asarray(ds.corr[family], np.float64) > threshold).astype(np.int8)
    else:
        w = np.asarray(item_weights(ds, family, rule))
    out = {}
    for j, dim in enumerate(FAMILY_DIMS[family]):
        cols = matrix[:, w[:, j] != 0]
        out[dim] = cronbach_alpha(np.where(w[w[:, j] != 0, j] < 0, REVERSE - cols, cols))
    return out
