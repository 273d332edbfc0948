"""One-pass analysis: profiles, deltas, steering, bootstrap intervals, version spread, humans."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import FAMILIES, PVQ, VERSIONS
from vpbatch.errors import ConfigError
from vpbatch.scoring.analysis import Analysis, analyse, human_comparison
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.human import load_human_reference, match_persona
from vpbatch.scoring.resample import draw_counts, nan_percentile, query_clusters
from vpbatch.scoring.scorer import ScoreOptions, Scores, item_means, item_weights

CONDITIONS = ["vanilla", "persona:gender=male", "persona:gender=female", "steer:Power",
              "steer:Universalism"]


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def synth_cube(
    ds: Dataset,
    profiles: np.ndarray,
    *,
    conditions: list[str] = CONDITIONS,
    versions: tuple[str, ...] = VERSIONS,
    noise: float = 0.7,
    seed: int = 0,
) -> RatingCube:
    """A respondent whose ratings follow latent PVQ profiles (M, C, 10), rounded to 1..6.

    An item's expected rating is 3.5 plus the mean latent score of the values it measures.
    """
    rng = np.random.default_rng(seed)
    w = (item_weights(ds, "pvq") > 0).astype(np.float64)
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    lin = 3.5 + 1.5 * np.einsum("id,mcd->mci", w, profiles)
    m, c, i = lin.shape
    noisy = lin[:, :, None, :] + rng.normal(0, noise, (m, c, len(versions), i))
    ratings = np.clip(np.round(noisy), 1, 6)
    return RatingCube([f"m{k}" for k in range(m)], list(conditions), list(versions), ratings,
                      np.asarray(ds.portrait_id), np.asarray(ds.option_id))


def latent(n_models: int, seed: int = 1, conditions: list[str] = CONDITIONS) -> np.ndarray:
    """Profiles per (model, condition): a base per model, steering adds +1 to its value."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 0.6, (n_models, 1, 10))
    prof = np.repeat(base, len(conditions), axis=1)
    for c, cond in enumerate(conditions):
        if cond.startswith("steer:"):
            prof[:, c, PVQ.index(cond.removeprefix("steer:"))] += 1.0
        elif cond == "persona:gender=male":
            prof[:, c, PVQ.index("Power")] += 0.4
    return prof


@pytest.mark.parametrize("rule", ["paper", "authors", "absolute"])
def test_each_version_scored_alone_equals_the_exact_scorer(ds: Dataset, rule: str) -> None:
    cube = synth_cube(ds, latent(2), versions=("v1",))
    cube.ratings[0, 1, 0, :40] = np.nan  # missing answers must be handled alike
    a = analyse(cube, ds, ScoreOptions(rule=rule), n_boot=0)
    for fam in FAMILIES:
        np.testing.assert_allclose(a.version_scores[fam][:, :, 0], a.scores.score[fam],
                                   atol=1e-5, equal_nan=True)


def test_a_known_profile_comes_back_out(ds: Dataset) -> None:
    prof = latent(3)
    a = analyse(synth_cube(ds, prof), ds, n_boot=0)
    got = a.scores.score["pvq"][:, 0]
    want = prof[:, 0] - prof[:, 0].mean(axis=1, keepdims=True)
    for m in range(3):
        assert np.corrcoef(got[m], want[m])[0, 1] > 0.9


def test_interval_brackets_the_point_estimate(ds: Dataset) -> None:
    a = analyse(synth_cube(ds, latent(2)), ds, n_boot=400)
    for fam in FAMILIES:
        s, lo, hi = a.scores.score[fam], a.ci_low[fam], a.ci_high[fam]
        assert np.isfinite(lo).all() and np.isfinite(hi).all()
        assert (lo <= s + 1e-6).all() and (s <= hi + 1e-6).all()
        assert (hi - lo > 0).all()


def test_authors_rule_bootstraps_the_items_the_authors_kept(ds: Dataset) -> None:
    # v1 failed everywhere, but its records kept their correlation lists (as claude-3-5-haiku's
    # and o1-mini's did): the authors' rule scores every item, and so must the intervals.
    cube = synth_cube(ds, latent(1))
    cube.ratings[:, :, 0, :] = np.nan
    cube.authors_dropped = np.zeros(cube.ratings.shape[:2] + cube.ratings.shape[3:], bool)
    a = analyse(cube, ds, ScoreOptions(rule="authors"), n_boot=200)
    for fam in FAMILIES:
        assert np.isfinite(a.scores.score[fam]).all()
        assert np.isfinite(a.ci_low[fam]).all() and np.isfinite(a.ci_high[fam]).all()


