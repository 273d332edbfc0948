"""`batches.jsonl`: which provider batches a run has submitted and which it has collected.

A separate file from the answer log, so the log keeps one meaning (finished jobs) and the
scorer, dedupe and merge never see a batch line. Before a batch is created its intent is
written ("creating", with what identifies it at the provider, e.g. OpenAI's input file id);
once the provider accepts it, its id ("submitted"), before any waiting. A crash between the
two is resolved on resume by asking the provider, so a batch is never created twice.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vpbatch.errors import LogWriteError
from vpbatch.log.reader import LogReader, repair_torn_tail

__all__ = ["JOURNAL_NAME", "BatchEntry", "BatchJournal"]

JOURNAL_NAME = "batches.jsonl"
CREATING = "creating"
SUBMITTED = "submitted"
COLLECTED = "collected"
ABANDONED = "abandoned"  # an intent the provider never turned into a batch


@dataclass(slots=True)
class BatchEntry:
    """One submitted batch: the provider's id and the job ids (= custom_ids) it holds."""

    model: str
    provider: str
    batch_id: str
    job_ids: list[str]
    ts: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. OpenAI's input_file_id
    token: str = ""  # ties a "creating" intent to its "submitted" line


class BatchJournal:
    """The run dir's batch journal: append-only, one fsynced line per event (they are rare)."""

    __slots__ = ("path",)

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_run_dir(cls, run_dir: Path) -> BatchJournal:
        return cls(Path(run_dir) / JOURNAL_NAME)

    def _append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)  # a new line must not continue one a crash cut short
        line = orjson.dumps(row) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.write(fd, line) != len(line):
                raise LogWriteError(f"short write to {self.path} (disk full?); free space, "
                                    "then run the same command again to resume")
            # A batch the journal forgot would be paid for twice on resume: make it durable.
            os.fsync(fd)
        except OSError as exc:  # a full disk (ENOSPC) or an I/O error: stop, say what to do
            raise LogWriteError(f"cannot append to {self.path}: {exc.strerror or exc}; free "
                                "space, then run the same command again to resume") from exc
        finally:
            os.close(fd)

    def creating(self, entry: BatchEntry) -> None:
        """Record the intent to create a batch (no id yet); call before the create request."""
        self._append({"event": CREATING, "model": entry.model, "provider": entry.provider,
                      "token": entry.token, "job_ids": entry.job_ids,
                      "ts": entry.ts or time.time(), "extra": entry.extra})

    def submitted(self, entry: BatchEntry) -> None:
        """Record a batch the provider accepted; call before waiting for it."""
        self._append({"event": SUBMITTED, "model": entry.model, "provider": entry.provider,
                      "batch_id": entry.batch_id, "token": entry.token,
                      "job_ids": entry.job_ids, "ts": entry.ts or time.time(),
                      "extra": entry.extra})

    def abandoned(self, model: str, token: str) -> None:
        """Record that an intent never became a batch (its jobs are pending again)."""
        self._append({"event": ABANDONED, "model": model, "token": token, "ts": time.time()})

    def collected(self, model: str, batch_id: str) -> None:
        """Record that every result of a batch is in the log (or re-queued)."""
        self._append({"event": COLLECTED, "model": model, "batch_id": batch_id,
                      "ts": time.time()})

    def rows(self) -> list[dict[str, Any]]:
        """Every complete line, in order (a torn last line, a crash mid-write, left out)."""
        return list(LogReader(self.path, key=None).rows())

    def unconfirmed(self, model: str) -> list[BatchEntry]:
        """The model's intents with neither a batch id nor an abandonment: a crash mid-create."""
        intents: dict[str, BatchEntry] = {}
        for row in self.rows():
            if row.get("model") != model or not row.get("token"):
                continue
            if row.get("event") == CREATING:
                intents[row["token"]] = _entry(row)
            elif row.get("event") in (SUBMITTED, ABANDONED):
                intents.pop(row["token"], None)
        return list(intents.values())

    def open_batches(self, model: str) -> list[BatchEntry]:
        """The model's batches submitted but not yet collected, oldest first."""
        pending: dict[str, BatchEntry] = {}
        for row in self.rows():
            if row.get("model") != model:
                continue
            if row.get("event") == SUBMITTED:
                pending[row["batch_id"]] = _entry(row)
            elif row.get("event") == COLLECTED:
                pending.pop(row["batch_id"], None)
        return list(pending.values())


def _entry(row: dict[str, Any]) -> BatchEntry:
    return BatchEntry(row["model"], row.get("provider", ""), row.get("batch_id") or "",
                      list(row.get("job_ids") or []), row.get("ts", 0.0),
                      row.get("extra") or {}, row.get("token") or "")
