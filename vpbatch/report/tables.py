"""A run as tables with a stable schema: the answers, the scores, the deltas, steering, alpha.

Each `Table` is named numpy columns plus its schema (`Column`: name, type, meaning). The same
schema types every form: `to_pandas()`, `to_polars()`, `to_arrow()` and the files `vpbatch
export` writes, so a column never changes type between a notebook and a Parquet file. pandas,
polars and pyarrow are optional extras, imported only by the method that needs them.
Schema changes are additive: a column is never renamed, retyped or dropped (SCHEMA_VERSION).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS, PVQ, VANILLA
from vpbatch.errors import VPBatchError
from vpbatch.log.records import Record
from vpbatch.scoring.analysis import Analysis
from vpbatch.scoring.trust import FIELD_DOCS, FIELDS, INTERVAL_FIELDS, RETEST_FIELDS

if TYPE_CHECKING:  # optional extras: imported by the method that converts, never at import
    import pandas
    import polars
    import pyarrow

__all__ = [
    "SCHEMA_VERSION",
    "Column",
    "Table",
    "MissingExtra",
    "need_extra",
    "ANSWERS",
    "SCORES",
    "DELTAS",
    "STEERING",
    "VERSIONS",
    "ALPHA",
    "answers_table",
    "scores_table",
    "deltas_table",
    "steering_table",
    "versions_table",
    "alpha_table",
    "TRUST",
    "trust_table",
]

SCHEMA_VERSION: Final = 1
# Column types. A "?" type may be null (stored as NaN in the numpy column for numbers, None
# for strings); the others never are.
STRING, STRING_NULL = "string", "string?"
INT64, INT64_NULL, INT8_NULL = "int64", "int64?", "int8?"
FLOAT64_NULL = "float64?"


class MissingExtra(VPBatchError):
    """An optional library (pandas, polars, pyarrow) is not installed."""


def need_extra(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"this needs {module}, an optional extra: pip install 'vpbatch[{extra}]'"
        ) from None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # one of the types above
    doc: str


class Table:
    """Named columns of equal length (numpy arrays), typed by a fixed schema."""

    __slots__ = ("name", "schema", "_cols")

    def __init__(self, name: str, schema: Sequence[Column], columns: Mapping[str, Any]) -> None:
        self.name = name
        self.schema = tuple(schema)
        self._cols = {c.name: _as_array(columns[c.name], c.type) for c in self.schema}
        lengths = {len(v) for v in self._cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"table {name}: columns of unequal length {sorted(lengths)}")

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.schema]

    def __len__(self) -> int:
        return len(next(iter(self._cols.values()))) if self._cols else 0

    def __getitem__(self, name: str) -> np.ndarray:
        """One column as a numpy array (null numbers are NaN, null strings None)."""
        return self._cols[name]

    def __repr__(self) -> str:
        return f"<Table {self.name}: {len(self)} rows; {', '.join(self.columns)}>"

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The rows (the first `limit`) as dicts with None for nulls; a list, so `rows()[:3]`
        works (slow for big tables: for a quick look)."""
        cols = [(c.name, self._cols[c.name], c.type.endswith("?")) for c in self.schema]
        n = len(self) if limit is None else min(limit, len(self))
        return [{name: _py(a[i], nullable) for name, a, nullable in cols} for i in range(n)]

    def to_pandas(self) -> pandas.DataFrame:
        """A pandas DataFrame: nullable ints as pandas' Int8/Int64, strings as objects."""
        pd = need_extra("pandas", "pandas")
        data: dict[str, Any] = {}
        for c in self.schema:
            a = self._cols[c.name]
            if c.type in (INT8_NULL, INT64_NULL):
                data[c.name] = pd.array(a, dtype="Int8" if c.type == INT8_NULL else "Int64")
            else:
                data[c.name] = a
        return pd.DataFrame(data, columns=self.columns)

    def to_polars(self) -> polars.DataFrame:
        """A polars DataFrame: every null is a polars null (never a NaN)."""
        pl = need_extra("polars", "polars")
        types = {STRING: pl.String, STRING_NULL: pl.String, INT64: pl.Int64,
                 INT64_NULL: pl.Int64, INT8_NULL: pl.Int8, FLOAT64_NULL: pl.Float64}
        series = []
        for c in self.schema:
            a = self._cols[c.name]
            if c.type in (STRING, STRING_NULL):
                s = pl.Series(c.name, a.tolist(), dtype=pl.String)
            else:
                s = pl.Series(c.name, a, nan_to_null=a.dtype.kind == "f").cast(types[c.type])
            series.append(s)
        return pl.DataFrame(series)

    def to_arrow(self) -> pyarrow.Table:
        """A pyarrow Table carrying the schema's types and each column's meaning."""
        pa = need_extra("pyarrow", "parquet")
        types = {STRING: pa.string(), STRING_NULL: pa.string(), INT64: pa.int64(),
                 INT64_NULL: pa.int64(), INT8_NULL: pa.int8(), FLOAT64_NULL: pa.float64()}
        arrays, fields = [], []
        for c in self.schema:
            a = self._cols[c.name]
            if c.type in (STRING, STRING_NULL):
                arr = pa.array(a.tolist(), type=pa.string())
            else:  # NaN -> null, then the exact type (an int8 cast checks every value fits)
                arr = pa.array(a, from_pandas=True).cast(types[c.type])
            arrays.append(arr)
            fields.append(pa.field(c.name, types[c.type], nullable=c.type.endswith("?"),
                                   metadata={"doc": c.doc}))
        meta = {"vpbatch.table": self.name, "vpbatch.schema_version": str(SCHEMA_VERSION)}
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=meta))


