"""The cube cache: an .npz beside the log, valid while the log's size and mtime are unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    from vpbatch.benchmark.dataset import Dataset

__all__ = ["CACHE_VERSION", "cache_path", "cache_key", "load_cache", "save_cache"]

# 4: exact job ids and names (3 merged jobs whose 64-bit hashes collided); 5: answer modes;
# 6: corrupt lines; 7: the trust panel's job counts, rating histogram and repeats
CACHE_VERSION = 7
# RatingCube fields stored as arrays; the others (names, counts) go in one orjson blob.
_ARRAYS = ("ratings", "portrait_id", "option_id", "authors_dropped", "asked", "hist", "retest")
_META = ("models", "conditions", "versions", "n_ok", "n_failed", "failures", "answer_modes",
         "corrupt_lines")


def cache_path(log_path: Path, strict: bool) -> Path:
    """Where the cube of `log_path` is cached (one file per rating rule)."""
    return log_path.with_name(f".{log_path.name}.cube{'-strict' if strict else ''}.npz")


def cache_key(log_path: Path, ds: Dataset) -> np.ndarray:
    """What a cached cube must match: format, log size and mtime, and the dataset's items."""
    st = os.stat(log_path)
    items = np.asarray(ds.portrait_id, np.int64) * 1000 + np.asarray(ds.option_id, np.int64)
    digest = np.frombuffer(hashlib.blake2b(items.tobytes(), digest_size=8).digest(), np.int64)
    return np.array([CACHE_VERSION, st.st_size, st.st_mtime_ns, int(digest[0])], np.int64)


def load_cache(path: Path, key: np.ndarray) -> dict[str, Any] | None:
    """The cached RatingCube fields (keyword arguments), or None if absent, stale or torn."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not np.array_equal(z["key"], key):
                return None
            meta = orjson.loads(z["meta"].tobytes())
            fields = {name: meta[name] for name in _META}
            fields.update((name, z[name]) for name in _ARRAYS)
            return fields
    except (OSError, KeyError, ValueError):  # absent, stale format or torn: just re-read
        return None


def save_cache(path: Path, key: np.ndarray, fields: dict[str, Any]) -> None:
    """Write the RatingCube `fields` atomically; a read-only run dir is left uncached."""
    meta = {name: fields[name] for name in _META}
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(tmp, key=key, meta=np.frombuffer(orjson.dumps(meta), np.uint8),
                 **{name: fields[name] for name in _ARRAYS})
        os.replace(tmp, path)  # atomic: a reader never sees half a cache
    except OSError:  # a read-only run dir still scores, just without the cache
        tmp.unlink(missing_ok=True)
