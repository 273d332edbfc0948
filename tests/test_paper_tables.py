"""The recorded answers, imported and scored, reproduce the paper's Tables 2 and 3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.dims import BFI, PVQ
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.scorer import ScoreOptions, Scores, score_cube

pytestmark = pytest.mark.slow

# The one cell the paper's stated rule cannot give: the authors' averaging took each item's
# correlations from its v1 record, and llama-3.1-8b's v1 answer to (2011, 1) failed, so that
# item counted nowhere. Every valid answer counts here, which moves the cell from 0.03 to 0.02.
EXCEPTION = ("llama-3.1-8b-instruct", "Stimulation")


def _table(paper_dir: Path, name: str) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = json.loads((paper_dir / name).read_text())
    return table


def _scores(cube: RatingCube, data_dir: Path, rule: str = "paper") -> Scores:
    return score_cube(cube, load_dataset(data_dir), ScoreOptions(rule=rule))


def _same_at_2_decimals(ours: float, printed: float) -> bool:
    """The printed value is ours rounded to two decimals (either way at an exact half)."""
    return abs(ours - printed) <= 0.005 + 1e-9


def _pvq_cells(scores: Scores, table: dict[str, dict[str, Any]]) -> dict[tuple[str, str], Any]:
    out = {}
    for row in table.values():
        mi = scores.models.index(row["file_model"])
        for j, dim in enumerate(PVQ):
            out[(row["file_model"], dim)] = (float(scores.score["pvq"][mi, 0, j]), row[dim])
    return out


def test_table2_all_270_cells_at_2_decimals_but_the_documented_one(
    official_cube: RatingCube, data_dir: Path, paper_dir: Path
) -> None:
    cells = _pvq_cells(_scores(official_cube, data_dir), _table(paper_dir, "table2_values.json"))
    assert len(cells) == 270
    off = {k: v for k, v in cells.items() if not _same_at_2_decimals(*v)}
    assert off == {EXCEPTION: off.get(EXCEPTION)}, f"cells differing from Table 2: {off}"


def test_table2_documented_exception_is_002_against_the_printed_003(
    official_cube: RatingCube, data_dir: Path, paper_dir: Path
) -> None:
    cells = _pvq_cells(_scores(official_cube, data_dir), _table(paper_dir, "table2_values.json"))
    ours, printed = cells[EXCEPTION]
    assert (round(ours, 2), printed) == (0.02, 0.03)


def test_table2_documented_exception_comes_back_under_the_authors_rule(
    official_cube: RatingCube, data_dir: Path, paper_dir: Path
) -> None:
    # The authors' rule drops items whose v1 record failed without its correlations.
    scores = _scores(official_cube, data_dir, "authors")
    cells = _pvq_cells(scores, _table(paper_dir, "table2_values.json"))
    assert _same_at_2_decimals(*cells[EXCEPTION])


def test_table3_all_135_cells_at_2_decimals(
    official_cube: RatingCube, data_dir: Path, paper_dir: Path
) -> None:
    # The paper prints BFI as the raw mean rating (1-6) times 5/6.
    scores = _scores(official_cube, data_dir)
    cells = {}
    for row in _table(paper_dir, "table3_bfi.json").values():
        mi = scores.models.index(row["file_model"])
        for j, dim in enumerate(BFI):
            cells[(row["file_model"], dim)] = (float(scores.raw["bfi"][mi, 0, j]) * 5 / 6, row[dim])
    assert len(cells) == 135
    off = {k: v for k, v in cells.items() if not _same_at_2_decimals(*v)}
    assert not off, f"cells differing from Table 3: {off}"


def test_every_paper_model_has_recorded_answers(
    official_cube: RatingCube, paper_dir: Path
) -> None:
    names = [row["file_model"] for row in _table(paper_dir, "table2_values.json").values()]
    assert len(names) == 27 and set(names) <= set(official_cube.models)
    assert len(official_cube.models) == 33
    assert not np.isnan(official_cube.ratings).all(axis=(1, 2, 3)).any()
