"""The human raters as arrays: each rater's item ratings and PVQ-21 / BFI-10 scores.

What the official files hold (commit 08e1fb7, checked by tests/test_survey.py):

- `survey/main/survey.json` is a list of 12 rater groups. A group maps portrait_id -> its 5
  responses, each `{"option_id", "data": [[rating 1..6, participant_id], ...]}`; every rater
  of a group rated every item of the group. 11 groups have 8 queries, one has 16: 104 in all.
- `value/main/value.json` maps participant_id -> {"pvq", "higher_pvq", "bfi"} scores; 569
  participants, 559 of whom appear in the survey (10 answered the questionnaires only).
- One participant id, P186, rated two groups (0 and 5) but has one questionnaire. Each
  (group, rater) is therefore its own row here: a rater is a respondent of a group.
- The pilot files (`survey/pilot`, `value/pilot`) ask other questions; nothing reads them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from vpbatch.benchmark import layout
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS
from vpbatch.errors import DataError

if TYPE_CHECKING:
    from vpbatch.benchmark.dataset import Dataset

__all__ = ["Survey", "SurveyMissing", "load_survey"]


class SurveyMissing(DataError):
    """The data root lacks the survey files (an older cache): human comparisons are off."""


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Survey:
    """One row per (group, rater); item columns in the Dataset's (portrait_id, option_id) order."""

    rater: tuple[str, ...]  # participant id of each row (P186 appears twice)
    group: np.ndarray  # (H,) int: the rater group of each row
    ratings: np.ndarray  # (H, I) float64: the row's rating of each item, NaN if not rated
    values: dict[str, np.ndarray]  # family -> (H, D) questionnaire scores, NaN if none
    has_values: np.ndarray  # (H,) bool: the rater has questionnaire scores
    group_items: np.ndarray  # (G, I) bool: the items each group was shown

    def __repr__(self) -> str:
        return f"Survey(rows={len(self.rater)}, groups={self.n_groups})"

    @property
    def n_groups(self) -> int:
        return int(self.group_items.shape[0])


def _read(root: Path, rel: str) -> Any:
    path = root / rel
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise SurveyMissing(
            f"{path} is missing, so models cannot be placed among the human raters; "
            "run `vpbatch data fetch` to add the survey files"
        ) from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise DataError(
            f"{path} cannot be read ({exc}); run `vpbatch data verify`, then `vpbatch data fetch`"
        ) from exc


def _shape_error(root: Path, rel: str, exc: Exception) -> DataError:
    return DataError(
        f"{root / rel} does not have the expected layout ({type(exc).__name__}: {exc}); "
        "re-fetch it with `vpbatch data fetch`"
    )


@functools.lru_cache(maxsize=4)
def load_survey(ds: Dataset) -> Survey:
    """The survey beside the dataset (same data root); SurveyMissing if its files are absent."""
    root = ds.root
    groups, scores = _read(root, layout.SURVEY), _read(root, layout.VALUE_SCORES)
    rows: dict[tuple[int, str], int] = {}  # (group, participant) -> row
    cells: list[tuple[int, int, float]] = []  # (row, item, rating)
    group_items = np.zeros((len(groups), ds.n_items), dtype=bool)
    try:
        for g, group in enumerate(groups):
            for pid, options in group.items():
                for opt in options:
                    item = ds.index(int(pid), int(opt["option_id"]))
                    group_items[g, item] = True
                    for rating, who in opt["data"]:
                        row = rows.setdefault((g, str(who)), len(rows))
                        cells.append((row, item, float(rating)))
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise _shape_error(root, layout.SURVEY, exc) from exc
    ratings = np.full((len(rows), ds.n_items), np.nan)
    r, i, v = (np.array(c) for c in zip(*cells, strict=True)) if cells else ([], [], [])
    ratings[np.asarray(r, np.intp), np.asarray(i, np.intp)] = v
    raters = tuple(who for _, who in rows)
    values = {f: np.full((len(rows), len(FAMILY_DIMS[f])), np.nan) for f in FAMILIES}
    try:
        for k, who in enumerate(raters):
            for fam in FAMILIES:
                got = (scores.get(who) or {}).get(fam) or {}
                values[fam][k] = [float(got.get(d, np.nan)) for d in FAMILY_DIMS[fam]]
    except (TypeError, ValueError, AttributeError) as exc:
        raise _shape_error(root, layout.VALUE_SCORES, exc) from exc
    for a in (ratings, group_items, *values.values()):
        a.setflags(write=False)  # cached and shared
    return Survey(
        rater=raters,
        group=np.array([g for g, _ in rows], dtype=np.intp),
        ratings=ratings,
        values=values,
        has_values=np.array([who in scores for who in raters], dtype=bool),
        group_items=group_items,
    )
