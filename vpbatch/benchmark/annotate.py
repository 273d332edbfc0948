"""`vpbatch data annotate`: rebuild the item annotation from the raw survey and check it.

Every item × dimension Spearman r (and its two-sided p-value) between the item's ratings and
the raters' questionnaire scores, computed from `data/prolific`, is compared with the
published `data/correlation_results`. Where they differ, the rebuild looks for the cause.

What it finds on the official files (commit 08e1fb7): every pair of 11 groups agrees to
1e-9. Group 0 (queries 1021, 1061, 2041, 2053, 3030, 3025, 4001, 4044) includes P186, the
one rater who also rated another group (5); value.json holds one questionnaire for P186,
and it reproduces group 5 exactly but not group 0. Replacing P186's scores in group 0 by
values fitted per dimension (any value in a rank interval) reproduces every published pair
of the group, so the published group-0 correlations used another questionnaire for that
rater, which the release does not contain. The rebuild cannot recover it; it says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from vpbatch.benchmark.dataset import Dataset
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS
from vpbatch.benchmark.survey import Survey

__all__ = ["Mismatch", "Rebuild", "rebuild", "spearman", "TOLERANCE"]

F64 = npt.NDArray[np.float64]
TOLERANCE = 1e-9  # r and p must both agree this closely to count as reproduced


def spearman(ratings: F64, scores: F64) -> tuple[F64, F64]:
    """(n,) ratings × (n, D) scores -> (D,) Spearman r and two-sided p (t with n-2 df).

    The same statistic as scipy.stats.spearmanr (Pearson r of average ranks), for all D
    dimensions at once.
    """
    n = ratings.shape[0]
    rx = stats.rankdata(ratings)
    ry = stats.rankdata(scores, axis=0)
    rx = rx - rx.mean()
    ry = ry - ry.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (rx @ ry) / np.sqrt((rx @ rx) * (ry * ry).sum(axis=0))
        r = np.clip(r, -1.0, 1.0)
        t = r * np.sqrt((n - 2) / ((1.0 - r) * (1.0 + r)))
    p = 2 * stats.t.sf(np.abs(t), n - 2)
    return r, p


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One published pair the rebuild does not reproduce, and why."""

    family: str
    portrait_id: int
    option_id: int
    dimension: str
    published_r: float
    rebuilt_r: float
    published_p: float
    rebuilt_p: float
    group: int
    reason: str

    def flips(self, threshold: float = 0.3, p_max: float = 0.05) -> bool:
        """Would the rebuilt pair change whether the item counts under the paper's rule?"""
        def passes(r: float, p: float) -> bool:
            return r > threshold and p < p_max

        return passes(self.published_r, self.published_p) != passes(self.rebuilt_r,
                                                                    self.rebuilt_p)


@dataclass(slots=True)
class Rebuild:
    """Per family: pairs compared and reproduced; the others with their reasons."""

    compared: dict[str, int] = field(default_factory=dict)
    agree: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    causes: list[str] = field(default_factory=list)  # one sentence per cause found

    def to_dict(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "agree": self.agree,
            "causes": self.causes,
            "mismatches": [
                {"family": m.family, "portrait_id": m.portrait_id, "option_id": m.option_id,
                 "dimension": m.dimension, "published_r": m.published_r,
                 "rebuilt_r": m.rebuilt_r, "published_p": m.published_p,
                 "rebuilt_p": m.rebuilt_p, "group": m.group, "reason": m.reason}
                for m in self.mismatches
            ],
        }


def _rows(survey: Survey, g: int) -> npt.NDArray[np.intp]:
    return np.flatnonzero((survey.group == g) & survey.has_values)


def _item_stats(survey: Survey, rows: npt.NDArray[np.intp], item: int, fam: str,
                values: F64 | None = None) -> tuple[F64, F64]:
    x = survey.ratings[rows, item]
    ok = ~np.isnan(x)
    v = survey.values[fam][rows] if values is None else values
    return spearman(x[ok], v[ok])


def _fits(published: F64, rebuilt: F64) -> npt.NDArray[np.bool_]:
    return np.asarray(np.abs(published - rebuilt) <= TOLERANCE)


