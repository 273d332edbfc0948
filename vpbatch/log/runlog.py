"""The append-only JSONL log of finished jobs: the commit point of a sweep.

A line is written (one `write` on an O_APPEND descriptor) only after its answer has arrived,
so a crash, even `kill -9`, loses at most what was in flight. On open, a torn last line (a
write cut short) is cut off; a job logged more than once counts once (vpbatch.log.counts).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vpbatch.errors import LogError
from vpbatch.log.counts import Counted
from vpbatch.log.reader import LogReader, repair_torn_tail
from vpbatch.log.records import OK, Record

__all__ = ["RunLog", "iter_log", "read_log", "LOG_NAME"]

LOG_NAME = "log.jsonl"


def iter_log(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete line of a log as a dict, in file order (duplicates included)."""
    return LogReader(path).rows()


def read_log(path: Path) -> list[Record]:
    """The record that counts for each job: the answers in log order, then the failures."""
    counted: Counted[dict[str, Any]] = Counted()
    for row in iter_log(path):
        counted.add(row["job_id"], row.get("status") == OK, row)
    return [Record.from_dict(d) for d in counted.lines()]


class RunLog:
    """An open log: knows which jobs are finished and appends new ones, one write per line."""

    __slots__ = ("path", "_fd", "_jobs")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._jobs: Counted[None] = Counted()
        for row in iter_log(self.path):
            self._jobs.add(row["job_id"], row.get("status") == OK, None)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def is_done(self, jid: str, *, retry_failed: bool = False) -> bool:
        """True when the job needs no request: answered, or failed for good (unless retried)."""
        return jid in self._jobs.answered or (not retry_failed and jid in self._jobs.failed)

    @property
    def n_ok(self) -> int:
        return len(self._jobs.answered)

    @property
    def n_failed(self) -> int:
        return len(self._jobs.failed)

    def append(self, record: Record) -> None:
        """Commit one finished job: a single write of one line, straight to the OS."""
        line = record.to_json()
        written = os.write(self._fd, line)
        if written != len(line):  # short writes on regular files mean a full disk
            raise LogError(f"short write to {self.path} (disk full?); free space and resume")
        self._jobs.add(record.job_id, record.status == OK, None)

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
