"""Which line counts for a job: its first answer, else its latest failure.

A job can be logged more than once: a failure retried with `--retry-failed`, a resumed shard,
shards merged. An answer, once logged, stays: a later line never replaces a result. Until a
job is answered its latest failure stands, since that says why it is still open. Every reader
of a log (resume, status, report, merge, read_log) applies the rule through `Counted`; the
scorer's vectorised form (`scoring.cube.counting_rows`) is tested against it.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Generic, TypeVar

__all__ = ["Counted"]

T = TypeVar("T")


class Counted(Generic[T]):
    """Each job's counting line so far (whatever the caller keeps of it), fed in file order."""

    __slots__ = ("answered", "failed")

    def __init__(self) -> None:
        self.answered: dict[str, T] = {}  # job id -> its first answer
        self.failed: dict[str, T] = {}  # job id -> its latest failure, while unanswered

    def add(self, job_id: str, ok: bool, line: T) -> bool:
        """Feed a job's next line; True when that line now counts for the job."""
        if job_id in self.answered:
            return False
        if ok:
            self.answered[job_id] = line
            self.failed.pop(job_id, None)
        else:
            self.failed[job_id] = line
        return True

    def lines(self) -> Iterator[T]:
        """The counting line of every job: the answers, then the failures."""
        return chain(self.answered.values(), self.failed.values())

    def __len__(self) -> int:
        return len(self.answered) + len(self.failed)
