"""The trust panel: does a model's value profile replicate across answer order and wording?

Value Portrait asks every item under three wordings, each with the answer phrases in both
orders. A profile that changes with the order or the wording measured the prompt, not the
model. For every model x condition this module computes, vectorised over the cube:

- order_bias: mean over k of mean_i (r_vk(i) - r_vk_reversed(i)) / 5 (+1: always the first);
- order_item_rho / order_profile_rho: Spearman between v_k and v_k_reversed, per item / per
  PVQ profile (the centred scores under the run's rule), averaged over k;
- wording_profile_rho: Spearman between the wordings' profiles, each from both its orders;
- straightlining, rated_share; retest_item_rho / retest_profile_rho when jobs were repeated;
- verdict, from the two profile correlations and ScoreOptions.weak_min / replicate_min.

A Spearman over fewer than 3 pairs, or with a constant side, is undefined (NaN, null in JSON);
a mean skips undefined terms and is undefined when all are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.dataset import Dataset
from vpbatch.benchmark.dims import VANILLA
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.kernel import Kernel, build_kernel, score_rows
from vpbatch.scoring.ranks import complete_ranks, nanmean, spearman
from vpbatch.scoring.resample import draw_counts, query_clusters
from vpbatch.scoring.scorer import ScoreOptions
from vpbatch.scoring.trust_boot import profile_intervals

__all__ = [
    "FIELDS",
    "RETEST_FIELDS",
    "INTERVAL_FIELDS",
    "VERDICTS",
    "REPLICATES",
    "WEAK",
    "NOT_REPLICATING",
    "NOT_MEASURED",
    "BIAS_FLAG",
    "FIELD_DOCS",
    "Trust",
    "spearman",
    "trust_panel",
    "verdicts",
    "trust_to_json",
    "format_trust",
    "verdict_counts",
    "trust_of",
]

F64 = npt.NDArray[np.float64]
WORDINGS = ("v1", "v2", "v3")
REVERSED = "_reversed"
FIELDS = ("order_bias", "order_item_rho", "order_profile_rho", "wording_profile_rho",
          "straightlining", "rated_share")
RETEST_FIELDS = ("retest_item_rho", "retest_profile_rho")
INTERVAL_FIELDS = ("order_profile_rho", "wording_profile_rho")
REPLICATES, WEAK, NOT_REPLICATING, NOT_MEASURED = (
    "replicates", "weak", "does not replicate", "not measured")
VERDICTS = (REPLICATES, WEAK, NOT_REPLICATING, NOT_MEASURED)
# Each field in a line, as the export's schema.json and the report's table explain it.
FIELD_DOCS = {
    "order_bias": "mean (v_k - v_k_reversed) rating / 5 over items and wordings: +1 always the "
                  "phrase listed first, -1 always the last",
    "order_item_rho": "mean over wordings of Spearman(item ratings v_k, v_k_reversed)",
    "order_profile_rho": "mean over wordings of Spearman(PVQ profile from v_k alone, from "
                         "v_k_reversed alone)",
    "wording_profile_rho": "mean over wording pairs of Spearman(PVQ profiles, each wording's "
                           "from both its orders)",
    "straightlining": "share of rated answers (all versions) equal to the commonest rating",
    "rated_share": "rated answers / answers requested (logged jobs)",
    "retest_item_rho": "repeated runs: mean over versions of Spearman(item ratings of repeat 0, "
                       "of the later repeats)",
    "retest_profile_rho": "repeated runs: Spearman(PVQ profile of repeat 0, of the later "
                          "repeats)",
    "verdict": "replicates (both profile rhos >= replicate_min) | weak | does not replicate "
               "(either < weak_min or undefined) | not measured (the versions a test needs "
               "are missing, and no test failed)",
}
BIAS_FLAG = 0.2  # |order_bias| at which `score` names a model: one rating point of shift
_SCALE = 5.0  # ratings span 1..6: a difference of 5 is the whole scale
_TIE_DECIMALS = 9


@dataclass(slots=True)
class Trust:
    """The panel as (M, C) arrays; `present` marks the model x condition pairs that were run."""

    models: list[str]
    conditions: list[str]
    values: dict[str, F64]  # FIELDS (+ RETEST_FIELDS when repeated) -> (M, C), NaN = null
    verdict: npt.NDArray[np.str_]  # (M, C)
    ci_low: dict[str, F64] = field(default_factory=dict)  # INTERVAL_FIELDS -> (M, C)
    ci_high: dict[str, F64] = field(default_factory=dict)
    present: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), bool))
    weak_min: float = 0.4
    replicate_min: float = 0.7

    @property
    def repeated(self) -> bool:
        return RETEST_FIELDS[0] in self.values

    def rows(self) -> list[tuple[str, str]]:
        """The (model, condition) pairs that were run, models first."""
        return [(m, c) for mi, m in enumerate(self.models)
                for ci, c in enumerate(self.conditions) if self.present[mi, ci]]

    def get(self, model: str, condition: str) -> dict[str, Any]:
        """One row as scores.json holds it: every field (NaN -> None), its intervals, verdict."""
        mi, ci = self.models.index(model), self.conditions.index(condition)
        out: dict[str, Any] = {k: _num(v[mi, ci]) for k, v in self.values.items()}
        for k in INTERVAL_FIELDS:
            if k in self.ci_low:
                out[f"{k}_ci_low"] = _num(self.ci_low[k][mi, ci])
                out[f"{k}_ci_high"] = _num(self.ci_high[k][mi, ci])
        out["verdict"] = str(self.verdict[mi, ci])
        return out


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


# --- profiles from version subsets -----------------------------------------------------


def _pvq_kernel(ds: Dataset, options: ScoreOptions) -> Kernel:
    """The scoring kernel cut to the PVQ family: its 10 columns and its family mean."""
    k = build_kernel(ds, options)
    s = k.slices["pvq"]
    cols = np.arange(s.start, s.stop + 1)
    d = s.stop - s.start
    exact = k.exact[:, cols]
    neg7 = None if k.neg7 is None else k.neg7[:, cols]
    return Kernel(signed=k.signed[:, cols], neg7=neg7, weight=k.weight[:, cols],
                  slices={"pvq": slice(0, d)}, dim_cols=np.arange(d, dtype=np.intp),
                  fam_cols=np.full(d, d, np.intp), exact=exact)


def _subset_means(ratings: F64, dropped: npt.NDArray[np.bool_] | None,
                  idx: list[int]) -> F64:
    """(M, C, I) item means over the versions `idx` (NaN where none rated or none given)."""
    if not idx:
        return np.full((*ratings.shape[:2], ratings.shape[-1]), np.nan)
    r = ratings[:, :, idx]
    ok = ~np.isnan(r)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(ok, r, 0.0).sum(axis=2) / ok.sum(axis=2)
    if dropped is not None:
        x[dropped] = np.nan  # the authors' rule loses these items in every subset
    return np.asarray(x, dtype=np.float64)


def _pairs(versions: list[str]) -> list[tuple[int, int]]:
    """(v_k, v_k_reversed) version indices for every wording the cube has in both orders."""
    return [(versions.index(w), versions.index(w + REVERSED)) for w in WORDINGS
            if w in versions and w + REVERSED in versions]


# --- the panel -------------------------------------------------------------------------


def _asked(cube: RatingCube) -> npt.NDArray[np.int64]:
    if cube.asked is not None:
        return np.asarray(cube.asked, np.int64)
    return (~np.isnan(cube.ratings)).sum(axis=-1).astype(np.int64)  # a cube built by hand


def _hist(cube: RatingCube) -> npt.NDArray[np.int64]:
    if cube.hist is not None:
        return np.asarray(cube.hist, np.int64)
    r = cube.ratings
    return np.stack([(r == k).sum(axis=(2, 3)) for k in range(1, 7)], axis=-1).astype(np.int64)


def _item_terms(r: F64, pairs: list[tuple[int, int]]) -> tuple[F64, F64]:
    """(order_bias, order_item_rho), each (M, C): means over the order pairs."""
    shape = r.shape[:2]
    if not pairs:
        return np.full(shape, np.nan), np.full(shape, np.nan)
    first = np.stack([r[:, :, a] for a, _ in pairs], axis=2)  # (M, C, K, I)
    last = np.stack([r[:, :, b] for _, b in pairs], axis=2)
    diff = (first - last) / _SCALE
    return nanmean(nanmean(diff, axis=-1), axis=-1), nanmean(spearman(first, last), axis=-1)


def _profile_rows(cube: RatingCube, options: ScoreOptions,
                  pairs: list[tuple[int, int]]) -> tuple[F64, int]:
    """(M, C, S, I) item means of the subsets the profile terms compare, and K (order pairs).

    Subsets: each order pair's two versions alone (2K), then each wording in both orders (K).
    """
    r = np.asarray(cube.ratings, dtype=np.float64)
    dropped = None
    if options.rule == "authors":
        dropped = cube.authors_dropped if cube.authors_dropped is not None \
            else np.isnan(r[:, :, 0, :])
    subsets = [[a] for a, _ in pairs] + [[b] for _, b in pairs] + [list(p) for p in pairs]
    x = np.stack([_subset_means(r, dropped, s) for s in subsets], axis=2) if subsets \
        else np.zeros((*r.shape[:2], 0, r.shape[-1]))
    return x, len(pairs)


def _profile_terms(p: F64, k: int) -> tuple[F64, F64]:
    """(order_profile_rho, wording_profile_rho) from profiles (..., S, D) on axis -1=D."""
    # Scores are ratios of small integers: distinct ones differ by > 1e-6, equal ones computed
    # two ways by < 1e-12. Rounding in between makes equal scores tie, as they should.
    p = np.round(p, _TIE_DECIMALS)
    if k == 0:
        nan = np.full(p.shape[:-2], np.nan)
        return nan, nan.copy()
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    order_pairs = (list(range(k)), list(range(k, 2 * k)))
    wording_pairs = ([2 * k + a for a, _ in pairs], [2 * k + b for _, b in pairs])
    if np.isnan(p).any():
        order, wording = (spearman(p[..., a, :], p[..., b, :])
                          for a, b in (order_pairs, wording_pairs))
    else:  # the usual case: rank each profile once, not once per pair it is in
        # float32 keeps every distinct rounded score distinct (they differ by > 1e-6) and
        # halves what the sorts move.
        r = complete_ranks(np.ascontiguousarray(p, dtype=np.float32)).astype(np.float64)
        r -= (p.shape[-1] + 1) / 2.0  # exact: ranks are halves
        order, wording = (_rank_rho(r, a, b) for a, b in (order_pairs, wording_pairs))
    if not pairs:
        return nanmean(order, axis=-1), np.full(order.shape[:-1], np.nan)
    return nanmean(order, axis=-1), nanmean(wording, axis=-1)


def _rank_rho(r: npt.NDArray[np.floating[Any]], a: list[int], b: list[int]) -> F64:
    """(..., len(a)) Spearman between profiles a[j] and b[j], from centred ranks r (..., S, D)."""
    d = r.shape[-1]
    norm = np.sqrt((r * r).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (r[..., a, :] * r[..., b, :]).sum(axis=-1) / (norm[..., a] * norm[..., b])
    ok = (norm[..., a] > 0) & (norm[..., b] > 0) & (d >= 3)
    return np.asarray(np.where(ok, rho, np.nan), dtype=np.float64)


def _retest(cube: RatingCube, kern: Kernel, options: ScoreOptions) -> dict[str, F64]:
    """retest_item_rho and retest_profile_rho (M, C): first repeat against the later ones."""
    if cube.retest is None:
        return {}
    first, later = (np.asarray(r, dtype=np.float64) for r in cube.retest)
    item = nanmean(spearman(first, later), axis=-1)  # per version, then their mean
    every = list(range(first.shape[2]))
    dropped = cube.authors_dropped if options.rule == "authors" else None
    prof = [score_rows(_subset_means(r, dropped, every).reshape(-1, r.shape[-1]), kern,
                       exact=True) for r in (first, later)]
    profile = spearman(*prof).reshape(first.shape[:2])
    return {RETEST_FIELDS[0]: item, RETEST_FIELDS[1]: profile}


def verdicts(order: F64, wording: F64, order_asked: npt.NDArray[np.bool_],
             wording_asked: npt.NDArray[np.bool_], weak_min: float = 0.4,
             replicate_min: float = 0.7) -> npt.NDArray[np.str_]:
    """The verdict of each cell. A test whose versions were asked fails below weak_min or when
    undefined (NaN compares False); one failed test is enough, whatever the other's versions.
    Otherwise a test whose versions are missing leaves the cell "not measured"."""
    fail = (order_asked & ~(order >= weak_min)) | (wording_asked & ~(wording >= weak_min))
    good = (order >= replicate_min) & (wording >= replicate_min)
    out = np.where(good, REPLICATES, WEAK)
    out = np.where(order_asked & wording_asked, out, NOT_MEASURED)
    return np.asarray(np.where(fail, NOT_REPLICATING, out), dtype=np.str_)


def trust_panel(cube: RatingCube, ds: Dataset, options: ScoreOptions | None = None, *,
                n_boot: int = 1000, seed: int = 0) -> Trust:
    """Every model x condition's panel; intervals from `n_boot` query resamples (0: none)."""
    options = options or ScoreOptions()
    r = np.asarray(cube.ratings, dtype=np.float64)
    pairs = _pairs(list(cube.versions))
    asked = _asked(cube)
    done = asked > 0  # (M, C, V) the version was asked
    complete = np.stack([done[:, :, a] & done[:, :, b] for a, b in pairs], axis=-1) \
        if pairs else np.zeros((*r.shape[:2], 0), bool)
    # The order test needs one wording in both orders; the wording test two such wordings.
    order_asked = np.asarray(complete.any(axis=-1), dtype=bool)
    wording_asked = np.asarray(complete.sum(axis=-1) >= 2, dtype=bool)
    bias, item_rho = _item_terms(r, pairs)
    kern = _pvq_kernel(ds, options)
    x, k = _profile_rows(cube, options, pairs)
    n_dims = len(kern.dim_cols)
    prof = score_rows(x.reshape(-1, x.shape[-1]), kern, exact=True).reshape(*x.shape[:3], n_dims)
    order_rho, wording_rho = _profile_terms(prof, k)
    hist = _hist(cube)
    n_rated = hist.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        straight = hist.max(axis=-1, initial=0) / n_rated
        share = n_rated / asked.sum(axis=-1)
    values = dict(zip(FIELDS, (bias, item_rho, order_rho, wording_rho,
                                np.asarray(straight, np.float64), np.asarray(share, np.float64)),
                      strict=True))
    values.update(_retest(cube, kern, options))
    trust = Trust(list(cube.models), list(cube.conditions), values,
                  verdicts(order_rho, wording_rho, order_asked, wording_asked, options.weak_min,
                           options.replicate_min),
                  present=asked.sum(axis=-1) > 0, weak_min=options.weak_min,
                  replicate_min=options.replicate_min)
    if n_boot > 0 and k:
        counts = draw_counts(ds.n_items, n_boot, seed, query_clusters(ds))
        trust.ci_low, trust.ci_high = profile_intervals(x, kern, k, counts, INTERVAL_FIELDS)
    return trust


