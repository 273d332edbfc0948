"""One job's outcome as its log line: built, appended and counted the same way online and in
provider batches.

`Pending` is what a job's Record needs once the answer is back (who the job is, what was sent;
not the prompt text, so a batch of 100,000 waiting jobs stays small). `commit` appends the
Record (the commit point) and counts it on the model's progress.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from vpbatch.benchmark.choice import CHOICE, TEXT, Rating, rate
from vpbatch.log.records import FAILED, OK, REFUSAL, Record, loggable_request, unrated_cause
from vpbatch.log.runlog import RunLog
from vpbatch.sweep.grid import Job
from vpbatch.sweep.progress import ModelProgress
from vpbatch.transport.records import Answer, FailureKind

__all__ = ["Pending", "commit", "skipped"]


@dataclass(slots=True)
class Pending:
    """A job sent and not yet logged: its identity and its request as logged."""

    job_id: str
    model: str
    condition: str
    version: str
    portrait_id: int
    option_id: int
    repeat: int
    request: dict[str, Any]  # every parameter sent, the prompt as a digest (no key)
    answer_mode: str = TEXT  # how the answer was asked for, so how it is read

    @classmethod
    def of(cls, job: Job) -> Pending:
        mode = TEXT if job.params.choice is None else CHOICE
        return cls(job.job_id, job.model, job.condition, job.version, job.portrait_id,
                   job.option_id, job.repeat, loggable_request(job.body), mode)

    def answered(
        self, a: Answer, *, attempts: int = 1, latency_ms: float | None = None,
        batch_id: str | None = None,
    ) -> Record:
        """The record of an answer, rated in its answer mode (vpbatch.benchmark.choice.rate),
        and classified `unrated` when neither parser rates it."""
        r = rate(a.text, self.answer_mode)
        if a.refusal:  # OpenAI's refusal field: whatever its words, not an answer to rate
            r = Rating(None, None, REFUSAL, r.mode)
        unrated = unrated_cause(a.text, r.rating, r.rating_strict, r.strict_reason,
                                a.finish_reason)
        return Record(
            job_id=self.job_id, model=self.model, condition=self.condition,
            version=self.version, portrait_id=self.portrait_id, option_id=self.option_id,
            repeat=self.repeat, status=OK, raw=a.text, reasoning=a.reasoning,
            rating=r.rating, rating_strict=r.rating_strict, answer_mode=r.mode,
            strict_reason=r.strict_reason, finish_reason=a.finish_reason, unrated=unrated,
            usage=dict(a.usage),
            latency_ms=latency_ms, attempts=attempts, request=self.request, batch_id=batch_id,
            ts=time.time(),
            # `request` is the body the id digests; the server was sent it in this form.
            extra={"adapted": list(a.adapted)} if a.adapted else {},
        )

    def failed(
        self, kind: FailureKind, why: str, *, status: int | None = None, attempts: int = 1,
        batch_id: str | None = None,
    ) -> Record:
        """The record of a job given up on: the kind of failure and why, never a key."""
        return Record(
            job_id=self.job_id, model=self.model, condition=self.condition,
            version=self.version, portrait_id=self.portrait_id, option_id=self.option_id,
            repeat=self.repeat, status=FAILED, answer_mode=self.answer_mode,
            error_kind=kind.value, error=why,
            attempts=attempts, request=self.request, batch_id=batch_id, ts=time.time(),
            extra={"http_status": status} if status else {},
        )


def commit(log: RunLog, progress: ModelProgress, record: Record) -> None:
    """Append a finished job's line and count it: answered (with its tokens; unrated or not)
    or failed."""
    log.append(record)
    if record.status == OK:
        progress.ok += 1
        usage = record.usage or {}
        progress.tokens += usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        if record.unrated is not None:
            progress.note_unrated(record)
    else:
        transient = record.error_kind != FailureKind.PERMANENT.value
        progress.note_failure(record.error or "failed", transient=transient)


def skipped(log: RunLog, progress: ModelProgress, jid: str) -> None:
    """Count a job an earlier run finished: failed, answered, or answered unrated."""
    progress.skipped += 1
    if not log.is_done(jid, retry_failed=True):
        progress.failed_before += 1
    else:
        progress.answered_before += 1
        progress.unrated_before += log.is_unrated(jid)