@pytest.mark.parametrize("kind", ["cluster", "item"])
def test_bootstrap_matches_a_naive_per_resample_loop(ds: Dataset, kind: str) -> None:
    """The one-GEMM bootstrap agrees with resampling (queries or items) and re-scoring."""
    cube = synth_cube(ds, latent(1, conditions=["vanilla"]), conditions=["vanilla"])
    # 104 queries make noisier percentiles than 520 items: more draws keep both within 0.04.
    n = 2000 if kind == "item" else 8000
    a = analyse(cube, ds, n_boot=n, seed=3, bootstrap=kind)
    x = item_means(cube)[0, 0]
    w = np.asarray(item_weights(ds, "pvq", ScoreOptions())) > 0
    union = np.asarray(w.any(axis=1))
    queries = sorted(set(ds.portrait_id.tolist()))
    items_of = {q: np.flatnonzero(ds.portrait_id == q) for q in queries}
    rng = np.random.default_rng(99)
    draws = []
    for _ in range(n):
        if kind == "item":
            idx = rng.integers(0, len(x), len(x))
        else:  # draw 104 queries with replacement, each with all its responses
            picked = rng.integers(0, len(queries), len(queries))
            idx = np.concatenate([items_of[queries[q]] for q in picked])
        xs, ws, us = x[idx], w[idx], union[idx]
        fam = xs[us].mean()
        draws.append([xs[ws[:, d]].mean() - fam if ws[:, d].any() else np.nan
                      for d in range(w.shape[1])])
    lo, hi = np.nanpercentile(np.array(draws), [2.5, 97.5], axis=0)
    np.testing.assert_allclose(a.ci_low["pvq"][0, 0], lo, atol=0.04)
    np.testing.assert_allclose(a.ci_high["pvq"][0, 0], hi, atol=0.04)


def test_cluster_resamples_draw_whole_queries(ds: Dataset) -> None:
    clusters = query_clusters(ds)
    assert clusters.max() + 1 == 104 and np.bincount(clusters).tolist() == [5] * 104
    counts = draw_counts(ds.n_items, 50, 7, clusters)  # (I, B)
    # The 5 responses of a query are drawn together, and 104 queries are drawn in all.
    for q in range(104):
        block = counts[clusters == q]
        assert (block == block[0]).all()
    np.testing.assert_array_equal(counts.sum(axis=0), 520)


def test_design_effect_is_the_ratio_of_the_two_bootstraps_widths(ds: Dataset) -> None:
    cube = synth_cube(ds, latent(2))
    a = analyse(cube, ds, n_boot=300)
    both = {k: analyse(cube, ds, n_boot=300, bootstrap=k) for k in ("cluster", "item")}
    w = {k: (v.ci_high["bfi"] - v.ci_low["bfi"])[:, 0] for k, v in both.items()}
    np.testing.assert_allclose(a.design_effect["bfi"], w["cluster"] / w["item"])
    assert a.bootstrap == "cluster"
    np.testing.assert_array_equal(a.ci_low["pvq"], both["cluster"].ci_low["pvq"])


def test_delta_intervals_are_paired_on_the_same_resampled_queries(ds: Dataset) -> None:
    # A condition equal to vanilla but for one value: every resample's delta is 0 elsewhere.
    cube = synth_cube(ds, latent(1))
    cube.ratings[:, 1] = cube.ratings[:, 0]
    a = analyse(cube, ds, n_boot=300)
    np.testing.assert_allclose(a.delta_ci_low["pvq"][0, 1], 0.0, atol=1e-6)
    np.testing.assert_allclose(a.delta_ci_high["pvq"][0, 1], 0.0, atol=1e-6)


def test_an_unknown_bootstrap_is_refused(ds: Dataset) -> None:
    with pytest.raises(ConfigError, match="cluster, item"):
        analyse(synth_cube(ds, latent(1)), ds, n_boot=10, bootstrap="jackknife")


