"""`adapted.json` in a run dir: each model's request form as learnt from its server.

Written when a model adapts (a 400 refused `max_tokens` or `temperature`, providers.adapt) and
read when the run resumes, so the model starts in that form; `status` and the summary show it.
One JSON object per model label: {"form": {...}, "changes": [...], "why": "...", "ts": ...}.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ADAPTED_NAME", "load_adapted", "save_adapted", "adapted_lines"]

ADAPTED_NAME = "adapted.json"


def load_adapted(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Every adapted model's entry; {} when none adapted (or the file is unreadable)."""
    path = Path(run_dir) / ADAPTED_NAME
    try:
        data = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) \
        else {}


def save_adapted(run_dir: Path, model: str, form: dict[str, Any], changes: tuple[str, ...],
                 why: str) -> None:
    """Record `model`'s new form (atomically: a crash leaves the old file or the new one)."""
    path = Path(run_dir) / ADAPTED_NAME
    data = load_adapted(run_dir)
    data[model] = {"form": form, "changes": list(changes), "why": why, "ts": time.time()}
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    os.replace(tmp, path)


def adapted_lines(run_dir: Path) -> list[str]:
    """One line per adapted model, for `status` and the run summary."""
    return [f"{name}: adapted to its server: {'; '.join(e.get('changes') or [])} "
            f"({e.get('why', '')})" for name, e in sorted(load_adapted(run_dir).items())
            if e.get("changes")]  # a switch undone (it did not help) leaves no line
