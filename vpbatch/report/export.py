"""`vpbatch export`: a run's tables as Parquet (pyarrow, an optional extra) or CSV files.

Beside the tables goes `schema.json`: every column's name, type and meaning, and the schema
version, so a CSV reader knows the types that a Parquet file carries itself.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from vpbatch.errors import ConfigError
from vpbatch.report.tables import SCHEMA_VERSION, Table

__all__ = ["FORMATS", "write_tables", "schema_doc"]

FORMATS = ("parquet", "csv")


def schema_doc(tables: Mapping[str, Table]) -> dict[str, object]:
    """The schema of each table, as `schema.json` holds it."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tables": {name: [{"name": c.name, "type": c.type, "doc": c.doc} for c in t.schema]
                   for name, t in tables.items()},
    }


def _write_csv(t: Table, path: Path) -> None:
    cols = [t[c] for c in t.columns]
    nullable = [c.type.endswith("?") for c in t.schema]
    ints = [c.type.startswith("int") for c in t.schema]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(t.columns)
        for i in range(len(t)):
            row: list[object] = []
            for a, null, is_int in zip(cols, nullable, ints, strict=True):
                v = a[i]
                if v is None or (null and isinstance(v, float) and math.isnan(v)):
                    row.append("")  # null
                elif is_int:
                    row.append(int(v))  # nullable ints are held as floats: print 5, not 5.0
                else:
                    row.append(v)
            w.writerow(row)


def write_tables(tables: Mapping[str, Table], out_dir: Path, fmt: str) -> list[Path]:
    """Write each table as `<name>.parquet` or `<name>.csv`, plus schema.json; their paths."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        from vpbatch.report.tables import need_extra

        pq = need_extra("pyarrow.parquet", "parquet")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, t in tables.items():
        path = out_dir / f"{name}.{fmt}"
        tmp = path.with_name(path.name + ".tmp")  # a reader never sees half a file
        if fmt == "parquet":
            pq.write_table(t.to_arrow(), tmp)
        else:
            _write_csv(t, tmp)
        os.replace(tmp, path)
        written.append(path)
    schema = out_dir / "schema.json"
    schema.write_bytes(orjson.dumps(schema_doc(tables), option=orjson.OPT_INDENT_2))
    return [*written, schema]