def test_same_seed_gives_the_same_intervals(ds: Dataset) -> None:
    cube = synth_cube(ds, latent(1))
    a, b = analyse(cube, ds, n_boot=200, seed=5), analyse(cube, ds, n_boot=200, seed=5)
    np.testing.assert_array_equal(a.ci_low["bfi"], b.ci_low["bfi"])


def test_nan_percentile_ignores_missing_draws() -> None:
    draws = np.array([[1.0, 2.0, 3.0, np.nan], [np.nan, np.nan, 5.0, np.nan]])
    lo, mid = nan_percentile(draws, (0.0, 50.0))
    np.testing.assert_allclose(lo, [1.0, 5.0])
    np.testing.assert_allclose(mid, [2.0, 5.0])
    both = np.full((1, 3), np.nan)
    assert np.isnan(nan_percentile(both, (50.0,))[0]).all()


def test_deltas_are_condition_minus_vanilla(ds: Dataset) -> None:
    a = analyse(synth_cube(ds, latent(2)), ds, n_boot=50)
    for fam in FAMILIES:
        s = a.scores.score[fam]
        np.testing.assert_allclose(a.deltas[fam], s - s[:, :1])
        assert np.isnan(a.delta_ci_low[fam][:, 0]).all()  # vanilla has no delta interval
        assert (a.delta_ci_low[fam][:, 1:] <= a.deltas[fam][:, 1:] + 1e-6).all()


def test_persona_deltas_lists_each_persona_of_a_model(ds: Dataset) -> None:
    a = analyse(synth_cube(ds, latent(2)), ds, n_boot=0)
    conds, d = a.persona_deltas("m1", "bfi")
    assert conds == ["persona:gender=male", "persona:gender=female"] and d.shape == (2, 5)
    np.testing.assert_array_equal(d[1], a.delta("m1", "persona:gender=female", "bfi"))


def test_no_vanilla_means_no_deltas(ds: Dataset) -> None:
    conds = ["steer:Power"]
    a = analyse(synth_cube(ds, latent(1, conditions=conds), conditions=conds), ds, n_boot=20)
    assert np.isnan(a.deltas["pvq"]).all()
    assert np.isnan(a.steering["m0"]).all()


def test_steering_matrix_rows_are_the_steered_values(ds: Dataset) -> None:
    a = analyse(synth_cube(ds, latent(2), noise=0.3), ds, n_boot=0)
    mat = a.steering["m1"]
    assert mat.shape == (10, 10)
    for value in ("Power", "Universalism"):
        r = PVQ.index(value)
        np.testing.assert_allclose(mat[r], a.delta("m1", f"steer:{value}"))
        assert int(np.argmax(mat[r])) == r  # the +1 shift lands on the diagonal
    unsteered = [PVQ.index(v) for v in PVQ if v not in ("Power", "Universalism")]
    assert np.isnan(mat[unsteered]).all()


def test_version_spread_is_zero_when_every_version_answers_alike(ds: Dataset) -> None:
    cube = synth_cube(ds, latent(1))
    cube.ratings[:] = cube.ratings[:, :, :1, :]
    a = analyse(cube, ds, n_boot=0)
    np.testing.assert_allclose(a.version_spread["pvq"], 0.0, atol=1e-6)


def test_version_spread_is_the_sd_across_versions_ignoring_a_missing_one(ds: Dataset) -> None:
    cube = synth_cube(ds, latent(1))
    cube.ratings[0, 0, 2] = np.nan  # v2 never answered under vanilla
    a = analyse(cube, ds, n_boot=0)
    vs = a.version_scores["pvq"][0, 0]
    assert np.isnan(vs[2]).all()
    np.testing.assert_allclose(a.version_spread["pvq"][0, 0],
                               np.std(np.delete(vs, 2, axis=0), axis=0), atol=1e-9)


def test_alpha_is_reported_for_every_dimension(ds: Dataset) -> None:
    a = analyse(synth_cube(ds, latent(4), noise=0.4), ds, n_boot=0)
    assert {f: a.alpha[f].shape for f in FAMILIES} == {"pvq": (10,), "higher_pvq": (4,),
                                                       "bfi": (5,)}
    assert np.isfinite(a.alpha["pvq"]).all()


# --- the human reference -------------------------------------------------------------


