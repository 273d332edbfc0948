"""Value scores from a RatingCube (SPEC §1): vectorised over models × conditions at once.

Each family is one weight matrix W (items × dimensions, entries 0, 1, or -1 for reverse
scoring), so every raw score of a sweep is two matrix products and a division.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS
from vpbatch.errors import ConfigError
from vpbatch.scoring.cube import RatingCube

if TYPE_CHECKING:
    from vpbatch.benchmark.dataset import Dataset

__all__ = [
    "RULES",
    "AUTHORS_EXCLUDED",
    "ScoreOptions",
    "Scores",
    "item_means",
    "item_weights",
    "score_cube",
    "scores_to_json",
    "scoring_means",
]

RULES = ("paper", "authors", "absolute")

# (portrait_id, option_id, dimension) pairs the authors' score.py drops by hand. The paper's
# p < 0.05 rule drops them too, which is why "paper" needs no such list.
AUTHORS_EXCLUDED: dict[str, tuple[tuple[int, int, str], ...]] = {
    "pvq": ((3902, 4, "Achievement"), (1901, 1, "Universalism")),
    "higher_pvq": (),
    "bfi": ((2901, 4, "Extraversion"),),
}

REVERSE = 7.0  # a 1..6 rating x reverse-scores as 7 - x


@dataclass(frozen=True, slots=True)
class ScoreOptions:
    """Which (item, dimension) pairs count: the item-selection rule and its cut-offs."""

    rule: str = "paper"  # "paper" (r>0.3 & p<0.05) | "authors" | "absolute"
    threshold: float = 0.3
    p_max: float = 0.05  # ignored by "authors"; >= 1 switches the p-value cut off
    # The trust panel's verdict cut-offs on the profile correlations (vpbatch.scoring.trust).
    weak_min: float = 0.4  # below this (or undefined): "does not replicate"
    replicate_min: float = 0.7  # both at least this: "replicates"; between: "weak"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"unknown scoring rule {self.rule!r}; use one of {', '.join(RULES)}")
        if not 0.0 <= self.threshold < 1.0:
            raise ConfigError(f"threshold {self.threshold} must be in [0, 1)")
        if not -1.0 <= self.weak_min <= self.replicate_min <= 1.0:
            raise ConfigError(
                f"trust thresholds weak_min {self.weak_min} and replicate_min "
                f"{self.replicate_min} must satisfy -1 <= weak_min <= replicate_min <= 1; "
                "lower --weak-min or raise --replicate-min")


@dataclass(slots=True)
class Scores:
    """Per family, arrays over (model, condition, dimension) in dims.FAMILY_DIMS order."""

    models: list[str]
    conditions: list[str]
    score: dict[str, np.ndarray]  # centred: raw - family mean
    raw: dict[str, np.ndarray]
    n_items: dict[str, np.ndarray]  # items with a rating that counted for the dimension


def item_means(cube: RatingCube) -> np.ndarray:
    """(M, C, I): each item's mean rating over versions, failed ones left out; NaN if none."""
    r = cube.ratings
    ok = ~np.isnan(r)
    total = np.where(ok, r, 0.0).sum(axis=2)
    count = ok.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def item_weights(ds: Dataset, family: str, options: ScoreOptions = ScoreOptions()) -> np.ndarray:
    """(I, n_dims) int8: 1 where the item counts for the dimension, -1 reversed, else 0."""
    if family not in FAMILY_DIMS:
        raise ConfigError(f"unknown family {family!r}; use one of {', '.join(FAMILIES)}")
    t = options.threshold
    if options.rule == "authors":
        # Their lists are the tagged correlations; positive only, no p-value, three exclusions.
        r = np.asarray(ds.corr_tagged[family], np.float64)
        w = (r > t).astype(np.int8)
        dims = FAMILY_DIMS[family]
        for pid, oid, dim in AUTHORS_EXCLUDED[family]:
            hit = np.flatnonzero((ds.portrait_id == pid) & (ds.option_id == oid))
            w[hit, dims.index(dim)] = 0  # a subset dataset may lack the item: nothing to drop
        return w
    r = np.asarray(ds.corr[family], np.float64)
    # NaN p-values (absent pairs) compare False, so they never pass.
    sig = np.asarray(ds.pval[family], np.float64) < options.p_max
    if options.p_max >= 1.0:
        sig = ~np.isnan(r)
    w = ((r > t) & sig).astype(np.int8)
    if options.rule == "absolute":
        w -= ((r < -t) & sig).astype(np.int8)
    return w


