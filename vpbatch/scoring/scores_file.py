"""A run's scores as a file and a table: RUN/scores.json and the paper's Table 2 layout."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import orjson

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.dims import FAMILY_DIMS, PVQ, VANILLA
from vpbatch.errors import LogError
from vpbatch.log.rundir import open_run_dir
from vpbatch.scoring.cube import RatingCube, cube_from_log
from vpbatch.scoring.reliability import alpha_by_dimension
from vpbatch.scoring.scorer import ScoreOptions, Scores, score_cube, scores_to_json

__all__ = ["score_run", "format_table"]

# Column heads for the Table 2 layout: short enough that ten values fit in 100 columns.
_SHORT = {
    "Universalism": "Univ",
    "Benevolence": "Bene",
    "Conformity": "Conf",
    "Tradition": "Trad",
    "Security": "Secu",
    "Power": "Powr",
    "Achievement": "Achv",
    "Hedonism": "Hedo",
    "Stimulation": "Stim",
    "Self_Direction": "SelfD",
}


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def score_run(
    run_dir: Path, options: ScoreOptions, *, strict: bool = False, data: str | None = None
) -> tuple[dict[str, Any], Scores, RatingCube]:
    """Score a run dir and write RUN/scores.json; returns (the JSON, scores, cube)."""
    rd = open_run_dir(run_dir)
    if not rd.log_path.exists():
        raise LogError(f"{rd.path} has no log yet; run `vpbatch run` on it first")
    ds = load_dataset(data)
    cube = cube_from_log(rd.log_path, ds, strict=strict)
    scores = score_cube(cube, ds, options)
    alpha = alpha_by_dimension(cube, ds, "pvq", threshold=options.threshold)
    doc = scores_to_json(scores)
    doc["options"] = {
        "rule": options.rule,
        "threshold": options.threshold,
        "p_max": options.p_max,
        "strict": strict,
    }
    doc["answers"] = {"ok": cube.n_ok, "failed": cube.n_failed, "failed_by_model": cube.failures}
    doc["alpha"] = {"pvq": {k: _nan_to_none(v) for k, v in alpha.items()}}
    tmp = rd.scores_path.with_name(rd.scores_path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(tmp, rd.scores_path)  # a reader never sees half a scores.json
    return doc, scores, cube


def _cell(x: float, width: int, sign: str = "+") -> str:
    return f"{'—' if math.isnan(x) else f'{x:{sign}.2f}':>{width}}"


def format_table(scores: Scores, alpha: dict[str, float] | None = None) -> str:
    """Centred PVQ scores, one row per model × condition, values as columns (Table 2)."""
    cols = [_SHORT.get(d, d[:5]) for d in FAMILY_DIMS["pvq"]]
    labels = [
        m if c == VANILLA else f"{m} [{c}]" for m in scores.models for c in scores.conditions
    ]
    left = max([len("model"), *map(len, labels)])
    lines = [f"{'model':<{left}} " + " ".join(f"{c:>6}" for c in cols)]
    pvq = scores.score["pvq"]
    n = sum(a.sum(axis=-1) for a in scores.n_items.values())  # (M, C) items that counted
    for mi, m in enumerate(scores.models):
        for ci, c in enumerate(scores.conditions):
            if not n[mi, ci]:
                continue  # this model never ran this condition
            label = m if c == VANILLA else f"{m} [{c}]"
            row = " ".join(_cell(float(v), 6) for v in pvq[mi, ci])
            lines.append(f"{label:<{left}} {row}")
    if alpha:
        row = " ".join(_cell(alpha.get(d, math.nan), 6, sign="-") for d in PVQ)
        lines.append(f"{'alpha':<{left}} {row}")
    return "\n".join(lines)
