"""The 520 benchmark items as arrays: ids, correlations, p-values and texts.

Where the data comes from: `--data`, else `VPBATCH_DATA`, else the cache `vpbatch data fetch`
fills. What we found in the official files (commit 08e1fb7, checked by tests/test_dataset.py):

- `query-response-tagged.json` lists, for every item, ALL dimensions of each family
  (10 PVQ, 4 higher-order, 5 BFI) as `[name, r]` pairs sorted by |r| descending.
- `correlation_results/*.json` hold exactly the same 9880 (item, dimension) pairs with
  bit-identical r, plus the Spearman p-value; `portrait_id` is a string there, an int in the
  tagged file. Nothing is absent, so the NaN fill below never triggers on the official data.
- The records in `lm_evaluation/outputs/final` carry only the pairs with |r| > 0.3 (same
  order as the tagged list); a family's key is left out when none passes or the record
  is an error record. They are therefore not a source of correlations: this module is.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vpbatch.benchmark import layout
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS
from vpbatch.benchmark.layout import resolve_data_dir
from vpbatch.errors import DataError

__all__ = [
    "Dataset",
    "load_dataset",
    "resolve_data_dir",
    "TAGGED_PATH",
    "CORR_PATHS",
    "TAGGED_KEYS",
    "N_ITEMS",
]

TAGGED_PATH = layout.TAGGED
CORR_PATHS = layout.CORRELATIONS
# Family -> the key of its [name, r] list in the tagged file (and in the recorded outputs).
TAGGED_KEYS: dict[str, str] = {
    "pvq": "correlations",
    "higher_pvq": "higher_pvq_correlations",
    "bfi": "bfi_correlations",
}
N_ITEMS = 520
# portrait_id * _KEY + option_id orders items exactly like (portrait_id, option_id).
_KEY = 1000


def _read_json(root: Path, rel: str) -> Any:
    path = root / rel
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing; run `vpbatch data fetch` or restore the file"
        ) from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}); fix its permissions") from exc
    try:
        return orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise DataError(
            f"{path} is corrupt (not valid JSON: {exc}); run `vpbatch data verify` and "
            "re-fetch it with `vpbatch data fetch`"
        ) from exc


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Dataset:
    """The items sorted by (portrait_id, option_id); per-family arrays are (520, n_dims)."""

    # eq=False: identity equality and hash, so a Dataset can key a cache (arrays cannot);
    # repr=False: the default would print every text of every item.
    root: Path
    portrait_id: np.ndarray
    option_id: np.ndarray
    corr: dict[str, np.ndarray]
    pval: dict[str, np.ndarray]
    corr_tagged: dict[str, np.ndarray]
    title: tuple[str | None, ...]
    text: tuple[str, ...]
    output: tuple[str, ...]
    _row: dict[tuple[int, int], int] = field(init=False)

    def __post_init__(self) -> None:
        # index() sits in importers' per-record loops: a dict lookup, not a search.
        pairs = zip(self.portrait_id.tolist(), self.option_id.tolist(), strict=True)
        object.__setattr__(self, "_row", {pair: i for i, pair in enumerate(pairs)})

    def __repr__(self) -> str:
        return f"Dataset(root={str(self.root)!r}, n_items={self.n_items})"

    @property
    def n_items(self) -> int:
        return int(self.portrait_id.shape[0])

    def index(self, portrait_id: int, option_id: int) -> int:
        """Row of the item (portrait_id, option_id); DataError naming the pair if unknown."""
        i = self._row.get((int(portrait_id), int(option_id)))
        if i is None:
            raise DataError(
                f"item (portrait_id={portrait_id}, option_id={option_id}) is not in the "
                f"benchmark ({self.root / TAGGED_PATH}); check the ids"
            )
        return i

    def indices(
        self, portrait_id: np.ndarray | Sequence[int], option_id: np.ndarray | Sequence[int]
    ) -> np.ndarray:
        """Rows of many items at once (vectorised `index`); DataError naming the first unknown."""
        pid = np.asarray(portrait_id, dtype=np.int64)
        oid = np.asarray(option_id, dtype=np.int64)
        keys = self.portrait_id * _KEY + self.option_id
        want = pid * _KEY + oid
        idx = np.minimum(np.searchsorted(keys, want), keys.shape[0] - 1)
        ok = (keys[idx] == want) & (oid > 0) & (oid < _KEY)
        if not ok.all():
            bad = int(np.flatnonzero(~ok)[0])
            self.index(int(pid[bad]), int(oid[bad]))  # raises, naming the pair
        return idx


def _frozen(a: np.ndarray) -> np.ndarray:
    # The dataset is cached and shared; a stray in-place edit must fail, not leak.
    a.setflags(write=False)
    return a


def _items(root: Path, raw: Any) -> list[tuple[int, int, dict[str, Any], dict[str, Any]]]:
    path = root / TAGGED_PATH
    try:
        items = [
            (int(q["portrait_id"]), int(o["id"]), q["content"], o)
            for q in raw
            for o in q["outputs"]
        ]
    except (TypeError, KeyError, ValueError) as exc:
        raise DataError(
            f"{path} does not have the expected layout ({type(exc).__name__}: {exc}); "
            "re-fetch it with `vpbatch data fetch`"
        ) from exc
    items.sort(key=lambda t: (t[0], t[1]))
    if len(items) != N_ITEMS or len({(p, o) for p, o, _, _ in items}) != N_ITEMS:
        raise DataError(
            f"{path} holds {len(items)} items, expected {N_ITEMS} distinct ones; "
            "re-fetch it with `vpbatch data fetch`"
        )
    return items


def _dim_index(family: str, name: str, path: Path) -> int:
    try:
        return FAMILY_DIMS[family].index(name)
    except ValueError:
        raise DataError(
            f"{path} names an unknown {family} dimension {name!r}; expected one of "
            f"{', '.join(FAMILY_DIMS[family])}"
        ) from None


def _tagged_arrays(root: Path, items: list[Any]) -> dict[str, np.ndarray]:
    path = root / TAGGED_PATH
    out: dict[str, np.ndarray] = {}
    for fam in FAMILIES:
        a = np.full((len(items), len(FAMILY_DIMS[fam])), np.nan)
        key = TAGGED_KEYS[fam]
        for i, (_, _, _, o) in enumerate(items):
            for name, r in o.get(key) or ():
                a[i, _dim_index(fam, name, path)] = float(r)
        out[fam] = _frozen(a)
    return out


def _corr_arrays(
    root: Path, fam: str, row_of: dict[tuple[int, int], int]
) -> tuple[np.ndarray, np.ndarray]:
    rel = CORR_PATHS[fam]
    path = root / rel
    shape = (len(row_of), len(FAMILY_DIMS[fam]))
    corr, pval = np.full(shape, np.nan), np.full(shape, np.nan)
    dim_key = f"{fam}_dimension"
    try:
        for row in _read_json(root, rel):
            pair = (int(row["portrait_id"]), int(row["option_id"]))
            i = row_of.get(pair)
            if i is None:
                raise DataError(
                    f"{path} has item {pair} which the benchmark does not; the files come "
                    "from different releases: re-fetch with `vpbatch data fetch`"
                )
            j = _dim_index(fam, row[dim_key], path)
            corr[i, j] = float(row["spearman_corr"])
            pval[i, j] = float(row["spearman_p_value"])
    except (TypeError, KeyError, ValueError) as exc:
        raise DataError(
            f"{path} does not have the expected layout ({type(exc).__name__}: {exc}); "
            "re-fetch it with `vpbatch data fetch`"
        ) from exc
    return _frozen(corr), _frozen(pval)


@functools.lru_cache(maxsize=8)
def _load(root: Path) -> Dataset:
    items = _items(root, _read_json(root, TAGGED_PATH))
    row_of = {(p, o): i for i, (p, o, _, _) in enumerate(items)}
    corr: dict[str, np.ndarray] = {}
    pval: dict[str, np.ndarray] = {}
    for fam in FAMILIES:
        corr[fam], pval[fam] = _corr_arrays(root, fam, row_of)
    try:
        title = tuple(c.get("title") for _, _, c, _ in items)
        text = tuple(str(c["text"]) for _, _, c, _ in items)
        output = tuple(str(o["content"]) for _, _, _, o in items)
    except (KeyError, AttributeError) as exc:
        raise DataError(
            f"{root / TAGGED_PATH} lacks an item text ({exc}); re-fetch it with "
            "`vpbatch data fetch`"
        ) from exc
    return Dataset(
        root=root,
        portrait_id=_frozen(np.array([p for p, _, _, _ in items], dtype=np.int64)),
        option_id=_frozen(np.array([o for _, o, _, _ in items], dtype=np.int64)),
        corr=corr,
        pval=pval,
        corr_tagged=_tagged_arrays(root, items),
        title=title,
        text=text,
        output=output,
    )


def load_dataset(explicit: str | Path | None = None) -> Dataset:
    """The dataset at the resolved data root; parsed once per root and process."""
    return _load(resolve_data_dir(explicit))
