"""A log's health (`vpbatch log check`): read as every reader reads it, nothing changed.

No lock is taken, so it runs beside a sweep: it reads the bytes the log held when it began,
and a line being written at that moment shows as a torn tail.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from vpbatch.log.reader import LogReader, complete_size, describe_lines, line_numbers
from vpbatch.log.repair import CORRUPT_NAME

__all__ = ["LogHealth", "check_log", "render_health"]


@dataclass(slots=True)
class LogHealth:
    """What `check_log` found; healthy unless a complete line is corrupt."""

    path: Path
    size: int  # bytes checked
    lines: int = 0  # complete lines that are not blank
    valid: int = 0
    duplicates: int = 0  # jobs with more than one valid line (retries, resumes: normal)
    extra_lines: int = 0  # the lines beyond each job's first
    corrupt: list[int] = field(default_factory=list)  # 1-based line numbers
    torn_tail: int = 0  # bytes after the last newline: a write cut short (or in progress)
    moved_aside: int = 0  # lines in log.corrupt.jsonl, moved there by earlier runs

    @property
    def healthy(self) -> bool:
        return not self.corrupt


def check_log(path: Path) -> LogHealth:
    """Count the lines of the log at `path`: valid, corrupt, duplicated, and a torn tail."""
    path = Path(path)
    if not path.exists():
        return LogHealth(path, 0)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        complete = complete_size(f, size)
    health = LogHealth(path, size, torn_tail=size - complete)
    reader = LogReader(path, 0, complete)
    jobs: Counter[str] = Counter()
    for offset, line in reader.lines():
        health.lines += 1
        row = reader.parse(offset, line)
        if row is not None:
            jobs[str(row["job_id"])] += 1
    health.valid = jobs.total()
    health.duplicates = sum(1 for n in jobs.values() if n > 1)
    health.extra_lines = health.valid - len(jobs)
    health.corrupt = line_numbers(path, reader.corrupt) if reader.corrupt else []
    aside = path.with_name(CORRUPT_NAME)
    if aside.exists():
        with open(aside, "rb") as f:
            blocks = iter(lambda: f.read(1 << 20), b"")
            health.moved_aside = sum(block.count(b"\n") for block in blocks)
    return health


def render_health(h: LogHealth) -> list[str]:
    """The report `vpbatch log check` prints, its verdict last."""
    dup = (f"{h.duplicates:,} jobs with more than one line ({h.extra_lines:,} extra lines; a "
           "job counts once)" if h.duplicates else "none")
    bad = f"{len(h.corrupt):,} ({describe_lines(h.corrupt)})" if h.corrupt else "none"
    torn = (f"{h.torn_tail:,} bytes after the last newline (a write cut short, or one in "
            "progress; left out by every reader, cut off by the next run)" if h.torn_tail
            else "none")
    out = [f"log:           {h.path} ({h.size:,} bytes)",
           f"lines:         {h.lines:,}",
           f"valid lines:   {h.valid:,}",
           f"duplicates:    {dup}",
           f"corrupt lines: {bad}",
           f"torn tail:     {torn}"]
    if h.moved_aside:
        out.append(f"moved aside:   {h.moved_aside:,} lines in {h.path.with_name(CORRUPT_NAME)}")
    if h.healthy:
        out.append("healthy")
    else:
        out.append("corrupt: every reader skips those lines; `vpbatch run` moves them to "
                   f"{CORRUPT_NAME} and sends their jobs again")
    return out
