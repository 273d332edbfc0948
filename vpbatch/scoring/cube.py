"""Log -> rating cube: a dense (model, condition, version, item) array the scorer reads.

The log is read into columns by vpbatch.scoring.logscan (vectorised, by threads when big);
here each job's counting row is picked (vpbatch.log.counts' rule, vectorised), the cube filled
with `np.bincount`, and the result cached beside the log by vpbatch.scoring.cubecache.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vpbatch.benchmark.dims import VERSIONS
from vpbatch.errors import LogError
from vpbatch.log.reader import warn_corrupt
from vpbatch.scoring.cubecache import cache_key, cache_path, load_cache, save_cache
from vpbatch.scoring.logscan import CHUNK_BYTES, TEMPLATE_KEY, LogColumns, scan_log

if TYPE_CHECKING:
    from vpbatch.benchmark.dataset import Dataset

__all__ = ["RatingCube", "cube_from_log", "cube_from_rows", "counting_rows", "TEMPLATE_KEY"]

# Logs this big are read by threads, one byte range each (parsing is CPU-bound, and numpy
# releases the GIL for it).
PARALLEL_MIN_BYTES = 1 << 26
MAX_WORKERS = 4  # capped by the cores
# Multipliers of the job-key hash that finds jobs logged more than once.
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


@dataclass(slots=True)
class RatingCube:
    """Ratings (M, C, V, I), averaged over repeats; NaN where no answer was parsed."""

    models: list[str]
    conditions: list[str]
    versions: list[str]
    ratings: np.ndarray
    portrait_id: np.ndarray
    option_id: np.ndarray
    n_ok: int = 0  # distinct jobs with a parsed rating
    n_failed: int = 0  # distinct jobs that failed or came back unparseable
    failures: dict[str, int] = field(default_factory=dict)  # model -> failed jobs
    # model -> the answer mode that rated its counted answers: "text", "choice", or "mixed"
    # (a log that holds both for one label; `vpbatch run` never writes one).
    answer_modes: dict[str, str] = field(default_factory=dict)
    # (M, C, I) items the authors' averaging would drop: no rating in the first version and
    # no correlation lists on that version's failed record. None = derive from `ratings`.
    authors_dropped: np.ndarray | None = None
    corrupt_lines: list[int] = field(default_factory=list)  # the log's, skipped (1-based)
    # For the trust panel: (M, C, V) jobs counted (rated or not, repeats included); (M, C, 6)
    # rated jobs per rating 1..6; (2, M, C, V, I) ratings of repeat 0 and the mean of the later
    # repeats, None when no job was repeated. None on a cube built by hand: derived from ratings.
    asked: np.ndarray | None = None
    hist: np.ndarray | None = None
    retest: np.ndarray | None = None


def cube_from_rows(rows: list[dict[str, Any]], ds: Dataset, *, strict: bool = False) -> RatingCube:
    """A cube from already-parsed log rows (tests, merged logs)."""
    acc = LogColumns(strict)
    acc.add_rows(rows)
    return _build(acc, ds)


def counting_rows(cols: dict[str, np.ndarray]) -> np.ndarray | None:
    """Indices of the rows that count, one per job (log.counts.Counted's rule, vectorised);
    None when every row counts (no job logged twice).

    Jobs are equal when their (kind, hi, lo) keys are: a hash finds the jobs logged more than
    once in one sort, and only their rows are ranked exactly.
    """
    kind, hi, lo = cols["kind"], cols["hi"], cols["lo"]
    h = (hi * _MIX[0]) ^ (lo * _MIX[1]) ^ (kind.astype(np.uint64) * _MIX[2])
    ordered = np.sort(h)
    tied = ordered[1:] == ordered[:-1]
    if not tied.any():
        return None  # no job logged twice: the usual case, and cheap
    cand = np.flatnonzero(np.isin(h, ordered[1:][tied]))
    ok, line = cols["ok"][cand].astype(bool), cols["line"][cand].astype(np.int64)
    # Counted's rule as a ranking within each job: answers before failures, the first answer
    # (earliest line) or else the latest failure (latest line) first; the top row counts.
    rank = np.where(ok, line, -line)
    order = np.lexsort((rank, ~ok, lo[cand], hi[cand], kind[cand]))
    rows = cand[order]
    top = np.ones(len(rows), bool)
    top[1:] = ((kind[rows[1:]] != kind[rows[:-1]]) | (hi[rows[1:]] != hi[rows[:-1]])
               | (lo[rows[1:]] != lo[rows[:-1]]))
    keep = np.ones(len(h), bool)
    keep[cand] = False
    keep[rows[top]] = True
    return np.flatnonzero(keep)


def _axes(acc: LogColumns) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Models, conditions and versions in first-seen order; (3, T) axis index per triple.

    Versions come in the benchmark's order (v1 first: the authors' rule keys on it).
    """
    axes: tuple[dict[str, int], dict[str, int], dict[str, int]] = ({}, {}, {})
    names = list(acc.triples)
    index = np.zeros((3, max(len(names), 1)), np.int64)
    for t in np.argsort(np.array(acc.first, np.int64), kind="stable").tolist():
        for k, name in enumerate(names[t]):
            index[k, t] = axes[k].setdefault(name, len(axes[k]))
    rank = {name: i for i, name in enumerate(VERSIONS)}
    vers = sorted(axes[2], key=lambda name: (rank.get(name, len(rank)), axes[2][name]))
    remap = np.zeros(max(len(vers), 1), np.int64)
    for new, name in enumerate(vers):
        remap[axes[2][name]] = new
    index[2] = remap[index[2]]
    return list(axes[0]), list(axes[1]), vers, index


def _build(acc: LogColumns, ds: Dataset) -> RatingCube:
    """The cube of the rows that count: mean rating per cell, failures, authors' drops."""
    cols = acc.columns()
    sel = counting_rows(cols)
    if sel is not None:
        cols = {k: v[sel] for k, v in cols.items()}
    names_m, names_c, names_v, index = _axes(acc)
    t, r = cols["t"], cols["r"]
    rated = cols["ok"].astype(bool) & ~np.isnan(r)
    item = ds.indices(cols["pid"], cols["oid"]) if len(t) else t
    shape = (len(names_m), len(names_c), len(names_v), len(ds.portrait_id))
    ratings = _mean_ratings(shape, index, t[rated], item[rated], r[rated])
    failed = np.flatnonzero(~rated)
    m, c, v = (axis[t[failed]] for axis in index)
    per_model = np.bincount(m, minlength=len(names_m))
    kept = np.zeros((shape[0], shape[1], shape[3]), bool)
    mark = cols["kept"][failed].astype(bool) & (v == 0)
    kept[m[mark], c[mark], item[failed][mark]] = True
    first_missing = np.isnan(ratings[:, :, 0, :]) if shape[2] else kept
    model_of = index[0][t] if len(t) else t
    n_rows = np.bincount(model_of, minlength=shape[0])
    n_choice = np.bincount(model_of[cols["choice"].astype(bool)], minlength=shape[0])
    asked, hist, retest = _trust_counts(shape, index, cols, item, rated)
    return RatingCube(
        models=names_m,
        conditions=names_c,
        versions=names_v,
        ratings=ratings,
        portrait_id=np.asarray(ds.portrait_id).copy(),
        option_id=np.asarray(ds.option_id).copy(),
        n_ok=int(rated.sum()),
        n_failed=len(failed),
        failures={names_m[i]: int(n) for i, n in enumerate(per_model) if n},
        answer_modes={name: _mode(int(c), int(n)) for name, c, n in
                      zip(names_m, n_choice, n_rows, strict=True)},
        authors_dropped=first_missing & ~kept,
        corrupt_lines=list(acc.corrupt),
        asked=asked,
        hist=hist,
        retest=retest,
    )


def _trust_counts(
    shape: tuple[int, int, int, int], index: np.ndarray, cols: dict[str, np.ndarray],
    item: np.ndarray, rated: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The trust panel's counts: jobs per (M, C, V), ratings 1..6 per (M, C), and the
    (2, M, C, V, I) first-repeat / later-repeats ratings (None when nothing was repeated)."""
    t = cols["t"]
    m, c, v = (axis[t] for axis in index) if len(t) else (t, t, t)
    mc = shape[0] * shape[1]
    asked = np.bincount((m * shape[1] + c) * shape[2] + v, minlength=mc * shape[2])
    r = np.clip(np.rint(cols["r"][rated]).astype(np.int64), 1, 6) - 1
    hist = np.bincount((m[rated] * shape[1] + c[rated]) * 6 + r, minlength=mc * 6)
    rep = cols["rep"]
    retest = None
    if len(rep) and rep.max() > 0:
        later = rated & (rep > 0)
        first = rated & (rep == 0)
        retest = np.stack([
            _mean_ratings(shape, index, t[sel], item[sel], cols["r"][sel])
            for sel in (first, later)])
    return asked.reshape(shape[:3]), hist.reshape(*shape[:2], 6), retest


def _mode(choice_rows: int, rows: int) -> str:
    return "text" if not choice_rows else "choice" if choice_rows == rows else "mixed"


def _mean_ratings(
    shape: tuple[int, int, int, int], index: np.ndarray, t: np.ndarray, item: np.ndarray,
    r: np.ndarray
) -> np.ndarray:
    """Mean of the ratings r landing in each cell (triple t, item); NaN where none did."""
    size = int(np.prod(shape))
    # Each triple's offset in the flat cube, so a row's cell is one lookup and one add.
    base = np.ravel_multi_index((*index, np.zeros_like(index[0])), shape) if size else index[0]
    flat = base[t] + item
    total = np.bincount(flat, weights=r, minlength=size)
    count = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).reshape(shape)  # mean over repeats; 0/0 -> NaN = missing


def _cache_fields(cube: RatingCube) -> dict[str, Any]:
    """The cube's fields as cubecache stores them (authors_dropped always set)."""
    out = {f.name: getattr(cube, f.name) for f in fields(cube)}
    if cube.authors_dropped is None:
        out["authors_dropped"] = np.isnan(cube.ratings[:, :, 0, :])
    if cube.retest is None:
        out["retest"] = np.zeros(0)
    return out


def cube_from_log(
    log_path: Path, ds: Dataset, *, strict: bool = False, cache: bool = True, plain: bool = False
) -> RatingCube:
    """Read a run log (deduplicated: a job's first ok row counts) into a RatingCube.

    `plain` reads every line with orjson instead of the scanner: the baseline of `make bench`.
    """
    log_path = Path(log_path)
    if not log_path.exists():
        raise LogError(f"no log at {log_path}; run a sweep or import-official into that dir first")
    key = cache_key(log_path, ds)
    cpath = cache_path(log_path, strict)
    if cache:
        hit = load_cache(cpath, key)
        if hit is not None:
            if hit["corrupt_lines"]:  # skipped when the cube was made: still worth saying
                warn_corrupt(log_path, hit["corrupt_lines"])
            if hit["retest"].size == 0:  # stored as an empty array: nothing was repeated
                hit["retest"] = None
            return RatingCube(**hit)
    workers = min(MAX_WORKERS, os.cpu_count() or 1)
    if log_path.stat().st_size < PARALLEL_MIN_BYTES:
        workers = 1
    cols = scan_log(log_path, strict, workers=workers, chunk_bytes=CHUNK_BYTES, plain=plain)
    cube = _build(cols, ds)
    if cache:
        save_cache(cpath, key, _cache_fields(cube))
    return cube
