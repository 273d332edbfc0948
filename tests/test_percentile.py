"""Human percentiles: each model among the survey's raters, exactly as issue 11 defines them.

The naive route reads the survey JSON itself and works in exact fractions, one rater at a
time; the vectorised one (float64 matrix products, all raters and models at once) must agree.
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS
from vpbatch.benchmark.survey import Survey, load_survey
from vpbatch.scoring.analysis import analyse
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.scorer import ScoreOptions, item_weights, scoring_means


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


@pytest.fixture(scope="module")
def survey(ds: Dataset) -> Survey:
    return load_survey(ds)


def naive_percentile(
    model: dict[tuple[int, int], Fraction], data_dir: Path, ds: Dataset, family: str,
    dim: str, options: ScoreOptions,
) -> float | None:
    """The issue's definition, literally: per group, per rater, in exact arithmetic."""
    groups = json.loads((data_dir / layout.SURVEY).read_text("utf-8"))
    have_values = set(json.loads((data_dir / layout.VALUE_SCORES).read_text("utf-8")))
    w = item_weights(ds, family, options)
    d = FAMILY_DIMS[family].index(dim)
    weight = {(int(p), int(o)): int(w[i, d])
              for i, (p, o) in enumerate(zip(ds.portrait_id, ds.option_id, strict=True))}
    in_family = {(int(p), int(o)): bool((w[i] != 0).any())
                 for i, (p, o) in enumerate(zip(ds.portrait_id, ds.option_id, strict=True))}

    def score(ratings: dict[tuple[int, int], Fraction]) -> Fraction | None:
        dim_items = [(k, v) for k, v in ratings.items() if weight[k] != 0]
        fam_items = [v for k, v in ratings.items() if in_family[k]]
        if not dim_items:
            return None
        dim_mean = sum((v if weight[k] > 0 else 7 - v) for k, v in dim_items) / len(dim_items)
        return dim_mean - sum(fam_items) / len(fam_items)

    total = Fraction(0)
    n_total = 0
    for group in groups:
        items = [(int(p), int(o["option_id"])) for p, opts in group.items() for o in opts]
        mine = {k: model[k] for k in items if k in model}
        n_gd = sum(1 for k in mine if weight[k] != 0)
        if n_gd == 0:
            continue
        s_model = score(mine)
        humans: dict[str, dict[tuple[int, int], Fraction]] = {}
        for p, opts in group.items():
            for o in opts:
                for rating, who in o["data"]:
                    if who in have_values:
                        humans.setdefault(who, {})[(int(p), int(o["option_id"]))] = \
                            Fraction(rating)
        scored = [s for s in (score(r) for r in humans.values()) if s is not None]
        below = sum(1 for s in scored if s < s_model)
        level = sum(1 for s in scored if s == s_model)
        pct = 100 * (Fraction(below) + Fraction(level, 2)) / len(scored)
        total += n_gd * pct
        n_total += n_gd
    return float(total / n_total) if n_total else None


def model_cube(ds: Dataset, survey: Survey) -> RatingCube:
    """Three respondents: noisy, one with items missing, and a copy of a rater (exact ties)."""
    rng = np.random.default_rng(11)
    ratings = rng.integers(1, 7, (3, 1, 6, ds.n_items)).astype(np.float64)
    ratings[0, 0, 1:4, rng.random(ds.n_items) < 0.2] = np.nan  # some versions failed
    ratings[1, 0, :, rng.random(ds.n_items) < 0.5] = np.nan  # half the items never answered
    # Respondent 2 answers as the first rater of each group did, in every version.
    first = {int(g): int(np.flatnonzero(survey.group == g)[0]) for g in range(survey.n_groups)}
    copy = np.full(ds.n_items, np.nan)
    for g, row in first.items():
        items = survey.group_items[g]
        copy[items] = survey.ratings[row, items]
    ratings[2, 0] = copy
    return RatingCube(["noisy", "sparse", "rater-copy"], ["vanilla"], [f"v{k}" for k in range(6)],
                      ratings, np.asarray(ds.portrait_id), np.asarray(ds.option_id))


