"""The survey as arrays: 12 rater groups, each rater's ratings of its group's items."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.survey import load_survey


def test_twelve_groups_cover_the_104_queries_once(data_dir: Path) -> None:
    ds = load_dataset(data_dir)
    s = load_survey(ds)
    assert s.n_groups == 12
    assert (s.group_items.sum(axis=0) == 1).all()  # every item in exactly one group
    assert sorted(s.group_items.sum(axis=1).tolist()) == [40] * 11 + [80]


def test_each_rater_rated_every_item_of_their_group_and_nothing_else(data_dir: Path) -> None:
    s = load_survey(load_dataset(data_dir))
    rated = ~np.isnan(s.ratings)
    np.testing.assert_array_equal(rated, s.group_items[s.group])
    assert np.nanmin(s.ratings) == 1 and np.nanmax(s.ratings) == 6


def test_a_rater_in_two_groups_is_a_respondent_of_each(data_dir: Path) -> None:
    s = load_survey(load_dataset(data_dir))
    assert len(s.rater) == 560 and len(set(s.rater)) == 559
    rows = [k for k, r in enumerate(s.rater) if r == "P186"]
    assert sorted(s.group[rows].tolist()) == [0, 5]
    assert s.has_values.all()
    for fam, v in s.values.items():
        assert np.isfinite(v).all(), fam
        np.testing.assert_array_equal(v[rows[0]], v[rows[1]])  # one questionnaire
