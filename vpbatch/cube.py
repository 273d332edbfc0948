"""Log -> rating cube: a dense (model, condition, version, item) array the scorer reads.

Reading is the expensive part of scoring a big sweep, so the log is parsed in large chunks
(one `orjson.loads` per chunk), names become indices through dicts, and the array is filled
with `np.bincount`. The result is cached beside the log, keyed on the log's size and mtime.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from vpbatch.dims import VERSIONS
from vpbatch.errors import LogError

if TYPE_CHECKING:
    from vpbatch.dataset import Dataset

__all__ = ["RatingCube", "cube_from_log", "cube_from_rows", "TEMPLATE_KEY"]

CHUNK_BYTES = 1 << 24  # 16 MB per orjson call: big enough to amortise, small enough for RAM
CACHE_VERSION = 2
_TAIL = b',"strict_reason":'
# Set by the importer on a failed official record that still carried its correlation lists
# (some of the authors' clients stored them on error rows, some did not).
TEMPLATE_KEY = "correlations_recorded"


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
    # (M, C, I) items the authors' averaging would drop: no rating in the first version and
    # no correlation lists on that version's failed record. None = derive from `ratings`.
    authors_dropped: np.ndarray | None = None


def _chunks(path: Path) -> Iterator[list[dict[str, Any]]]:
    """The log's complete lines, parsed a chunk at a time (a torn tail is ignored)."""
    with open(path, "rb") as f:
        rest = b""
        while True:
            block = f.read(CHUNK_BYTES)
            if not block:
                return
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1 :]
            lines = [ln for ln in block[:cut].split(b"\n") if ln.strip()]
            if lines:
                yield _parse(path, lines)


def _parse(path: Path, lines: list[bytes]) -> list[dict[str, Any]]:
    """Parse lines, skipping each line's tail after the rating fields when it can.

    Building dicts is what costs (orjson is ~4x faster on the 12 fields we need than on the
    full record), and Record.to_json writes the fields in dataclass order, so everything from
    "strict_reason" on can be cut. The key can't occur inside a string (quotes are escaped), and
    a line written in another order is caught below by its missing rating and parsed whole.
    """
    heads = [ln[:i] + b"}" if (i := ln.find(_TAIL)) > 0 else ln for ln in lines]
    try:
        rows: list[dict[str, Any]] = orjson.loads(b"[" + b",".join(heads) + b"]")
    except orjson.JSONDecodeError:
        return list(_parse_lines(path, lines))
    for k, row in enumerate(rows):
        # Rows without a rating are rare and need their `extra` (see TEMPLATE_KEY): parse whole.
        if row.get("rating_strict") is None or row.get("rating") is None:
            rows[k] = orjson.loads(lines[k])
    return rows


def _parse_lines(path: Path, lines: list[bytes]) -> Iterator[dict[str, Any]]:
    """Slow path for a chunk that failed as a whole: find and name the bad line."""
    for line in lines:
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise LogError(
                f"{path}: a line is not valid JSON ({exc}): {line[:80]!r}; move it aside or "
                "restore the file"
            ) from exc


class _Columns:
    """Accumulates the rows that count, as index columns (dedupe: the first ok row wins)."""

    __slots__ = ("field", "seen", "failed", "models", "conds", "vers", "cols")

    def __init__(self, strict: bool) -> None:
        self.field = "rating_strict" if strict else "rating"
        self.seen: set[str] = set()  # jobs whose counting (first ok) row has been taken
        # job_id -> (model, condition, version, pid, oid, template kept) for unrated jobs
        self.failed: dict[str, tuple[int, int, int, int, int, bool]] = {}
        self.models: dict[str, int] = {}
        self.conds: dict[str, int] = {}
        self.vers: dict[str, int] = {}
        self.cols: tuple[list[int], ...] = ([], [], [], [], [], [])

    def add(self, rows: list[dict[str, Any]]) -> None:
        seen, failed, fld = self.seen, self.failed, self.field
        models, conds, vers = self.models, self.conds, self.vers
        m_c, c_c, v_c, p_c, o_c, r_c = self.cols
        for d in rows:
            jid = d["job_id"]
            # Every row names its axes, so a model whose answers all failed still shows up.
            mi = models.setdefault(d["model"], len(models))
            ci = conds.setdefault(d["condition"], len(conds))
            vi = vers.setdefault(d["version"], len(vers))
            ok = d.get("status") == "ok"
            if jid in seen:
                continue
            rating = d.get(fld) if ok else None
            if rating is None:  # failed, or answered but unparseable: no rating
                kept = bool((d.get("extra") or {}).get(TEMPLATE_KEY, False))
                failed[jid] = (mi, ci, vi, d["portrait_id"], d["option_id"], kept)
                if ok:
                    seen.add(jid)
                continue
            seen.add(jid)
            failed.pop(jid, None)  # answered on a retry
            m_c.append(mi)
            c_c.append(ci)
            v_c.append(vi)
            p_c.append(d["portrait_id"])
            o_c.append(d["option_id"])
            r_c.append(rating)


