"""Reading a JSONL log: its complete lines in file order; a torn tail and bad lines decided here.

Every reader of a log (resume, status, report, merge, the scorer, the batch journal) reads
through `LogReader`, so the two questions a log can raise are answered once:
- A last line without its newline is a write cut short (a crash mid-append). It never
  committed, so it is left out. Writers cut it off (`repair_torn_tail`) before appending.
- A line that is not JSON is decided by `LogReader.parse` alone, and every caller skips a
  line it returns None for. Today the log is corrupt and the read stops with a LogError naming
  the file and the line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from vpbatch.errors import LogError

__all__ = ["LogReader", "repair_torn_tail", "BLOCK_BYTES"]

BLOCK_BYTES = 1 << 22  # 4 MB a read: few calls, and a block's arrays stay in cache


class LogReader:
    """Bytes [start, stop) of a log, read as whole lines; a missing file reads as empty."""

    __slots__ = ("path", "start", "stop")

    def __init__(self, path: Path, start: int = 0, stop: int | None = None) -> None:
        self.path = Path(path)
        self.start = start  # a line start: 0, or just past a newline
        self.stop = stop

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

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every complete line as a dict, in file order (duplicates of a job included)."""
        loads = orjson.loads
        for buf, end, offset in self.blocks():
            lines = bytes(buf[:end]).split(b"\n")[:-1]
            for i, line in enumerate(lines):
                try:
                    row = loads(line)
                except orjson.JSONDecodeError:
                    if not line.strip():
                        continue  # a blank line carries nothing
                    row = self.parse(offset + sum(len(x) + 1 for x in lines[:i]), line)
                    if row is None:
                        continue
                yield row

    def parse(self, offset: int, line: bytes) -> dict[str, Any] | None:
        """The line at file `offset` as a dict, or None for a line to skip (none is, today).

        The one place that decides what a line that is not JSON means, for every reader.
        """
        try:
            row: dict[str, Any] = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise LogError(
                f"{self.path}:{self.line_number(offset)} is not valid JSON ({exc}); the log is "
                "corrupt beyond a torn last line. Move that line aside or restore the file."
            ) from exc
        return row

    def line_number(self, offset: int) -> int:
        """The 1-based line number of the line at `offset` (reads the file up to it)."""
        count, pos = 1, 0
        with open(self.path, "rb") as f:
            while pos < offset:
                chunk = f.read(min(BLOCK_BYTES, offset - pos))
                if not chunk:
                    break
                count += chunk.count(b"\n")
                pos += len(chunk)
        return count


def repair_torn_tail(path: Path) -> int:
    """Cut a last line that lacks its newline (a torn write); return the bytes removed.

    Writers call this before appending, so a new line never continues a torn one.
    """
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