def _as_array(values: Any, kind: str) -> np.ndarray:
    if kind in (STRING, STRING_NULL):
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out
    if kind == INT64:
        return np.asarray(values, dtype=np.int64)
    # Nullable numbers: NaN marks the null (None in a list becomes NaN).
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64) \
        if isinstance(values, list) else np.asarray(values, dtype=np.float64)


def _py(v: Any, nullable: bool) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if nullable and isinstance(v, float) and v != v:
        return None
    return v


# -- the answers: one row per job, the line that counts (see log.runlog.read_log) -------------
ANSWERS: Final = (
    Column("job_id", STRING, "idempotent job id (sha256 of the request's identity)"),
    Column("model", STRING, "the model's label in the config"),
    Column("condition", STRING, "vanilla | persona:<group>=<value> | steer:<Dimension>"),
    Column("version", STRING, "prompt version: v1 ... v3_reversed"),
    Column("portrait_id", INT64, "item: the query's id"),
    Column("option_id", INT64, "item: the response's number within the query (1-5)"),
    Column("repeat", INT64, "repeat number (0 unless run.repeats > 1)"),
    Column("status", STRING, "ok (an answer came back) | failed"),
    Column("rating", INT8_NULL, "official parser's rating 1-6; null when unparseable or failed"),
    Column("rating_strict", INT8_NULL, "strict parser's rating 1-6; null when it refused"),
    Column("strict_reason", STRING_NULL, "why the strict parser refused (refusal, ...)"),
    Column("finish_reason", STRING_NULL, "stop, length, content_filter, ..."),
    Column("error_kind", STRING_NULL, "failed jobs: permanent | transient | rate_limited"),
    Column("error", STRING_NULL, "failed jobs: the reason (never a key)"),
    Column("prompt_tokens", INT64_NULL, "tokens the provider counted in the prompt"),
    Column("completion_tokens", INT64_NULL, "tokens the provider counted in the answer"),
    Column("reasoning_tokens", INT64_NULL, "of those, reasoning tokens (when reported)"),
    Column("latency_ms", FLOAT64_NULL, "time of the answering attempt, milliseconds"),
    Column("attempts", INT64, "attempts made, the first included"),
    Column("batch_id", STRING_NULL, "provider batch id (batch mode)"),
    Column("ts", FLOAT64_NULL, "when the line was written, unix seconds"),
    Column("raw", STRING_NULL, "the answer text as returned (reasoning excluded)"),
    Column("reasoning", STRING_NULL, "reasoning text, kept apart and never parsed"),
)


def answers_table(records: Sequence[Record]) -> Table:
    """The answers as columns, from the records that count (`read_log`: one per job id)."""
    usage = [r.usage or {} for r in records]
    cols: dict[str, Any] = {}
    for c in ANSWERS:
        if c.name in ("prompt_tokens", "completion_tokens", "reasoning_tokens"):
            cols[c.name] = [u.get(c.name) for u in usage]
        else:
            cols[c.name] = [getattr(r, c.name) for r in records]
    return Table("answers", ANSWERS, cols)