def trust_to_json(trust: Trust) -> dict[str, dict[str, dict[str, Any]]]:
    """model -> condition -> the row, for the pairs that were run (scores.json's `trust`)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for model, cond in trust.rows():
        out.setdefault(model, {})[cond] = trust.get(model, cond)
    return out


def _label(model: str, condition: str) -> str:
    return model if condition == VANILLA else f"{model} [{condition}]"


def trust_of(doc: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """model -> condition -> trust row, read back from a scores.json document."""
    return {m: {c: cell["trust"] for c, cell in per.items() if "trust" in cell}
            for m, per in doc.get("models", {}).items()}


def verdict_counts(rows: dict[str, dict[str, dict[str, Any]]]) -> dict[str, int]:
    """Verdict -> how many model x condition rows (trust_to_json's) got it; every class."""
    got = [row["verdict"] for per in rows.values() for row in per.values()]
    return {v: got.count(v) for v in VERDICTS}


def format_trust(rows: dict[str, dict[str, dict[str, Any]]], weak_min: float = 0.4,
                 replicate_min: float = 0.7) -> str:
    """One line per verdict class (naming the weak, non-replicating and unmeasured pairs),
    then the pairs whose |order_bias| reaches BIAS_FLAG."""
    by: dict[str, list[str]] = {v: [] for v in VERDICTS}
    biased = []
    for m, per in rows.items():
        for c, row in per.items():
            by[row["verdict"]].append(_label(m, c))
            bias = row.get("order_bias")
            if bias is not None and abs(bias) >= BIAS_FLAG:
                biased.append(f"{_label(m, c)} ({bias:+.2f})")
    lines = [f"trust (PVQ profile rho across answer order and wording; replicates: both >= "
             f"{replicate_min:g}; does not replicate: either < {weak_min:g}):"]
    for verdict, names in by.items():
        named = verdict != REPLICATES and names
        lines.append(f"  {verdict} ({len(names)})" + (f": {', '.join(names)}" if named else ""))
    lines.append(f"  |order_bias| >= {BIAS_FLAG:g} (a rating point toward the phrase listed "
                 f"first or last): " + (", ".join(biased) if biased else "none"))
    return "\n".join(lines)