def test_human_reference_ships_the_papers_tables_4_to_7(paper_dir: Path) -> None:
    paper = json.loads((paper_dir / "persona_steering_tables.json").read_text("utf-8"))
    ref = load_human_reference()
    assert list(ref) == ["gender", "age", "political", "education"]
    for name, group in ref.items():
        rows = paper["persona_deltas"][name]["human"]
        for k, member in enumerate(group.members):
            assert group.deltas[k].tolist() == [rows[member][d] for d in PVQ]
    # The paper's own Male-Female row is the difference of its member rows (to rounding).
    gap = [paper["persona_deltas"]["gender"]["human"]["Male-Female"][d] for d in PVQ]
    np.testing.assert_allclose(ref["gender"].gap(), gap, atol=0.011)


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("gender=female", ("gender", "Female")),
        ("politics=right-wing", ("political", "Right-wing")),
        ("age=60-79", ("age", "60-79")),
        ("education=less than high school", ("education", "<Highschool")),
        ("education=master's degree", ("education", "Master\u2019s")),
        ("religion=hindu", None),
    ],
)
def test_persona_names_map_onto_the_papers_rows(persona: str, expected: object) -> None:
    assert match_persona(persona) == expected


def test_paper_keys_from_the_persona_config_win_over_the_name() -> None:
    hit = match_persona("schooling=ma", paper_group="education", paper_value="Master\u2019s")
    assert hit == ("education", "Master\u2019s")


def _analysis_from_rows(model: str, rows: dict[str, list[float]]) -> Analysis:
    """An Analysis whose persona deltas are given rows (vanilla = 0), for comparisons."""
    conds = ["vanilla", *rows]
    pvq = np.zeros((1, len(conds), 10))
    for c, cond in enumerate(conds[1:], 1):
        pvq[0, c] = rows[cond]
    score = {"pvq": pvq, "higher_pvq": np.zeros((1, len(conds), 4)),
             "bfi": np.zeros((1, len(conds), 5))}
    empty = {f: np.full_like(v, np.nan) for f, v in score.items()}
    return Analysis(
        scores=Scores([model], conds, score, score, {f: np.ones_like(v) for f, v in
                                                     score.items()}),
        versions=("v1",), ci_low=empty, ci_high=empty, deltas=score, delta_ci_low=empty,
        delta_ci_high=empty, version_scores={f: v[:, :, None] for f, v in score.items()},
        version_spread=empty, alpha={f: np.full(v.shape[-1], np.nan) for f, v in score.items()},
        steering={model: np.full((10, 10), np.nan)},
    )


def test_gpt4o_rows_reproduce_the_papers_gaps_and_exaggeration(paper_dir: Path) -> None:
    tables = json.loads((paper_dir / "persona_steering_tables.json").read_text("utf-8"))
    paper = tables["persona_deltas"]
    names = {"Male": "gender=male", "Female": "gender=female", "Left-wing": "politics=left-wing",
             "Centered": "politics=centered", "Right-wing": "politics=right-wing"}
    rows = {f"persona:{names[k]}": [v[d] for d in PVQ]
            for g in ("gender", "political") for k, v in paper[g]["gpt-4o"].items() if k in names}
    comps = {c.group: c for c in human_comparison(_analysis_from_rows("gpt-4o", rows), "gpt-4o")}
    assert set(comps) == {"gender", "political"}
    g = comps["gender"]
    assert g.members == ["Male", "Female"] and g.model_gap is not None
    np.testing.assert_allclose(g.model_gap, [paper["gender"]["gpt-4o"]["Male-Female"][d]
                                             for d in PVQ], atol=0.011)
    # Mean |gap|: GPT-4o 1.97/10 against humans 1.15/10 (paper Table 4).
    assert g.exaggeration == pytest.approx(1.97 / 1.15, abs=0.02)
    # Left - Right: GPT-4o 3.51/10 against humans 1.88/10 (paper Table 6).
    assert comps["political"].exaggeration == pytest.approx(3.51 / 1.88, abs=0.02)
    assert -1 <= comps["political"].correlation <= 1


def test_a_group_with_one_member_has_no_gap_or_centred_correlation() -> None:
    a = _analysis_from_rows("m", {"persona:gender=male": [0.1] * 10})
    (g,) = human_comparison(a, "m")
    assert g.model_gap is None and np.isnan(g.exaggeration) and np.isnan(g.correlation)


def test_personas_without_human_data_are_left_out() -> None:
    a = _analysis_from_rows("m", {"persona:religion=hindu": [0.1] * 10})
    assert human_comparison(a, "m") == []