# -- the analysis ------------------------------------------------------------------------------
_KEY = (
    Column("model", STRING, "the model's label"),
    Column("condition", STRING, "vanilla | persona:<group>=<value> | steer:<Dimension>"),
    Column("family", STRING, "pvq (10 values) | higher_pvq (4) | bfi (Big Five)"),
    Column("dimension", STRING, "the dataset's dimension name, e.g. Self_Direction"),
)
SCORES: Final = _KEY + (
    Column("score", FLOAT64_NULL, "centred score: raw minus the family mean; null: no item"),
    Column("raw", FLOAT64_NULL, "mean rating (1-6) over the dimension's items"),
    Column("n_items", INT64, "items that had a rating and counted for the dimension"),
    Column("ci_low", FLOAT64_NULL, "bootstrap 95% interval of score, lower end"),
    Column("ci_high", FLOAT64_NULL, "bootstrap 95% interval of score, upper end"),
)
HUMAN_PERCENTILE: Final = Column(
    "human_percentile", FLOAT64_NULL,
    "percentile (0-100) of the score among the survey's human raters")
DELTAS: Final = _KEY + (
    Column("delta", FLOAT64_NULL, "condition minus vanilla centred score"),
    Column("ci_low", FLOAT64_NULL, "bootstrap 95% interval of delta, lower end"),
    Column("ci_high", FLOAT64_NULL, "bootstrap 95% interval of delta, upper end"),
)
STEERING: Final = (
    Column("model", STRING, "the model's label"),
    Column("steered", STRING, "the value the system prompt steered towards"),
    Column("measured", STRING, "the value measured"),
    Column("delta", FLOAT64_NULL, "steered minus vanilla centred score"),
)
VERSIONS: Final = _KEY[:2] + (Column("version", STRING, "prompt version"),) + _KEY[2:] + (
    Column("score", FLOAT64_NULL, "centred score from this prompt version alone"),
)
ALPHA: Final = (
    Column("family", STRING, "pvq | higher_pvq | bfi"),
    Column("dimension", STRING, "the dataset's dimension name"),
    Column("alpha", FLOAT64_NULL, "Cronbach's alpha over the run's models x versions"),
)



def _trust_columns() -> tuple[Column, ...]:
    cols = []
    for name in (*FIELDS, *RETEST_FIELDS):
        cols.append(Column(name, FLOAT64_NULL, FIELD_DOCS[name]))
        if name in INTERVAL_FIELDS:
            cols += [Column(f"{name}_{end}", FLOAT64_NULL,
                            f"cluster-bootstrap 95% interval of {name}, {side} end")
                     for end, side in (("ci_low", "lower"), ("ci_high", "upper"))]
    return (*_KEY[:2], *cols, Column("verdict", STRING, FIELD_DOCS["verdict"]))


# The trust panel, one row per model x condition (scores.json's models.<m>.<c>.trust).
TRUST: Final = _trust_columns()


Cells = list[tuple[int, int]]  # the (model, condition) pairs a table has rows for


def _ran(a: Analysis, conditions: Sequence[int]) -> Cells:
    """The (model, condition) pairs with at least one scored item: what the model ran."""
    counted = sum(np.asarray(a.scores.n_items[f]).sum(axis=2) for f in FAMILIES)
    return [(mi, ci) for mi in range(len(a.models)) for ci in conditions if counted[mi, ci] > 0]


def _grid(a: Analysis, cells: Cells) -> dict[str, list[Any]]:
    """The key columns of (model, condition, family, dimension), one block per cell."""
    cols: dict[str, list[Any]] = {"model": [], "condition": [], "family": [], "dimension": []}
    dims = [(f, d) for f in FAMILIES for d in FAMILY_DIMS[f]]
    for mi, ci in cells:
        cols["model"] += [a.models[mi]] * len(dims)
        cols["condition"] += [a.conditions[ci]] * len(dims)
        cols["family"] += [f for f, _ in dims]
        cols["dimension"] += [d for _, d in dims]
    return cols


