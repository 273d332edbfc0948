"""Reading a JSONL log: its complete lines in file order; a torn tail and bad lines decided here.

Every reader of a log (resume, status, report, merge, the scorer, the batch journal) reads
through `LogReader`, so the two questions a log can raise are answered once:
- A last line without its newline is a write cut short (a crash mid-append). It never
  committed, so it is left out. Writers cut it off (`repair_torn_tail`) before appending.
- A complete line that is not a JSON object holding the reader's key (`job_id` for run logs)
  is corrupt: a disk that lost a block, a hand edit gone wrong. `LogReader.parse` alone decides
  that; every caller skips a line it returns None for, and the reader says so once per file
  and process (`warn_corrupt`: the file, the line numbers, the count). Refusing the whole log
  for one line would block score, status and resume over one job; `run` moves such lines to
  log.corrupt.jsonl and sends their jobs again (vpbatch.log.repair).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from vpbatch.errors import CorruptLinesWarning

__all__ = ["LogReader", "repair_torn_tail", "complete_size", "line_numbers", "warn_corrupt",
           "describe_lines", "BLOCK_BYTES", "JOB_KEY"]

BLOCK_BYTES = 1 << 22  # 4 MB a read: few calls, and a block's arrays stay in cache
JOB_KEY = "job_id"  # what every line of a run log holds
_SHOWN = 10  # line numbers a message lists; the count covers the rest


class LogReader:
    """Bytes [start, stop) of a log, read as whole lines; a missing file reads as empty.

    `key` is what a line must hold to count (None: any JSON object, as the batch journal's).
    """

    __slots__ = ("path", "start", "stop", "key", "corrupt")

    def __init__(self, path: Path, start: int = 0, stop: int | None = None,
                 key: str | None = JOB_KEY) -> None:
        self.path = Path(path)
        self.start = start  # a line start: 0, or just past a newline
        self.stop = stop
        self.key = key
        self.corrupt: list[int] = []  # file offsets of the corrupt lines parsed so far

    def blocks(self, size: int = BLOCK_BYTES, pad: int = 0) -> Iterator[tuple[bytearray, int, int]]:
        """(buffer, end, offset): buffer[:end] holds whole lines, the first at file `offset`.

        One buffer of size + `pad` bytes (slack for readers that look a little past a line end)
        is read into again for each block; it grows only for a line longer than `size`.
        """
        if not self.path.exists():
            return
        with open(self.path, "rb", buffering=0) as f:
            stop = os.fstat(f.fileno()).st_size if self.stop is None else self.stop
            left, offset = stop - self.start, self.start
            f.seek(offset)
            buf, have = bytearray(size + pad), 0
            while left > 0:
                if have == size:  # one line longer than the buffer: grow it
                    size *= 2
                    buf = buf[:have] + bytearray(size + pad - have)
                with memoryview(buf) as view:
                    got = f.readinto(view[have : have + min(size - have, left)])
                if not got:
                    return
                left -= got
                filled = have + got
                end = buf.rfind(b"\n", 0, filled) + 1
                if end:
                    yield buf, end, offset
                    buf[: filled - end] = buf[end:filled]
                    offset += end
                have = filled - end
            # Bytes left after the last newline are a torn tail: never committed, left out.

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(offset, line) of every complete line that is not blank; the newline is cut off."""
        for buf, end, offset in self.blocks():
            pos = offset
            for line in bytes(buf[:end]).split(b"\n")[:-1]:
                if line.strip():
                    yield pos, line
                pos += len(line) + 1

    def rows(self, warn: bool = True) -> Iterator[dict[str, Any]]:
        """Every valid line as a dict, in file order (duplicates of a job included); corrupt
        lines are skipped, and once read to the end, named in one warning (unless not `warn`)."""
        loads, key = orjson.loads, self.key
        for buf, end, offset in self.blocks():
            lines = bytes(buf[:end]).split(b"\n")[:-1]
            for i, line in enumerate(lines):
                try:
                    row = loads(line)
                except orjson.JSONDecodeError:
                    row = None
                if type(row) is not dict or (key is not None and key not in row):
                    if not line.strip():
                        continue  # a blank line carries nothing
                    row = self.parse(offset + sum(len(x) + 1 for x in lines[:i]), line)
                    if row is None:
                        continue
                yield row
        if warn:
            self.warn()

    def parse(self, offset: int, line: bytes) -> dict[str, Any] | None:
        """The line at file `offset` as a dict, or None for a corrupt line (noted, to skip).

        The one place that decides what a line that is not a record means, for every reader.
        """
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            row = None
        if type(row) is dict and (self.key is None or self.key in row):
            return row
        self.corrupt.append(offset)
        return None

    def warn(self) -> None:
        """Name the corrupt lines parsed so far in one warning (once per file and process)."""
        if self.corrupt:
            warn_corrupt(self.path, line_numbers(self.path, self.corrupt))


def line_numbers(path: Path, offsets: Iterable[int]) -> list[int]:
    """The 1-based line numbers of the lines starting at `offsets`, sorted; one read of the file."""
    out: list[int] = []
    count, pos = 1, 0
    with open(path, "rb") as f:
        for target in sorted(set(offsets)):
            while pos < target:
                chunk = f.read(min(BLOCK_BYTES, target - pos))
                if not chunk:
                    break
                count += chunk.count(b"\n")
                pos += len(chunk)
            out.append(count)
    return out


def describe_lines(lines: list[int]) -> str:
    """"line 7", "lines 7, 9" or "lines 7, 9, ... and 40 more": a message names them all or
    the first few, never a screenful."""
    shown = ", ".join(map(str, lines[:_SHOWN]))
    more = f", ... and {len(lines) - _SHOWN:,} more" if len(lines) > _SHOWN else ""
    return f"line{'s' if len(lines) > 1 else ''} {shown}{more}"


_warned: set[tuple[str, tuple[int, ...]]] = set()
_warned_lock = threading.Lock()  # the scorer reads a log by threads


def warn_corrupt(path: Path, lines: list[int]) -> None:
    """One warning per process for the corrupt `lines` of `path`, however many readers meet
    them (a command may read a log twice: the user needs to hear it once)."""
    seen = (str(Path(path).resolve()), tuple(lines))
    with _warned_lock:
        if seen in _warned:
            return
        _warned.add(seen)
    n = len(lines)
    warnings.warn(
        f"{path}: skipped {n:,} corrupt line{'s' if n > 1 else ''} ({describe_lines(lines)}; "
        "not a JSON record). `vpbatch run` moves them to log.corrupt.jsonl and sends their "
        "jobs again; `vpbatch log check RUN_DIR` reports the log's health",
        CorruptLinesWarning, stacklevel=2)


def complete_size(f: BinaryIO, size: int) -> int:
    """Where the last complete line of the first `size` bytes of `f` ends (0 if none does)."""
    # Walk back in blocks to the last newline; lines are small, so this reads little.
    pos, block = size, 1 << 16
    while pos > 0:
        start = max(0, pos - block)
        f.seek(start)
        chunk = f.read(pos - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        pos = start
    return 0


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that lacks its newline (a torn write); return the bytes removed.

    Writers call this before appending, so a new line never continues a torn one.
    """
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        keep = complete_size(f, size)
        if keep < size:
            f.truncate(keep)
        return size - keep
