"""The trust panel's fast bootstrap equals the straightforward one: every resample scored by
boot_sums, its profiles rounded and correlated by spearman, pair by pair."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.kernel import Kernel, build_kernel
from vpbatch.scoring.ranks import nanmean, spearman
from vpbatch.scoring.resample import (
    boot_sums,
    draw_counts,
    group_items,
    grouped_sums,
    nan_percentile,
    query_clusters,
)
from vpbatch.scoring.scorer import ScoreOptions
from vpbatch.scoring.trust import INTERVAL_FIELDS, _pairs, _profile_rows, _pvq_kernel, trust_panel
from vpbatch.scoring.trust_boot import profile_pairs

F64 = npt.NDArray[np.float64]
N_BOOT = 300


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def _cube(ds: Dataset, seed: int = 1) -> RatingCube:
    """3 models x 2 conditions with the cases that make ranking hard: a few unrated items,
    a dimension never rated (undefined scores), a straightliner (constant profiles), tied
    scores, and a cell that never asked v3 in either order."""
    rng = np.random.default_rng(seed)
    shape = (3, 2, len(VERSIONS), ds.n_items)
    r = np.clip(np.round(rng.normal(3.5, 1.2, shape)), 1, 6)
    r[rng.random(shape) < 0.01] = np.nan
    r[1, 0] = 4.0  # straightlining: every score 0, a constant profile
    r[1, 1] = 4.0  # nearly: many tied scores
    r[1, 1, :, ::7] = 5.0
    r[2, 1, 4:] = np.nan  # v3 and v3_reversed not asked
    kern = _pvq_kernel(ds, ScoreOptions())
    r[0, 1, 2, kern.weight[:, 0] > 0] = np.nan  # v2 never rates the first value
    return RatingCube(["a", "b", "c"], ["vanilla", "persona:x"], list(VERSIONS), r,
                      ds.portrait_id, ds.option_id)


def _straightforward(x: F64, kern: Kernel, k: int, counts: npt.NDArray[np.float32]
                     ) -> tuple[dict[str, F64], dict[str, F64]]:
    """Every resample's profiles from boot_sums, rounded as the point estimates are, and
    each pair's rho by spearman: the definition, without the fast path's shortcuts."""
    m, c, s, i = x.shape
    d = len(kern.dim_cols)
    num, den = boot_sums(x.reshape(-1, i), counts, kern)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = (np.divide(num[:, :d], den[:, :d], dtype=np.float64)
                 - np.divide(num[:, d:], den[:, d:], dtype=np.float64))
    p = np.round(np.moveaxis(draws.reshape(m, c, s, d, -1), -1, 2), 9)  # (M, C, B, S, D)
    lo, hi = {}, {}
    for name, pairs in zip(INTERVAL_FIELDS, profile_pairs(k), strict=True):
        rho = np.stack([spearman(p[..., a, :], p[..., b, :]) for a, b in pairs], axis=-1) \
            if pairs else np.full((m, c, counts.shape[1], 1), np.nan)
        lo[name], hi[name] = nan_percentile(nanmean(rho, axis=-1), (2.5, 97.5))
    return lo, hi


def test_grouped_sums_equal_boot_sums_to_the_bit_when_the_means_are_halves(ds: Dataset) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(2, 13, (40, ds.n_items)) / 2.0
    x[rng.random(x.shape) < 0.05] = np.nan
    counts = draw_counts(ds.n_items, N_BOOT, 3, query_clusters(ds))
    for rule in ("paper", "absolute"):  # "absolute" reverse-scores: the 7*w terms
        kern = build_kernel(ds, ScoreOptions(rule=rule))
        num, den = boot_sums(x, counts, kern)
        fast_num, fast_den = grouped_sums(x, group_items(counts, kern))
        assert np.array_equal(fast_num, np.moveaxis(num, 1, 0))
        assert np.array_equal(fast_den, np.moveaxis(den, 1, 0))


@pytest.mark.parametrize("repeats", [False, True], ids=["halves", "repeats-averaged"])
def test_the_fast_intervals_equal_the_straightforward_bootstrap(ds: Dataset,
                                                                repeats: bool) -> None:
    cube = _cube(ds)
    if repeats:  # means of three answers: not halves, so the sums come from boot_sums
        cube.ratings[0, 0, 0, :50] = np.round(cube.ratings[0, 0, 0, :50] * 3 + 1) / 3
    options = ScoreOptions()
    x, k = _profile_rows(cube, options, _pairs(list(cube.versions)))
    counts = draw_counts(ds.n_items, N_BOOT, 5, query_clusters(ds))
    lo, hi = _straightforward(x, _pvq_kernel(ds, options), k, counts)
    trust = trust_panel(cube, ds, options, n_boot=N_BOOT, seed=5)
    for name in INTERVAL_FIELDS:
        assert np.array_equal(trust.ci_low[name], lo[name], equal_nan=True), name
        assert np.array_equal(trust.ci_high[name], hi[name], equal_nan=True), name
    assert np.isnan(trust.ci_low["order_profile_rho"][1, 0])  # the straightliner's
    assert np.isfinite(trust.ci_low["order_profile_rho"]).sum() == 5
