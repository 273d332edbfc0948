"""The resume check on a log's job ids: are they the ids this vpbatch gives the same jobs?

Job ids came to digest the whole request body (commit 1963436). A log written before that has
other ids for the same (model, condition, version, item, repeat): resuming it would send every
job again and log the answers beside the old ones, as if they were extra repeats. The config
digest cannot see this (the config is the same), so a resume samples the log's head and tail
and looks their keys up in the grid.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from vpbatch.benchmark.conditions import Conditions
from vpbatch.benchmark.dataset import Dataset
from vpbatch.config.schema import Config
from vpbatch.errors import RunDirError
from vpbatch.sweep.grid import iter_model_jobs

__all__ = ["check_log_ids", "sample_rows", "SAMPLE_BYTES"]

SAMPLE_BYTES = 64 * 1024  # at the head and at the tail of the log: a few hundred lines each

# (model, condition, version, portrait_id, option_id, repeat): a job, whatever its id
Key = tuple[str, str, str, int, int, int]


def sample_rows(path: Path, size: int = SAMPLE_BYTES) -> list[dict[str, Any]]:
    """The complete lines within the first and the last `size` bytes of a log, parsed."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(0)
            if end <= 2 * size:
                lines = f.read().split(b"\n")[:-1]  # the last piece is empty or torn
            else:
                lines = f.read(size).split(b"\n")[:-1]
                f.seek(end - size)
                lines += f.read().split(b"\n")[1:-1]  # the first piece is a line's end
    except FileNotFoundError:
        return []
    rows = []
    for line in lines:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a torn line: the log repairs it, and it says nothing here
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _key(row: dict[str, Any]) -> Key | None:
    try:
        return (str(row["model"]), str(row["condition"]), str(row["version"]),
                int(row["portrait_id"]), int(row["option_id"]), int(row.get("repeat") or 0))
    except (KeyError, TypeError, ValueError):
        return None


def _sampled(cfg: Config, rows: list[dict[str, Any]]) -> dict[str, dict[Key, str]]:
    """model -> key -> logged id, for the sampled lines a sweep of this config wrote."""
    names = {m.name for m in cfg.models}
    out: dict[str, dict[Key, str]] = {}
    for row in rows:
        extra = row.get("extra")
        if isinstance(extra, dict) and "source" in extra:
            continue  # imported recordings: their ids never were a sweep's
        key = _key(row)
        if key is not None and key[0] in names and isinstance(row.get("job_id"), str):
            out.setdefault(key[0], {})[key] = row["job_id"]
    return out


def check_log_ids(cfg: Config, ds: Dataset, conds: Conditions, log_path: Path) -> None:
    """RunDirError if the log's jobs are in the grid under other ids, none under this one's."""
    wanted = _sampled(cfg, sample_rows(log_path))
    keyed = matched = 0
    for m in cfg.models:
        left = dict(wanted.get(m.name, {}))
        if not left:
            continue
        for job in iter_model_jobs(cfg, m, ds, conds):  # item-major: the head's items come first
            key = (job.model, job.condition, job.version, job.portrait_id, job.option_id,
                   job.repeat)
            logged = left.pop(key, None)
            if logged is not None:
                keyed += 1
                matched += logged == job.job_id
                if not left:
                    break
    if keyed and not matched:
        run_dir = log_path.parent
        raise RunDirError(
            f"{log_path} was written by an older vpbatch: none of the {keyed} jobs checked "
            "(the log's first and last lines) has the id this vpbatch gives it (job ids came to "
            "cover the whole request body), so resuming would send every job again and log the "
            "new answers beside the old ones as extra repeats; run this config in a new "
            f"--run-dir (this one still scores and reports as it is: vpbatch score {run_dir})"
        )