def scoring_means(cube: RatingCube, options: ScoreOptions = ScoreOptions()) -> np.ndarray:
    """(M, C, I) the item means a rule scores: item_means, less the authors' dropped items.

    Under "authors" an item whose first version failed may count for nothing: their averaging
    kept each item's v1 record as the template carrying the correlation lists, and where that
    record failed without them the item was lost. `cube.authors_dropped` says which.
    """
    means = item_means(cube)
    if options.rule != "authors":
        return means
    dropped = cube.authors_dropped
    if dropped is None and cube.versions:  # a cube built by hand: no record to say otherwise
        dropped = np.isnan(cube.ratings[:, :, 0, :])
    if dropped is not None:
        means[dropped] = np.nan
    return means


def score_cube(
    cube: RatingCube,
    ds: Dataset,
    options: ScoreOptions = ScoreOptions(),
    means: np.ndarray | None = None,
) -> Scores:
    """Raw and centred scores of every model × condition, for all three families.

    `means` is `scoring_means(cube, options)` when the caller has it already.
    """
    means = scoring_means(cube, options) if means is None else means
    m, c, n = means.shape
    valid = ~np.isnan(means).reshape(m * c, n)
    x = np.where(valid, means.reshape(m * c, n), 0.0)
    v = valid.astype(np.float64)
    out = Scores(list(cube.models), list(cube.conditions), {}, {}, {})
    for family in FAMILIES:
        w = item_weights(ds, family, options)
        pos = (w > 0).astype(np.float64)
        neg = (w < 0).astype(np.float64)
        used = (w != 0).any(axis=1).astype(np.float64)  # each item once for the family mean
        n_items = v @ (pos + neg)
        total = x @ pos + (REVERSE * v - x) @ neg
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = total / n_items
            family_mean = (x @ used) / (v @ used)  # unreversed ratings, as the authors do
        d = w.shape[1]
        out.raw[family] = raw.reshape(m, c, d)
        out.score[family] = (raw - family_mean[:, None]).reshape(m, c, d)
        out.n_items[family] = n_items.round().astype(np.int64).reshape(m, c, d)
    return out


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def scores_to_json(
    scores: Scores, extra: dict[str, dict[str, np.ndarray]] | None = None
) -> dict[str, Any]:
    """SPEC §2: models.<name>.<condition>.<family>.<Dimension> = {score, raw, n_items, ...}.

    `extra` adds per-dimension fields: name -> family -> (M, C, D) array (NaN -> null).
    """
    extra = extra or {}
    models: dict[str, Any] = {}
    for mi, model in enumerate(scores.models):
        per_cond: dict[str, Any] = {}
        for ci, cond in enumerate(scores.conditions):
            if not any(n[mi, ci].any() for n in scores.n_items.values()):
                continue  # this model never answered under this condition
            fams: dict[str, Any] = {}
            for family in FAMILIES:
                if family not in scores.score:
                    continue
                s, r, n = (a[family][mi, ci] for a in (scores.score, scores.raw, scores.n_items))
                more = {k: v[family][mi, ci] for k, v in extra.items() if family in v}
                fams[family] = {
                    dim: {"score": _num(s[j]), "raw": _num(r[j]), "n_items": int(n[j]),
                          **{k: _num(v[j]) for k, v in more.items()}}
                    for j, dim in enumerate(FAMILY_DIMS[family])
                }
            per_cond[cond] = fams
        models[model] = per_cond
    return {"models": models}
