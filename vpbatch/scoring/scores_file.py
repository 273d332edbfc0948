"""A run's scores as a file and a table: RUN/scores.json and the paper's Table 2 layout."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS, PVQ, VANILLA
from vpbatch.errors import LogError
from vpbatch.log.rundir import open_run_dir
from vpbatch.scoring.analysis import CLUSTER, Analysis, analyse
from vpbatch.scoring.cube import RatingCube, cube_from_log
from vpbatch.scoring.reliability import describe_items
from vpbatch.scoring.scorer import ScoreOptions, Scores, scores_to_json
from vpbatch.scoring.trust import trust_to_json

__all__ = ["score_run", "format_table", "analysis_to_json"]

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


def _per_family(values: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {f: {d: _nan_to_none(float(values[f][j])) for j, d in enumerate(FAMILY_DIMS[f])}
            for f in FAMILIES if f in values}


def _median(a: Any) -> float | None:
    ok = np.asarray(a, dtype=np.float64)
    ok = ok[np.isfinite(ok)]
    return float(np.median(ok)) if ok.size else None


def analysis_to_json(a: Analysis, *, strict: bool = False) -> dict[str, Any]:
    """scores.json's document: per dimension score, raw, n_items, interval, human percentile;
    per model x condition the trust panel.

    models.<model>.<condition>.trust holds order_bias, order_item_rho, order_profile_rho (and
    its _ci_low/_ci_high), wording_profile_rho (and its interval), straightlining, rated_share,
    retest_item_rho and retest_profile_rho when jobs were repeated, and verdict (one of
    trust.VERDICTS); null where undefined. options.weak_min / replicate_min are its cut-offs.
    """
    o = a.options
    doc = scores_to_json(a.scores, {"ci_low": a.ci_low, "ci_high": a.ci_high,
                                    "human_percentile": a.human_percentile})
    doc["options"] = {"rule": o.rule, "threshold": o.threshold, "p_max": o.p_max,
                      "strict": strict, "weak_min": o.weak_min,
                      "replicate_min": o.replicate_min}
    if a.trust is not None:
        for model, per_cond in trust_to_json(a.trust).items():
            for cond, row in per_cond.items():
                # A pair whose answers were all unrated has no scores, but has a panel.
                doc["models"].setdefault(model, {}).setdefault(cond, {})["trust"] = row
    doc["bootstrap"] = {
        "kind": a.bootstrap, "n_boot": a.n_boot, "seed": a.seed,
        # Median over models and dimensions of the profile condition's width ratio.
        "design_effect": {f: _median(v) for f, v in a.design_effect.items()},
    }
    doc["human_percentile"] = {"note": a.human_note}
    doc["alpha"] = _per_family(a.alpha)
    doc["alpha_scoring_rule"] = _per_family(a.alpha_rule)
    doc["alpha_items"] = {"alpha": describe_items(None, o),
                          "alpha_scoring_rule": describe_items(o, o)}
    return doc


def score_run(
    run_dir: Path,
    options: ScoreOptions,
    *,
    strict: bool = False,
    data: str | Path | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    bootstrap: str = CLUSTER,
) -> tuple[dict[str, Any], Scores, RatingCube]:
    """Score a run dir and write RUN/scores.json; returns (the JSON, scores, cube)."""
    rd = open_run_dir(run_dir)
    if not rd.log_path.exists():
        raise LogError(f"{rd.path} has no log yet; run `vpbatch run` on it first")
    ds = load_dataset(data)
    cube = cube_from_log(rd.log_path, ds, strict=strict)
    a = analyse(cube, ds, options, n_boot=n_boot, seed=seed, bootstrap=bootstrap)
    doc = analysis_to_json(a, strict=strict)
    doc["answers"] = {"ok": cube.n_ok, "failed": cube.n_failed, "failed_by_model": cube.failures}
    doc["answer_modes"] = dict(cube.answer_modes)  # which mode's ratings each model's scores are
    tmp = rd.scores_path.with_name(rd.scores_path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(tmp, rd.scores_path)  # a reader never sees half a scores.json
    return doc, a.scores, cube


def _cell(x: float, width: int, sign: str = "+") -> str:
    return f"{'—' if math.isnan(x) else f'{x:{sign}.2f}':>{width}}"


def format_table(
    scores: Scores, alpha: dict[str, float] | None = None, modes: dict[str, str] | None = None
) -> str:
    """Centred PVQ scores, one row per model × condition, values as columns (Table 2).

    A model whose answers were not the paper's free text is marked "(choice)" ("(mixed)")."""
    cols = [_SHORT.get(d, d[:5]) for d in FAMILY_DIMS["pvq"]]
    mode = {m: (modes or {}).get(m, "text") for m in scores.models}
    names = {m: m if mode[m] == "text" else f"{m} ({mode[m]})" for m in scores.models}
    labels = [
        names[m] if c == VANILLA else f"{names[m]} [{c}]"
        for m in scores.models for c in scores.conditions
    ]
    left = max([len("model"), *map(len, labels)])
    lines = [f"{'model':<{left}} " + " ".join(f"{c:>6}" for c in cols)]
    pvq = scores.score["pvq"]
    n = sum(a.sum(axis=-1) for a in scores.n_items.values())  # (M, C) items that counted
    for mi, m in enumerate(scores.models):
        for ci, c in enumerate(scores.conditions):
            if not n[mi, ci]:
                continue  # this model never ran this condition
            label = names[m] if c == VANILLA else f"{names[m]} [{c}]"
            row = " ".join(_cell(float(v), 6) for v in pvq[mi, ci])
            lines.append(f"{label:<{left}} {row}")
    if alpha:
        row = " ".join(_cell(alpha.get(d, math.nan), 6, sign="-") for d in PVQ)
        lines.append(f"{'alpha':<{left}} {row}")
    return "\n".join(lines)
