"""Merging run dirs: shard logs of one config become one log, one row per job id."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vpbatch.errors import RunDirError
from vpbatch.log.counts import Counted
from vpbatch.log.lock import run_dir_lock
from vpbatch.log.reader import LogReader
from vpbatch.log.records import OK
from vpbatch.log.repair import set_aside
from vpbatch.log.rundir import CONFIG_NAME, HASH_NAME, SOURCE_NAME, RunDir, open_run_dir

__all__ = ["merge_run_dirs", "MergeResult"]


@dataclass(slots=True)
class MergeResult:
    rows: int  # lines read over all inputs
    jobs: int  # lines written: one per job id
    inputs: int


def _check_same_config(ins: list[RunDir], out: RunDir) -> RunDir | None:
    """The input whose config is copied; RunDirError naming both hashes on a mismatch."""
    with_cfg = [(rd, rd.config_hash()) for rd in [*ins, out]]
    first = next(((rd, h) for rd, h in with_cfg if h is not None), None)
    if first is None:
        return None
    for rd, h in with_cfg:
        if rd is out and h is None:
            continue  # a fresh OUT gets the inputs' config
        if h != first[1]:
            raise RunDirError(
                f"{rd.path} was run from another config than {first[0].path} (sha256 "
                f"{(h or 'none')[:12]} vs {first[1][:12]}); merge only shards of one config"
            )
    return first[0] if first[0] is not out else None


def _winners(ins: list[RunDir]) -> tuple[set[tuple[int, int]], list[list[int]]]:
    """(input, byte offset) of each job's counting line, the inputs read one after another;
    and per input, the offsets of its corrupt lines (skipped, named in a warning)."""
    counted: Counted[tuple[int, int]] = Counted()
    corrupt = []
    for k, rd in enumerate(ins):
        reader = LogReader(rd.log_path)
        for offset, line in reader.lines():
            row = reader.parse(offset, line)
            if row is not None:
                counted.add(row["job_id"], row.get("status") == OK, (k, offset))
        reader.warn()
        corrupt.append(reader.corrupt)
    return set(counted.lines()), corrupt


def merge_run_dirs(out_dir: Path, in_dirs: list[Path]) -> MergeResult:
    """Write OUT/log.jsonl (deduplicated by job id, lines byte-identical) and OUT's config."""
    ins = [open_run_dir(p) for p in in_dirs]
    with run_dir_lock(Path(out_dir), "merge"):  # no sweep or import writes OUT meanwhile
        return _merge(ins, out_dir)


def _merge(ins: list[RunDir], out_dir: Path) -> MergeResult:
    out = RunDir.at(Path(out_dir))
    resolved = {rd.path.resolve() for rd in ins}
    if out.log_path.exists() and out.path.resolve() not in resolved:
        raise RunDirError(f"{out.path} already holds a log; choose an empty OUT_DIR, or list "
                          "it among the inputs to merge into it")
    src = _check_same_config(ins, out)
    keep, corrupt = _winners(ins)
    out.path.mkdir(parents=True, exist_ok=True)
    tmp = out.log_path.with_name(out.log_path.name + ".tmp")
    rows = 0
    with open(tmp, "wb") as f:
        for k, rd in enumerate(ins):
            for offset, line in LogReader(rd.log_path).lines():
                rows += 1
                if (k, offset) in keep:
                    f.write(line + b"\n")
        f.flush()
        os.fsync(f.fileno())
    if src is not None:
        for name in (CONFIG_NAME, HASH_NAME, SOURCE_NAME):
            if (src.path / name).exists() and src.path.resolve() != out.path.resolve():
                shutil.copyfile(src.path / name, out.path / name)
    for rd, bad in zip(ins, corrupt, strict=True):
        if bad and rd.path.resolve() == out.path.resolve():  # OUT's own log is replaced:
            set_aside(rd.log_path, bad)  # its corrupt lines go aside, as `run` does
    os.replace(tmp, out.log_path)  # last: a crash before it leaves the inputs untouched
    return MergeResult(rows=rows, jobs=len(keep), inputs=len(ins))
