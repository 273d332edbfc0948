"""One vectorised pass over a rating cube: profiles, deltas, steering, intervals, spread,
alpha, and each model's percentile among the human raters.

Every score is linear in the item means (see `kernel`), so one matrix product scores any
number of (model, condition) rows at once, and a bootstrap is the same product with an
(I, B) matrix of resample counts in place of ones. By default the resampled units are the 104
queries (each with its 5 responses, which share a scenario); single items are the option.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from vpbatch.benchmark.conditions import PERSONA_PREFIX, STEER_PREFIX
from vpbatch.benchmark.dataset import Dataset
from vpbatch.benchmark.dims import FAMILIES, PVQ, VANILLA
from vpbatch.benchmark.survey import Survey, SurveyMissing, load_survey
from vpbatch.errors import ConfigError
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.human import HumanGroup, load_human_reference, match_persona
from vpbatch.scoring.kernel import Kernel, build_kernel, score_rows, split
from vpbatch.scoring.percentile import human_percentiles
from vpbatch.scoring.reliability import alpha_by_dimension
from vpbatch.scoring.resample import boot_rows, draw_counts, nan_percentile, query_clusters
from vpbatch.scoring.scorer import ScoreOptions, Scores, score_cube, scoring_means
from vpbatch.scoring.trust import Trust, trust_panel

__all__ = [
    "BOOTSTRAPS",
    "CLUSTER",
    "ITEM",
    "query_clusters",
    "Analysis",
    "GroupComparison",
    "analyse",
    "human_comparison",
    "nan_percentile",
]

F64 = npt.NDArray[np.float64]
CLUSTER, ITEM = "cluster", "item"
BOOTSTRAPS = (CLUSTER, ITEM)  # resample whole queries (their 5 responses), or single items
_CHUNK_BYTES = 64 << 20  # bootstrap draws held at once; bounds memory at any grid size


@dataclass(slots=True)
class Analysis:
    """Everything the report shows, as arrays indexed [model, condition, (version,) dim]."""

    scores: Scores  # the exact point estimates (score / raw / n_items per family)
    versions: tuple[str, ...]
    ci_low: dict[str, F64]  # family -> (M, C, D): 2.5th percentile of the centred score
    ci_high: dict[str, F64]
    deltas: dict[str, F64]  # family -> (M, C, D): condition - vanilla centred score
    delta_ci_low: dict[str, F64]
    delta_ci_high: dict[str, F64]
    version_scores: dict[str, F64]  # family -> (M, C, V, D): centred score per prompt version
    version_spread: dict[str, F64]  # family -> (M, C, D): SD of the score across versions
    alpha: dict[str, F64]  # family -> (D,): alpha over the r > threshold items (Table 1's set)
    steering: dict[str, F64]  # model -> (10, 10): row steered, column measured; NaN = not run
    n_boot: int = 0
    seed: int = 0
    options: ScoreOptions = field(default_factory=ScoreOptions)
    bootstrap: str = "cluster"  # "cluster" (whole queries) | "item"
    design_effect: dict[str, F64] = field(default_factory=dict)  # family -> (M, D) width ratio
    human_percentile: dict[str, F64] = field(default_factory=dict)  # family -> (M, C, D)
    human_note: str | None = None  # why every percentile is NaN (no survey files), if so
    alpha_rule: dict[str, F64] = field(default_factory=dict)  # alpha over the rule's items
    trust: Trust | None = None  # does each profile replicate across order and wording?

    @property
    def models(self) -> list[str]:
        return list(self.scores.models)

    @property
    def conditions(self) -> list[str]:
        return list(self.scores.conditions)

    def persona_conditions(self) -> list[str]:
        return [c for c in self.conditions if c.startswith(PERSONA_PREFIX)]

    def steer_conditions(self) -> list[str]:
        return [c for c in self.conditions if c.startswith(STEER_PREFIX)]

    def persona_deltas(self, model: str, family: str = "pvq") -> tuple[list[str], F64]:
        """The persona conditions and their (P, D) persona - vanilla deltas for one model."""
        conds = self.persona_conditions()
        m = self.models.index(model)
        idx = [self.conditions.index(c) for c in conds]
        return conds, self.deltas[family][m, idx]

    def delta(self, model: str, condition: str, family: str = "pvq") -> F64:
        """(D,) condition - vanilla for one model (NaN when either is missing)."""
        m = self.models.index(model)
        return self.deltas[family][m, self.conditions.index(condition)]


@dataclass(slots=True)
class GroupComparison:
    """A persona group set beside the ESS humans: deltas, their correlation, the exaggeration."""

    group: str  # reference key, e.g. "political"
    label: str  # "Political orientation"
    table: int  # the paper's table number
    members: list[str]  # paper labels that the run covers, in the paper's order
    conditions: list[str]  # the matching persona conditions, same order
    model_deltas: F64  # (n, 10) persona - vanilla
    human_deltas: F64  # (n, 10) ESS group - ESS all
    correlation: float  # Pearson r over cells, each side centred per value across members
    correlation_raw: float  # Pearson r over cells as they stand
    contrast: tuple[str, str]  # e.g. ("Male", "Female")
    model_gap: F64 | None  # (10,) first - second member; None when either is missing
    human_gap: F64 | None
    exaggeration: float  # mean |model gap| / mean |human gap|; NaN without a gap


# --- the pass --------------------------------------------------------------------------


def _bootstrap(
    x: F64, vanilla: int | None, k: Kernel, counts: npt.NDArray[np.float32] | None
) -> tuple[F64, F64, F64, F64]:
    """95% intervals of scores and of deltas, (M, C, sum D) each, chunked over models.

    Every condition of a model is scored on the same resamples, so a delta's interval is
    paired: condition and baseline move together with the queries drawn.
    """
    n_models, n_conds, n_items = x.shape
    shape = (n_models, n_conds, len(k.dim_cols))
    lo, hi, dlo, dhi = (np.full(shape, np.nan) for _ in range(4))
    if counts is None:
        return lo, hi, dlo, dhi
    n_boot = counts.shape[1]
    per_model = n_boot * n_conds * k.signed.shape[1] * 4 * 4  # num, den, centred, sorted
    step = max(1, _CHUNK_BYTES // max(per_model, 1))
    for m0 in range(0, n_models, step):
        part = x[m0 : m0 + step]
        draws = boot_rows(part.reshape(-1, n_items), counts, k)
        draws = draws.reshape(len(part), n_conds, len(k.dim_cols), n_boot)
        lo[m0 : m0 + step], hi[m0 : m0 + step] = nan_percentile(draws, (2.5, 97.5))
        if vanilla is not None:
            draws -= draws[:, vanilla : vanilla + 1].copy()  # in place: deltas per resample
            dlo[m0 : m0 + step], dhi[m0 : m0 + step] = nan_percentile(draws, (2.5, 97.5))
    if vanilla is not None:
        dlo[:, vanilla] = dhi[:, vanilla] = np.nan
    return lo, hi, dlo, dhi


def _design_effect(x: F64, k: Kernel, other: npt.NDArray[np.float32], shown: F64,
                   kind: str) -> F64:
    """(M, sum D) cluster-bootstrap width / item-bootstrap width of the profile condition.

    `shown` is the width the main bootstrap (of `kind`) already gave that condition; only the
    other kind is drawn here, on the profile condition's rows alone.
    """
    lo, hi, _, _ = _bootstrap(x, None, k, other)
    width = (hi - lo)[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = shown / width if kind == CLUSTER else width / shown
    return np.asarray(ratio, dtype=np.float64)


def _version_scores(cube: RatingCube, k: Kernel) -> F64:
    """(M, C, V, sum D): each prompt version scored on its own."""
    r = np.asarray(cube.ratings, dtype=np.float64)
    return score_rows(r.reshape(-1, r.shape[-1]), k).reshape(*r.shape[:3], -1)


def _alphas(
    cube: RatingCube, ds: Dataset, condition: str, options: ScoreOptions | None
) -> dict[str, F64]:
    """family -> (D,) Cronbach's alpha, respondents = model x version.

    options None: the items with r > threshold (Table 1's set); else the scoring rule's items.
    """
    threshold = (options or ScoreOptions()).threshold
    return {
        f: np.array(list(alpha_by_dimension(cube, ds, f, threshold=threshold,
                                            condition=condition, rule=options).values()))
        for f in FAMILIES
    }


def _steering(deltas: F64, models: list[str], conditions: list[str]) -> dict[str, F64]:
    """model -> (10, 10) PVQ steering matrix, row = steered value (NaN rows not run)."""
    rows = [conditions.index(STEER_PREFIX + d) if STEER_PREFIX + d in conditions else -1
            for d in PVQ]
    out = {}
    for m, name in enumerate(models):
        mat = np.full((len(PVQ), len(PVQ)), np.nan)
        for r, c in enumerate(rows):
            if c >= 0:
                mat[r] = deltas[m, c]
        out[name] = mat
    return out


def _percentiles(
    x: F64, ds: Dataset, k: Kernel, survey: Survey | None
) -> tuple[F64, str | None]:
    """(M, C, sum D) human percentiles, and why they are all NaN when they are."""
    nan = np.full((*x.shape[:2], len(k.dim_cols)), np.nan)
    if survey is None:
        try:
            survey = load_survey(ds)
        except SurveyMissing as exc:
            return nan, str(exc)
    if not x.size:
        return nan, None
    pct = human_percentiles(x.reshape(-1, x.shape[-1]), survey, k)
    return pct.reshape(nan.shape), None


def analyse(
    cube: RatingCube,
    ds: Dataset,
    options: ScoreOptions | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    bootstrap: str = CLUSTER,
    survey: Survey | None = None,
) -> Analysis:
    """Score a cube and derive everything the report needs, in one vectorised pass.

    `bootstrap` is "cluster" (whole queries, the default) or "item"; `survey` defaults to the
    one beside the dataset (percentiles are NaN, with a note, where its files are missing).
    """
    if bootstrap not in BOOTSTRAPS:
        raise ConfigError(f"unknown bootstrap {bootstrap!r}; use one of {', '.join(BOOTSTRAPS)}")
    options = options or ScoreOptions()
    # The item means score_cube uses (the authors' dropped items included), so intervals sit
    # around the exact point estimates.
    x = np.asarray(scoring_means(cube, options), dtype=np.float64)  # (M, C, I)
    scores = score_cube(cube, ds, options, means=x)
    k = build_kernel(ds, options)
    conditions = list(scores.conditions)
    vanilla = conditions.index(VANILLA) if VANILLA in conditions else None
    shown = vanilla or 0  # the profile condition
    point = {f: np.asarray(scores.score[f], dtype=np.float64) for f in FAMILIES}
    deltas = {f: np.full_like(v, np.nan) for f, v in point.items()}
    if vanilla is not None:
        deltas = {f: v - v[:, vanilla : vanilla + 1] for f, v in point.items()}
    counts: dict[str, npt.NDArray[np.float32]] = {}
    if n_boot > 0:
        clusters = query_clusters(ds)
        counts = {CLUSTER: draw_counts(ds.n_items, n_boot, seed, clusters),
                  ITEM: draw_counts(ds.n_items, n_boot, seed)}
    lo, hi, dlo, dhi = _bootstrap(x, vanilla, k, counts.get(bootstrap))
    deff = np.full((x.shape[0], len(k.dim_cols)), np.nan)
    if counts and conditions:
        other = counts[ITEM if bootstrap == CLUSTER else CLUSTER]
        deff = _design_effect(x[:, shown : shown + 1], k, other,
                              (hi - lo)[:, shown], bootstrap)
    pct, note = _percentiles(x, ds, k, survey)
    vs = _version_scores(cube, k)
    with warnings.catch_warnings():
        # An all-NaN slice (a version never run) is a NaN spread, not news.
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(vs, axis=2)
    cond = conditions[shown] if conditions else VANILLA
    return Analysis(
        scores=scores,
        versions=tuple(cube.versions),
        ci_low=split(lo, k),
        ci_high=split(hi, k),
        deltas=deltas,
        delta_ci_low=split(dlo, k),
        delta_ci_high=split(dhi, k),
        version_scores=split(vs, k),
        version_spread=split(spread, k),
        alpha=_alphas(cube, ds, cond, None),
        steering=_steering(deltas["pvq"], list(scores.models), conditions),
        n_boot=n_boot,
        seed=seed,
        options=options,
        bootstrap=bootstrap,
        design_effect=split(deff, k),
        human_percentile=split(pct, k),
        human_note=note,
        alpha_rule=_alphas(cube, ds, cond, options),
        trust=trust_panel(cube, ds, options, n_boot=n_boot, seed=seed),
    )


# --- beside the humans -----------------------------------------------------------------


def _pearson(a: F64, b: F64) -> float:
    ok = ~(np.isnan(a) | np.isnan(b))
    a, b = a[ok], b[ok]
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _compare(
    ref: HumanGroup, members: list[str], conds: list[str], model_rows: F64
) -> GroupComparison:
    human = np.stack([ref.row(m) for m in members])
    # The persona prompt itself shifts every member alike (a 'you have a profile' effect the
    # ESS baseline lacks), so r is taken after centring each value across the members.
    r_centred = (
        _pearson(
            (model_rows - model_rows.mean(axis=0)).ravel(), (human - human.mean(axis=0)).ravel()
        )
        if len(members) >= 2
        else float("nan")
    )
    a, b = ref.contrast
    mgap = hgap = None
    ratio = float("nan")
    if a in members and b in members:
        mgap = model_rows[members.index(a)] - model_rows[members.index(b)]
        hgap = ref.gap()
        denom = float(np.nanmean(np.abs(hgap)))
        ratio = float(np.nanmean(np.abs(mgap))) / denom if denom > 0 else float("nan")
    return GroupComparison(
        group=ref.name,
        label=ref.label,
        table=ref.table,
        members=members,
        conditions=conds,
        model_deltas=model_rows,
        human_deltas=human,
        correlation=r_centred,
        correlation_raw=_pearson(model_rows.ravel(), human.ravel()),
        contrast=ref.contrast,
        model_gap=mgap,
        human_gap=hgap,
        exaggeration=ratio,
    )


def human_comparison(
    analysis: Analysis,
    model: str,
    persona_meta: dict[str, tuple[str, str]] | None = None,
) -> list[GroupComparison]:
    """Per ESS group the run covers: the model's PVQ deltas beside the humans'.

    `persona_meta` maps a persona name to its (paper_group, paper_value) from the config.
    """
    meta = persona_meta or {}
    found: dict[str, dict[str, str]] = {}  # group -> member -> condition
    for cond in analysis.persona_conditions():
        name = cond.removeprefix(PERSONA_PREFIX)
        pg, pv = meta.get(name, (None, None))
        hit = match_persona(name, paper_group=pg, paper_value=pv)
        if hit is not None:
            found.setdefault(hit[0], {})[hit[1]] = cond
    out = []
    for gname, ref in load_human_reference().items():
        if gname not in found:
            continue
        # Only the members this model was run under (a grid may differ per model).
        members = [m for m in ref.members if m in found[gname]
                   and not np.isnan(analysis.delta(model, found[gname][m], "pvq")).all()]
        if not members:
            continue
        conds = [found[gname][m] for m in members]
        rows = np.stack([analysis.delta(model, c, "pvq") for c in conds])
        out.append(_compare(ref, members, conds, rows))
    return out