def _flat(arrays: Mapping[str, np.ndarray], cells: Cells) -> np.ndarray:
    """(M, C, D) per family -> the rows of `_grid` (model, condition, family, dimension)."""
    whole = np.concatenate([np.asarray(arrays[f]) for f in FAMILIES], axis=2)
    if not cells:
        return np.empty(0, dtype=whole.dtype)
    mi, ci = (list(x) for x in zip(*cells, strict=True))
    return whole[mi, ci, :].reshape(-1)


def _percentiles(a: Analysis) -> dict[str, np.ndarray] | None:
    # Absent when the analysis had no survey to place the models among: then no column.
    pct = a.human_percentile
    if not pct or all(np.isnan(np.asarray(v)).all() for v in pct.values()):
        return None
    return pct


def scores_table(a: Analysis) -> Table:
    """One row per model x condition x family x dimension."""
    conds = _ran(a, range(len(a.conditions)))
    cols: dict[str, Any] = _grid(a, conds)
    cols["score"] = _flat(a.scores.score, conds)
    cols["raw"] = _flat(a.scores.raw, conds)
    cols["n_items"] = _flat(a.scores.n_items, conds).astype(np.int64)
    cols["ci_low"] = _flat(a.ci_low, conds)
    cols["ci_high"] = _flat(a.ci_high, conds)
    schema: tuple[Column, ...] = SCORES
    pct = _percentiles(a)
    if pct is not None:
        cols[HUMAN_PERCENTILE.name] = _flat(pct, conds)
        schema = SCORES + (HUMAN_PERCENTILE,)
    return Table("scores", schema, cols)


def deltas_table(a: Analysis) -> Table:
    """Every non-vanilla condition minus vanilla, per dimension, with its interval."""
    conds = _ran(a, [i for i, c in enumerate(a.conditions) if c != VANILLA])
    cols: dict[str, Any] = _grid(a, conds)
    cols["delta"] = _flat(a.deltas, conds)
    cols["ci_low"] = _flat(a.delta_ci_low, conds)
    cols["ci_high"] = _flat(a.delta_ci_high, conds)
    return Table("deltas", DELTAS, cols)


def steering_table(a: Analysis) -> Table:
    """Each model's 10x10 steering matrix, long form (models that ran no steering: none)."""
    cols: dict[str, list[Any]] = {"model": [], "steered": [], "measured": [], "delta": []}
    for m, matrix in a.steering.items():
        if np.isnan(matrix).all():
            continue
        for i, steered in enumerate(PVQ):
            for j, measured in enumerate(PVQ):
                cols["model"].append(m)
                cols["steered"].append(steered)
                cols["measured"].append(measured)
                cols["delta"].append(float(matrix[i, j]))
    return Table("steering", STEERING, cols)


def versions_table(a: Analysis) -> Table:
    """Each prompt version scored on its own (prompt-version sensitivity)."""
    cols: dict[str, list[Any]] = {c.name: [] for c in VERSIONS}
    for mi, ci in _ran(a, range(len(a.conditions))):
        for vi, ver in enumerate(a.versions):
            for f in FAMILIES:
                row = a.version_scores[f][mi, ci, vi]
                for d, x in zip(FAMILY_DIMS[f], row, strict=True):
                    for k, v in (("model", a.models[mi]), ("condition", a.conditions[ci]),
                                 ("version", ver), ("family", f), ("dimension", d),
                                 ("score", float(x))):
                        cols[k].append(v)
    return Table("versions", VERSIONS, cols)


def alpha_table(a: Analysis) -> Table:
    """Cronbach's alpha per dimension."""
    cols: dict[str, list[Any]] = {"family": [], "dimension": [], "alpha": []}
    for f in FAMILIES:
        if f not in a.alpha:
            continue
        for d, x in zip(FAMILY_DIMS[f], a.alpha[f], strict=True):
            cols["family"].append(f)
            cols["dimension"].append(d)
            cols["alpha"].append(float(x))
    return Table("alpha", ALPHA, cols)


def trust_table(a: Analysis) -> Table:
    """The trust panel: one row per model x condition that ran (retest columns null unless
    jobs were repeated)."""
    cols: dict[str, list[Any]] = {c.name: [] for c in TRUST}
    if a.trust is not None:
        for model, cond in a.trust.rows():
            row = a.trust.get(model, cond)
            row.update(model=model, condition=cond)
            for c in TRUST:
                v = row.get(c.name)
                cols[c.name].append(np.nan if v is None and c.type == FLOAT64_NULL else v)
    return Table("trust", TRUST, cols)
