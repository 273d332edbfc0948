"""Merging run dirs: shard logs of one config become one log, one row per job id."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from vpbatch.errors import LogError, RunDirError
from vpbatch.log.records import OK
from vpbatch.log.rundir import CONFIG_NAME, HASH_NAME, SOURCE_NAME, RunDir, open_run_dir

__all__ = ["merge_run_dirs", "MergeResult"]


@dataclass(slots=True)
class MergeResult:
    rows: int  # lines read over all inputs
    jobs: int  # lines written: one per job id
    inputs: int


def _lines(path: Path) -> Iterator[bytes]:
    """The complete lines of a log, as bytes (a torn last line never committed: skip it)."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                return
            if line.strip():
                yield line


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


def _winners(ins: list[RunDir]) -> dict[str, tuple[int, int]]:
    """job id -> (input, line) of the row that counts: the first ok, else the latest failure."""
    win: dict[str, tuple[int, int]] = {}
    ok: set[str] = set()
    for k, rd in enumerate(ins):
        for n, line in enumerate(_lines(rd.log_path)):
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise LogError(f"{rd.log_path}: line {n + 1} is not valid JSON ({exc}); move "
                               "it aside and merge again") from exc
            jid = row["job_id"]
            if jid in ok:
                continue
            win[jid] = (k, n)
            if row.get("status") == OK:
                ok.add(jid)
    return win


def merge_run_dirs(out_dir: Path, in_dirs: list[Path]) -> MergeResult:
    """Write OUT/log.jsonl (deduplicated by job id, lines byte-identical) and OUT's config."""
    ins = [open_run_dir(p) for p in in_dirs]
    out = RunDir.at(Path(out_dir))
    resolved = {rd.path.resolve() for rd in ins}
    if out.log_path.exists() and out.path.resolve() not in resolved:
        raise RunDirError(f"{out.path} already holds a log; choose an empty OUT_DIR, or list "
                          "it among the inputs to merge into it")
    src = _check_same_config(ins, out)
    win = _winners(ins)
    out.path.mkdir(parents=True, exist_ok=True)
    tmp = out.log_path.with_name(out.log_path.name + ".tmp")
    rows = 0
    with open(tmp, "wb") as f:
        for k, rd in enumerate(ins):
            for n, line in enumerate(_lines(rd.log_path)):
                rows += 1
                jid = orjson.loads(line)["job_id"]
                if win.get(jid) == (k, n):
                    f.write(line)
        f.flush()
        os.fsync(f.fileno())
    if src is not None:
        for name in (CONFIG_NAME, HASH_NAME, SOURCE_NAME):
            if (src.path / name).exists() and src.path.resolve() != out.path.resolve():
                shutil.copyfile(src.path / name, out.path / name)
    os.replace(tmp, out.log_path)  # last: a crash before it leaves the inputs untouched
    return MergeResult(rows=rows, jobs=len(win), inputs=len(ins))
