"""Cronbach's alpha: hand-computed cases, and the paper's Table 1 from the recorded answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.reliability import alpha_by_dimension, cronbach_alpha


def test_alpha_hand_computed() -> None:
    # Item variances 1 and 1, totals (2, 5, 5) variance 3: alpha = 2 * (1 - 2/3) = 2/3.
    assert cronbach_alpha(np.array([[1, 1], [2, 3], [3, 2]])) == pytest.approx(2 / 3)


def test_identical_items_have_alpha_one() -> None:
    col = np.array([1.0, 3.0, 4.0, 6.0])
    assert cronbach_alpha(np.column_stack([col, col, col])) == pytest.approx(1.0)


def test_rows_with_a_missing_answer_are_left_out() -> None:
    m = np.array([[1, 1], [2, 3], [3, 2], [np.nan, 6]])
    assert cronbach_alpha(m) == pytest.approx(2 / 3)


def test_alpha_is_nan_when_it_is_undefined() -> None:
    assert math.isnan(cronbach_alpha(np.array([[1.0], [2.0], [3.0]])))  # one item
    assert math.isnan(cronbach_alpha(np.array([[1.0, 2.0]])))  # one respondent
    assert math.isnan(cronbach_alpha(np.full((3, 2), 4.0)))  # no variance at all


def test_alpha_refuses_a_non_matrix() -> None:
    with pytest.raises(ValueError, match="2-D"):
        cronbach_alpha(np.arange(5.0))


@pytest.mark.slow
def test_alpha_matches_paper_table1_within_001(
    official_cube: RatingCube, data_dir: Path, paper_dir: Path
) -> None:
    # Rows: each paper model × version; columns: the value's items with r > 0.3; raw answers.
    table1 = json.loads((paper_dir / "table1_cronbach_alpha.json").read_text())
    table2 = json.loads((paper_dir / "table2_values.json").read_text())
    models = [row["file_model"] for row in table2.values()]
    alpha = alpha_by_dimension(official_cube, load_dataset(data_dir), "pvq", models=models)
    off = {d: round(alpha[d] - table1[d], 4) for d in table1 if abs(alpha[d] - table1[d]) > 0.01}
    assert not off, f"alpha differs from Table 1 by more than 0.01: {off}"
