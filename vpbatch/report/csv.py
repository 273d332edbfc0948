"""CSV exports for pandas: the long score table and the per-version scores.

One row per (model, condition, family, dimension): tidy data, so
`pd.read_csv("scores_long.csv").pivot_table(...)` needs no reshaping. Missing = empty cell.
"""

from __future__ import annotations

import csv as _csv
from pathlib import Path

import numpy as np

from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS
from vpbatch.scoring.analysis import Analysis

__all__ = ["LONG_COLUMNS", "VERSION_COLUMNS", "write_long", "write_versions"]

LONG_COLUMNS = (
    "model", "condition", "family", "dimension", "score", "raw", "n_items", "ci_low", "ci_high",
    "delta", "delta_ci_low", "delta_ci_high", "version_spread", "human_percentile",
)
VERSION_COLUMNS = ("model", "condition", "version", "family", "dimension", "score")


def _num(v: float) -> str:
    # Six decimals keep the exact scores' precision without float noise; NaN -> empty cell.
    return "" if np.isnan(v) else f"{v:.6f}"


def write_long(a: Analysis, path: Path) -> Path:
    """scores_long.csv: every score with its interval, delta vs vanilla and version spread."""
    s = a.scores
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = _csv.writer(f)
        w.writerow(LONG_COLUMNS)
        for fam in FAMILIES:
            cols = (s.score[fam], s.raw[fam], a.ci_low[fam], a.ci_high[fam], a.deltas[fam],
                    a.delta_ci_low[fam], a.delta_ci_high[fam], a.version_spread[fam],
                    a.human_percentile[fam])
            n_items = np.asarray(s.n_items[fam])
            for m, model in enumerate(a.models):
                for c, cond in enumerate(a.conditions):
                    for d, dim in enumerate(FAMILY_DIMS[fam]):
                        v = [float(x[m, c, d]) for x in cols]
                        n = float(n_items[m, c, d])
                        w.writerow([model, cond, fam, dim, _num(v[0]), _num(v[1]),
                                    "" if np.isnan(n) else str(int(n)), *map(_num, v[2:])])
    return path


def write_versions(a: Analysis, path: Path) -> Path:
    """scores_by_version.csv: each prompt version scored on its own."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = _csv.writer(f)
        w.writerow(VERSION_COLUMNS)
        for fam in FAMILIES:
            vs = a.version_scores[fam]
            for m, model in enumerate(a.models):
                for c, cond in enumerate(a.conditions):
                    for v, ver in enumerate(a.versions):
                        for d, dim in enumerate(FAMILY_DIMS[fam]):
                            w.writerow([model, cond, ver, fam, dim, _num(float(vs[m, c, v, d]))])
    return path
