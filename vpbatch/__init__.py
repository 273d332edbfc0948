"""vpbatch: Value Portrait sweeps of language models, and the psychometric scoring of them.

The subpackages, bottom to top; each imports only those before it (tests/test_layout.py):
`errors` (the exception types) → `transport` (request/answer records, failure kinds, the one
retry loop, the session) → `benchmark` (items, prompts, parsers, conditions, token estimates)
→ `config` (the TOML schema, validated) → `log` (records, the append-only log, run dirs) →
`sim` (the simulated respondent) → `providers` (one module per API, a registry of them) →
`scoring` (ratings cube, scores, analysis) → `sweep` (grid of jobs, engine, limits, batch) →
`report` → `api` (the Python API) → `cli` (the `vpbatch` command) → `demos` (make targets).

`vpbatch.run`, `vpbatch.run_async`, `vpbatch.load` and `vpbatch.export` are the Python API
(`vpbatch.api`); they are imported on first use, so `import vpbatch` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpbatch.api import Run, export, load, run, run_async
    from vpbatch.errors import VPBatchError
    from vpbatch.report.tables import Column, MissingExtra, Table
    from vpbatch.sweep.engine import ModelSummary, SweepSummary

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "run",
    "run_async",
    "load",
    "export",
    "Run",
    "Table",
    "Column",
    "SweepSummary",
    "ModelSummary",
    "MissingExtra",
    "VPBatchError",
]

# public name -> the module that defines it (imported when the name is first used)
_LAZY = {
    "run": "vpbatch.api", "run_async": "vpbatch.api", "load": "vpbatch.api",
    "export": "vpbatch.api", "Run": "vpbatch.api",
    "Table": "vpbatch.report.tables", "Column": "vpbatch.report.tables",
    "MissingExtra": "vpbatch.report.tables",
    "SweepSummary": "vpbatch.sweep.engine", "ModelSummary": "vpbatch.sweep.engine",
    "VPBatchError": "vpbatch.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vpbatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