def _substitute(survey: Survey, g: int, row: int, fam: str, published: dict[int, F64]) -> bool:
    """Does some value per dimension, in place of `row`'s score, reproduce the group's r?

    Spearman r depends on ranks only, so candidates are the midpoints between the sorted
    distinct scores of the other raters (and one beyond each end): one per rank position.
    """
    rows = _rows(survey, g)
    k = int(np.flatnonzero(rows == row)[0])
    base = survey.values[fam][rows].copy()
    for d in range(base.shape[1]):
        others = np.unique(np.delete(base[:, d], k))
        mids = (others[1:] + others[:-1]) / 2
        cands = np.concatenate([others, mids, [others[0] - 1, others[-1] + 1]])
        trial = np.repeat(base[:, d : d + 1], len(cands), axis=1)
        trial[k] = cands
        ok = np.ones(len(cands), dtype=bool)
        for item, pub in published.items():
            r, _ = _item_stats(survey, rows, item, fam, trial)
            ok &= _fits(np.full(len(cands), pub[d]), r)
            if not ok.any():
                return False
    return True


def _reproduces(survey: Survey, ds: Dataset, g: int, fam: str) -> bool:
    """Does the raw survey reproduce every published pair of group g?"""
    rows = _rows(survey, g)
    pub_r, pub_p = np.asarray(ds.corr[fam]), np.asarray(ds.pval[fam])
    for item in np.flatnonzero(survey.group_items[g]):
        r, p = _item_stats(survey, rows, int(item), fam)
        if not (_fits(pub_r[item], r) & _fits(pub_p[item], p)).all():
            return False
    return True


def _explain(survey: Survey, ds: Dataset, g: int, fam: str,
             published: dict[int, F64]) -> str | None:
    """Name the rater in two groups whose questionnaire fits the other group but not this one,
    while some other scores for that rater reproduce this whole group."""
    rows = _rows(survey, g)
    twice = [int(r) for r in rows if survey.rater.count(survey.rater[r]) > 1]
    for row in twice:  # a rater in two groups is the suspect the data itself points at
        who = survey.rater[row]
        others = [int(survey.group[k]) for k, w in enumerate(survey.rater)
                  if w == who and k != row]
        if all(_reproduces(survey, ds, o, fam) for o in others) and _substitute(
                survey, g, row, fam, published):
            other = ", ".join(map(str, others))
            return (f"{who} rated groups {g} and {other}, but value.json holds one "
                    f"questionnaire for {who}: it reproduces group {other}, while other scores "
                    f"for {who} (fitted per dimension) reproduce every published pair of group "
                    f"{g}. The published group-{g} correlations used a questionnaire for this "
                    "rater that the release does not contain.")
    return None


def rebuild(ds: Dataset, survey: Survey) -> Rebuild:
    """Recompute every (item, dimension) r and p from the survey; compare; explain misses."""
    out = Rebuild()
    for fam in FAMILIES:
        pub_r = np.asarray(ds.corr[fam], np.float64)
        pub_p = np.asarray(ds.pval[fam], np.float64)
        out.compared[fam] = int((~np.isnan(pub_r)).sum())
        out.agree[fam] = 0
        for g in range(survey.n_groups):
            rows = _rows(survey, g)
            items = [int(i) for i in np.flatnonzero(survey.group_items[g])]
            bad: dict[int, tuple[npt.NDArray[np.bool_], F64, F64]] = {}
            for item in items:
                r, p = _item_stats(survey, rows, item, fam)
                ok = _fits(pub_r[item], r) & _fits(pub_p[item], p)
                out.agree[fam] += int(ok.sum())
                if not ok.all():
                    bad[item] = (ok, r, p)
            if not bad:
                continue
            why = _explain(survey, ds, g, fam, {i: pub_r[i] for i in items})
            reason = why or (f"not reproduced from the raw survey (group {g}); no rater's "
                             "questionnaire alone explains it")
            if reason not in out.causes:
                out.causes.append(reason)
            for item, (ok, r, p) in bad.items():
                for d in np.flatnonzero(~ok):
                    out.mismatches.append(Mismatch(
                        family=fam, portrait_id=int(ds.portrait_id[item]),
                        option_id=int(ds.option_id[item]), dimension=FAMILY_DIMS[fam][d],
                        published_r=float(pub_r[item, d]), rebuilt_r=float(r[d]),
                        published_p=float(pub_p[item, d]), rebuilt_p=float(p[d]), group=g,
                        reason=reason))
    return out
