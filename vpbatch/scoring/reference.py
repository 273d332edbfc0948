"""The paper's 33 recorded models as reference scores, computed once from their outputs.

`vpbatch report RUN --reference paper` sets a newly measured model among the models the
authors recorded. Their vanilla scores come from the recorded outputs in the data root (the
same import and scorer that reproduce the paper's Table 2), and are cached as JSON beside the
fetched data, keyed by the scoring options, so only the first report pays the ~10 s import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import orjson

from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import Dataset
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS, VANILLA
from vpbatch.errors import DataError
from vpbatch.scoring.scorer import ScoreOptions

__all__ = ["REFERENCES", "Reference", "paper_reference", "cache_path"]

REFERENCES = ("paper",)
# Bump when the scores a cached file holds would change (the scorer or the import did).
_FORMAT = 1

Reference = dict[str, dict[str, np.ndarray]]  # model -> family -> (D,) centred vanilla scores


def cache_path(options: ScoreOptions) -> Path:
    """Where the reference scores for these options are cached."""
    key = f"paper-v{_FORMAT}-{options.rule}-{options.threshold:g}-{options.p_max:g}.json"
    return layout.cache_dir() / "reference" / key


def _compute(ds: Dataset, options: ScoreOptions) -> Reference:
    from vpbatch.log.importer import import_official
    from vpbatch.scoring.cube import cube_from_log
    from vpbatch.scoring.scorer import score_cube

    outputs = ds.root / layout.OUTPUTS
    if not outputs.is_dir():
        raise DataError(
            f"--reference paper needs the authors' recorded outputs, and {outputs} is missing; "
            "run `vpbatch data fetch --with-outputs` (or `make data`)"
        )
    with tempfile.TemporaryDirectory(prefix="vpbatch-reference-") as tmp:
        import_official(outputs, Path(tmp))
        cube = cube_from_log(Path(tmp) / "log.jsonl", ds)
    scores = score_cube(cube, ds, options)
    c = scores.conditions.index(VANILLA)
    return {m: {f: np.asarray(scores.score[f][i, c], dtype=np.float64) for f in FAMILIES}
            for i, m in enumerate(scores.models)}


def _read(path: Path) -> Reference | None:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None  # absent or damaged: computed again
    return {m: {f: np.array([np.nan if x is None else x for x in fam[f]], dtype=np.float64)
                for f in FAMILIES} for m, fam in doc["models"].items()}


def _write(path: Path, ref: Reference) -> None:
    doc = {"families": {f: list(FAMILY_DIMS[f]) for f in FAMILIES},
           "models": {m: {f: [None if np.isnan(x) else float(x) for x in v[f]] for f in FAMILIES}
                      for m, v in ref.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(doc))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache costs the next report the import again, nothing more


def paper_reference(ds: Dataset, options: ScoreOptions | None = None) -> Reference:
    """The recorded models' vanilla centred scores, from the cache or computed and cached."""
    options = options or ScoreOptions()
    path = cache_path(options)
    ref = _read(path)
    if ref is None:
        ref = _compute(ds, options)
        _write(path, ref)
    return ref