def cube_from_rows(rows: list[dict[str, Any]], ds: Dataset, *, strict: bool = False) -> RatingCube:
    """A cube from already-parsed log rows (tests, merged logs)."""
    cols = _Columns(strict)
    cols.add(rows)
    return _build(cols, ds)


def _build(cols: _Columns, ds: Dataset) -> RatingCube:
    m, c, v, p, o, r = (np.asarray(x, dtype=np.int64) for x in cols.cols)
    # Versions in the benchmark's order (v1 first: the authors' rule keys on it), others after.
    rank = {name: i for i, name in enumerate(VERSIONS)}
    names_v = sorted(cols.vers, key=lambda name: (rank.get(name, len(rank)), cols.vers[name]))
    remap = np.empty(len(names_v), np.int64)
    for new, name in enumerate(names_v):
        remap[cols.vers[name]] = new
    item = ds.indices(p, o) if len(p) else p
    shape = (len(cols.models), len(cols.conds), len(names_v), len(ds.portrait_id))
    flat = np.ravel_multi_index((m, c, remap[v], item), shape) if len(p) else p
    size = int(np.prod(shape))
    total = np.bincount(flat, weights=r.astype(np.float64), minlength=size)
    count = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratings = (total / count).reshape(shape)  # mean over repeats; 0/0 -> NaN = missing
    names_m = list(cols.models)
    fail_by_model: dict[str, int] = {}
    kept = np.zeros((shape[0], shape[1], shape[3]), bool)
    for mi, ci, vi, pid, oid, template in cols.failed.values():
        fail_by_model[names_m[mi]] = fail_by_model.get(names_m[mi], 0) + 1
        if template and remap[vi] == 0:
            kept[mi, ci, ds.index(pid, oid)] = True
    first_missing = np.isnan(ratings[:, :, 0, :]) if shape[2] else kept
    return RatingCube(
        models=names_m,
        conditions=list(cols.conds),
        versions=names_v,
        ratings=ratings,
        portrait_id=np.asarray(ds.portrait_id).copy(),
        option_id=np.asarray(ds.option_id).copy(),
        n_ok=len(r),
        n_failed=len(cols.failed),
        failures=fail_by_model,
        authors_dropped=first_missing & ~kept,
    )


def _cache_path(log_path: Path, strict: bool) -> Path:
    return log_path.with_name(f".{log_path.name}.cube{'-strict' if strict else ''}.npz")


def _cache_key(log_path: Path, ds: Dataset) -> np.ndarray:
    st = os.stat(log_path)
    items = np.asarray(ds.portrait_id, np.int64) * 1000 + np.asarray(ds.option_id, np.int64)
    digest = np.frombuffer(hashlib.blake2b(items.tobytes(), digest_size=8).digest(), np.int64)
    return np.array([CACHE_VERSION, st.st_size, st.st_mtime_ns, int(digest[0])], np.int64)


def _load_cache(path: Path, key: np.ndarray) -> RatingCube | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if not np.array_equal(z["key"], key):
                return None
            meta = orjson.loads(z["meta"].tobytes())
            return RatingCube(
                models=meta["models"],
                conditions=meta["conditions"],
                versions=meta["versions"],
                ratings=z["ratings"],
                portrait_id=z["portrait_id"],
                option_id=z["option_id"],
                n_ok=meta["n_ok"],
                n_failed=meta["n_failed"],
                failures=meta["failures"],
                authors_dropped=z["authors_dropped"],
            )
    except (OSError, KeyError, ValueError):  # absent, stale format or torn: just re-read
        return None


def _dropped(cube: RatingCube) -> np.ndarray:
    if cube.authors_dropped is not None:
        return cube.authors_dropped
    return np.isnan(cube.ratings[:, :, 0, :])


def _save_cache(path: Path, key: np.ndarray, cube: RatingCube) -> None:
    meta = {
        "models": cube.models,
        "conditions": cube.conditions,
        "versions": cube.versions,
        "n_ok": cube.n_ok,
        "n_failed": cube.n_failed,
        "failures": cube.failures,
    }
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(
            tmp,
            key=key,
            meta=np.frombuffer(orjson.dumps(meta), np.uint8),
            ratings=cube.ratings,
            portrait_id=cube.portrait_id,
            option_id=cube.option_id,
            authors_dropped=_dropped(cube),
        )
        os.replace(tmp, path)  # atomic: a reader never sees half a cache
    except OSError:  # a read-only run dir still scores, just without the cache
        tmp.unlink(missing_ok=True)


def cube_from_log(
    log_path: Path, ds: Dataset, *, strict: bool = False, cache: bool = True
) -> RatingCube:
    """Read a run log (deduplicated: a job's first ok row counts) into a RatingCube."""
    log_path = Path(log_path)
    if not log_path.exists():
        raise LogError(f"no log at {log_path}; run a sweep or import-official into that dir first")
    key = _cache_key(log_path, ds)
    cpath = _cache_path(log_path, strict)
    if cache:
        hit = _load_cache(cpath, key)
        if hit is not None:
            return hit
    cols = _Columns(strict)
    for rows in _chunks(log_path):
        cols.add(rows)
    cube = _build(cols, ds)
    if cache:
        _save_cache(cpath, key, cube)
    return cube
