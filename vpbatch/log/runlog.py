"""The append-only JSONL log of finished jobs: the commit point of a sweep.

A line is written (one `write` on an O_APPEND descriptor) only after its answer has arrived,
so a crash, even `kill -9`, loses at most what was in flight. On open, a torn last line (a
write cut short) is cut off, corrupt lines are moved to log.corrupt.jsonl (vpbatch.log.repair),
and a job logged more than once counts once (vpbatch.log.counts).

An append that fails (a full disk: ENOSPC, EDQUOT, EFBIG past a size limit; EIO) cuts off
whatever part of its line reached the file and raises LogWriteError: the sweep stops with every
line before it intact, and a resume after space is freed sends exactly the jobs not logged.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vpbatch.errors import LogWriteError
from vpbatch.log.counts import Counted
from vpbatch.log.reader import LogReader, repair_torn_tail
from vpbatch.log.records import OK, Record, unrated_of
from vpbatch.log.repair import move_corrupt

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

    __slots__ = ("path", "_fd", "_jobs", "_unrated", "_size", "_broken")

    def __init__(self, path: Path) -> None:
        """Open for appending; the caller holds the run dir's lock (the log may be rewritten)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._jobs: Counted[None] = Counted()
        self._unrated: set[str] = set()  # answered jobs whose counting answer is unrated
        reader = LogReader(self.path)
        for row in reader.rows(warn=False):  # the move below says what was skipped
            ok = row.get("status") == OK
            if self._jobs.add(row["job_id"], ok, None) and ok and unrated_of(row):
                self._unrated.add(row["job_id"])
        if reader.corrupt:  # their jobs are not in _jobs: they are sent again
            move_corrupt(self.path, reader.corrupt)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size  # where the next line starts (one writer)
        self._broken: str | None = None  # why appends stopped

    def is_done(self, jid: str, *, retry_failed: bool = False) -> bool:
        """True when the job needs no request: answered, or failed for good (unless retried)."""
        return jid in self._jobs.answered or (not retry_failed and jid in self._jobs.failed)

    def is_unrated(self, jid: str) -> bool:
        """True when the job's answer (the one that counts) is one neither parser can rate."""
        return jid in self._unrated

    @property
    def n_ok(self) -> int:
        return len(self._jobs.answered)

    @property
    def n_failed(self) -> int:
        return len(self._jobs.failed)

    def append(self, record: Record) -> None:
        """Commit one finished job: a single write of one line, straight to the OS."""
        if self._broken is not None:  # nothing may follow a failed line: it could merge
            raise LogWriteError(self._broken)
        line = record.to_json()
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # a short write: the rest fails with the real cause
                more = os.write(self._fd, line[written:])
                if not more:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += more
        except OSError as exc:
            raise self._failed(exc) from exc
        self._size += written
        ok = record.status == OK
        if self._jobs.add(record.job_id, ok, None) and ok and record.unrated is not None:
            self._unrated.add(record.job_id)

    def _failed(self, exc: OSError) -> LogWriteError:
        """Cut off what reached the file of the failed line; the error that stops the sweep."""
        # Shrinking needs no free space. If it fails anyway, the part stays as a torn tail,
        # which every reader leaves out and the next writer cuts off.
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)
        name = errno.errorcode.get(exc.errno or 0, "error")
        self._broken = (
            f"cannot append to {self.path}: {exc.strerror or exc} ({name}). The sweep stopped; "
            "every line already written is kept. Free space on that disk, then run the same "
            "command again to resume (finished jobs are not sent again)")
        return LogWriteError(self._broken)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.fsync(fd)
            except OSError as exc:  # a full disk may only show here (NFS, delayed allocation)
                if self._broken is None:
                    raise self._failed_sync(exc) from exc
            finally:
                os.close(fd)

    def _failed_sync(self, exc: OSError) -> LogWriteError:
        return LogWriteError(
            f"cannot flush {self.path} to disk: {exc.strerror or exc}; the last lines may be "
            "lost. Free space on that disk, then run the same command again to resume")

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
