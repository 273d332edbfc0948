"""The append-only JSONL log of finished jobs: the commit point of a sweep.

A line is written (one `write` on an O_APPEND descriptor) only after its answer has arrived,
so a crash, even `kill -9`, loses at most what was in flight. On open, a torn last line (a
write cut short) is cut off; duplicates of a job id are tolerated and counted once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from vpbatch.errors import LogError
from vpbatch.log.records import OK, Record

__all__ = ["RunLog", "iter_log", "read_log", "repair_torn_tail", "LOG_NAME"]

LOG_NAME = "log.jsonl"


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that lacks its newline (a torn write); return the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        # Walk back in blocks to the last newline; lines are small, so this reads little.
        pos, block = size, 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep < size:
            f.truncate(keep)
        return size - keep


def iter_log(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of a log as a dict, in file order (duplicates included)."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return  # a torn tail: the write never finished, so the job never committed
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise LogError(
                        f"{path}:{lineno} is not valid JSON ({exc}); the log is corrupt beyond "
                        "a torn last line. Move that line aside or restore the file."
                    ) from exc


def dedupe(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """job_id -> the row that counts: the first "ok" row, else the latest failure."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        prev = out.get(row["job_id"])
        if prev is None or prev.get("status") != OK:  # an answer, once there, stays
            out[row["job_id"]] = row
    return out


def read_log(path: Path) -> list[Record]:
    """The deduplicated records of a log, one per job id, in first-seen order."""
    return [Record.from_dict(d) for d in dedupe(iter_log(path)).values()]


class RunLog:
    """An open log: knows which jobs are finished and appends new ones, one write per line."""

    __slots__ = ("path", "_fd", "_done", "_failed")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._done: set[str] = set()
        self._failed: set[str] = set()
        if self.path.exists():
            for row in iter_log(self.path):
                self._note(row["job_id"], row.get("status") == OK)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _note(self, jid: str, ok: bool) -> None:
        if ok:
            self._done.add(jid)
            self._failed.discard(jid)
        elif jid not in self._done:
            self._failed.add(jid)

    def is_done(self, jid: str, *, retry_failed: bool = False) -> bool:
        """True when the job needs no request: answered, or failed for good (unless retried)."""
        return jid in self._done or (not retry_failed and jid in self._failed)

    @property
    def n_ok(self) -> int:
        return len(self._done)

    @property
    def n_failed(self) -> int:
        return len(self._failed)

    def append(self, record: Record) -> None:
        """Commit one finished job: a single write of one line, straight to the OS."""
        line = record.to_json()
        written = os.write(self._fd, line)
        if written != len(line):  # short writes on regular files mean a full disk
            raise LogError(f"short write to {self.path} (disk full?); free space and resume")
        self._note(record.job_id, record.status == OK)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