@pytest.mark.slow  # exact fractions for every rater and dimension: 12-24 s each
@pytest.mark.parametrize("rule", ["paper", "absolute"])
def test_percentiles_agree_with_a_naive_exact_route(
    ds: Dataset, survey: Survey, data_dir: Path, rule: str
) -> None:
    options = ScoreOptions(rule=rule)
    cube = model_cube(ds, survey)
    a = analyse(cube, ds, options, n_boot=0)
    means = scoring_means(cube, options)[:, 0]
    for m, name in enumerate(cube.models):
        ok = ~np.isnan(cube.ratings[m, 0])
        model = {}
        for i in np.flatnonzero(ok.any(axis=0)):
            vals = cube.ratings[m, 0][ok[:, i], i]
            model[(int(ds.portrait_id[i]), int(ds.option_id[i]))] = Fraction(
                int(vals.sum()), len(vals))
            assert float(model[(int(ds.portrait_id[i]), int(ds.option_id[i]))]) == \
                pytest.approx(means[m, i])
        for fam in FAMILIES:
            for d, dim in enumerate(FAMILY_DIMS[fam][:3] if rule == "absolute" else
                                    FAMILY_DIMS[fam]):
                want = naive_percentile(model, data_dir, ds, fam, dim, options)
                got = float(a.human_percentile[fam][m, 0, d])
                assert (np.isnan(got) if want is None else got == pytest.approx(want, abs=1e-9)), \
                    (name, fam, dim, got, want)


def test_a_model_answering_as_a_rater_ties_with_that_rater(ds: Dataset, survey: Survey) -> None:
    a = analyse(model_cube(ds, survey), ds, n_boot=0)
    pct = a.human_percentile["pvq"][2, 0]
    # A tie counts half: the percentile is never a whole multiple of 100/n for every group.
    assert np.isfinite(pct).all() and ((pct > 0) & (pct < 100)).all()


def test_percentiles_span_0_to_100(ds: Dataset, survey: Survey) -> None:
    lo = np.full((1, 1, 1, ds.n_items), np.nan)
    hi = lo.copy()
    w = item_weights(ds, "pvq") [:, 0] > 0  # Universalism's items
    union = (item_weights(ds, "pvq") != 0).any(axis=1)
    lo[..., union], hi[..., union] = 6.0, 1.0  # everything else at the top (bottom) ...
    lo[..., w], hi[..., w] = 1.0, 6.0  # ... and Universalism at the bottom (top)
    cube = RatingCube(["low", "high"], ["vanilla"], ["v1"], np.concatenate([lo, hi]),
                      np.asarray(ds.portrait_id), np.asarray(ds.option_id))
    pct = analyse(cube, ds, n_boot=0).human_percentile["pvq"][:, 0, 0]
    assert pct[0] < 5 and pct[1] > 95


def test_unrated_dimension_has_no_percentile(ds: Dataset) -> None:
    ratings = np.full((1, 1, 1, ds.n_items), np.nan)
    cube = RatingCube(["silent"], ["vanilla"], ["v1"], ratings, np.asarray(ds.portrait_id),
                      np.asarray(ds.option_id))
    a = analyse(cube, ds, n_boot=0)
    assert all(np.isnan(a.human_percentile[f]).all() for f in FAMILIES)
    assert a.human_note is None


def test_a_data_dir_without_the_survey_gives_null_percentiles_and_one_note(
    ds: Dataset, survey: Survey, data_dir: Path, tmp_path: Path
) -> None:
    for rel in (layout.TAGGED, *layout.CORRELATIONS.values()):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / rel, tmp_path / rel)
    bare = load_dataset(tmp_path)
    a = analyse(model_cube(bare, survey), bare, n_boot=0)
    assert all(np.isnan(a.human_percentile[f]).all() for f in FAMILIES)
    assert a.human_note is not None and "vpbatch data fetch" in a.human_note
    assert layout.SURVEY in a.human_note
