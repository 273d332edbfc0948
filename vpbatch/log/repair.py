"""Moving a log's corrupt lines aside, so a resume re-sends the jobs they held and no other.

The log is append-only, so a line cannot be cut out in place. Under the run dir's writer lock:
1. the corrupt lines are appended, byte for byte, to log.corrupt.jsonl beside the log (fsynced);
2. every other line, byte for byte, goes to a temporary file (fsynced);
3. which replaces the log by an atomic rename (the directory fsynced after).
A crash before 3 leaves the log as it was: its corrupt lines are moved again next time, so
log.corrupt.jsonl may hold them twice, and nothing is lost. Readers that had the old log open
read it to the end undisturbed.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import BinaryIO

from vpbatch.errors import CorruptLinesWarning, LogWriteError
from vpbatch.log.reader import BLOCK_BYTES, describe_lines, line_numbers

__all__ = ["CORRUPT_NAME", "move_corrupt", "set_aside"]

CORRUPT_NAME = "log.corrupt.jsonl"


def set_aside(log_path: Path, offsets: list[int]) -> list[tuple[int, int]]:
    """Append the lines starting at `offsets` to log.corrupt.jsonl (fsynced); their spans."""
    spans: list[tuple[int, int]] = []
    with open(log_path, "rb") as src, open(log_path.with_name(CORRUPT_NAME), "ab") as out:
        for start in sorted(set(offsets)):
            src.seek(start)
            line = src.readline()
            out.write(line if line.endswith(b"\n") else line + b"\n")
            spans.append((start, start + len(line)))
        out.flush()
        os.fsync(out.fileno())
    return spans


def move_corrupt(log_path: Path, offsets: list[int]) -> list[int]:
    """Move the lines of `log_path` starting at `offsets` to log.corrupt.jsonl; their numbers.

    The caller holds the run dir's lock (no one appends meanwhile). LogWriteError if the disk
    cannot take the copy; the log is then left as it was.
    """
    log_path = Path(log_path)
    lines = line_numbers(log_path, offsets)
    tmp = log_path.with_name(log_path.name + ".repair.tmp")
    try:
        spans = set_aside(log_path, offsets)
        with open(log_path, "rb") as src, open(tmp, "wb") as out:
            pos = 0
            for start, end in [*spans, (os.fstat(src.fileno()).st_size, -1)]:
                _copy(src, out, pos, start)
                pos = end
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, log_path)
        _fsync_dir(log_path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LogWriteError(
            f"cannot move the corrupt {describe_lines(lines)} of {log_path} aside "
            f"({exc.strerror or exc}); the log is unchanged. Free space (the move needs a copy "
            "of the log), then run again") from exc
    n = len(lines)
    warnings.warn(
        f"{log_path}: moved {n:,} corrupt line{'s' if n > 1 else ''} ({describe_lines(lines)}) "
        f"to {log_path.with_name(CORRUPT_NAME)}; the jobs they held are sent again",
        CorruptLinesWarning, stacklevel=2)
    return lines


def _copy(src: BinaryIO, out: BinaryIO, start: int, stop: int) -> None:
    """Bytes [start, stop) of src onto out, a block at a time."""
    src.seek(start)
    left = stop - start
    while left > 0:
        chunk = src.read(min(BLOCK_BYTES, left))
        if not chunk:
            return
        out.write(chunk)
        left -= len(chunk)


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is atomic
    finally:
        os.close(fd)
