"""`BatchRunner`: a batch-mode model's jobs through its provider's batch API, into the log.

A `sweep.context.Runner`, as the online `Pipeline` is. Pending jobs go out in
chunks; each batch id is journaled before any wait; results become ordinary log Records
(batch_id set) parsed by the online path's parser. Requests that never ran (expired,
cancelled) or failed transiently go into the next round's batch; permanent failures are
logged with their reason. A resume polls the journal's open batches and never resends them.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.log.records import Record
from vpbatch.log.runlog import RunLog
from vpbatch.providers.batchapi import BatchAPI, BatchCallError, BatchState, LineResult
from vpbatch.providers.contract import Provider
from vpbatch.sweep.batch.journal import BatchEntry, BatchJournal
from vpbatch.sweep.grid import Job
from vpbatch.sweep.outcome import Pending, commit, skipped
from vpbatch.sweep.progress import ModelProgress
from vpbatch.transport import retry
from vpbatch.transport.records import FailureKind, ProviderError

__all__ = ["BatchOptions", "BatchRunner", "POLL_ENV", "SIZE_ENV"]

POLL_ENV = "VPBATCH_BATCH_POLL_S"
SIZE_ENV = "VPBATCH_BATCH_SIZE"


@dataclass(slots=True)
class BatchOptions:
    """How a batch-mode model batches: requests per batch, seconds between polls, rounds."""

    size: int | None = None  # requests per batch; None = the provider's maximum
    poll_s: float = 60.0  # batches take minutes to hours: polling faster buys nothing
    rounds: int = 3  # batches per job at most: expired/transient ones go into the next

    @classmethod
    def for_model(cls, m: ModelConfig, env: Mapping[str, str] = os.environ) -> BatchOptions:
        """From the model's `batch_size`/`batch_poll_s` if the config has them, else the env."""
        size = m.batch_size or _number(env, SIZE_ENV, int)
        poll = m.batch_poll_s or _number(env, POLL_ENV, float)
        return cls(size=int(size) if size else None, poll_s=float(poll) if poll else 60.0)


def _number(env: Mapping[str, str], name: str, kind: type) -> Any:
    text = env.get(name)
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"${name}={text!r} is not a number; set it to e.g. 30") from None
    if value <= 0:
        raise ConfigError(f"${name} must be positive, got {text}; set it above 0")
    return value


class BatchRunner:
    """Runs one batch-mode model's job stream to the log through provider batches."""

    __slots__ = ("model", "provider", "api", "log", "journal", "progress", "opts",
                 "retry_failed", "regrid", "stopping", "_scope", "_meta", "_requeue", "_known")

    def __init__(
        self,
        model: ModelConfig,
        provider: Provider,
        api: BatchAPI,
        log: RunLog,
        progress: ModelProgress,
        *,
        regrid: Callable[[], Iterable[Job]],
        opts: BatchOptions | None = None,
        journal: BatchJournal | None = None,
        retry_failed: bool = False,
    ) -> None:
        self.model, self.provider, self.api, self.log = model, provider, api, log
        self.progress = progress
        self.journal = journal or BatchJournal.in_run_dir(log.path.parent)
        self.opts = opts or BatchOptions()
        self.retry_failed = retry_failed
        self.regrid = regrid  # the model's jobs afresh: later rounds re-read them
        self.stopping = False
        self._scope: anyio.CancelScope | None = None
        self._meta: dict[str, Pending] = {}  # jobs in a batch, by id
        self._requeue: dict[str, str] = {}  # job id -> why it goes into the next round
        self._known: set[str] | None = None  # batch ids in the journal (read once)

    # -- the stream ------------------------------------------------------------------------

    async def run(self, jobs: Iterable[Job]) -> None:
        """Batch every job the log lacks; returns when all are logged or the runner stopped."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            await self._round(jobs, None)
            for _ in range(self.opts.rounds - 1):
                if not self._requeue or self.stopping:
                    break
                again, self._requeue = set(self._requeue), {}
                await self._round(self.regrid(), again)
        if not self.stopping:
            self._give_up()

    def stop(self) -> None:
        """Submit and poll no more: submitted batches keep running and a resume polls them."""
        self.stopping = True
        if self._scope is not None:
            self._scope.cancel()

    def abort(self, reason: str) -> None:
        """Stop this model now (its key was rejected, or a batch call failed for good)."""
        if self.progress.stopped is None:
            self.progress.stopped = reason
        self.stop()

    async def _round(self, jobs: Iterable[Job], only: set[str] | None) -> None:
        """One pass: open batches polled (first round), the rest chunked into new batches."""
        if only is None:
            await self._recover()
        entries = self.journal.open_batches(self.model.name) if only is None else []
        waiting = {jid for e in entries for jid in e.job_ids}
        limit = min(self.opts.size or self.api.max_requests, self.api.max_requests)
        async with anyio.create_task_group() as tg:
            chunk: list[tuple[str, bytes]] = []
            size = 0
            for job in jobs:
                if self.stopping:
                    return
                jid = job.job_id
                if only is not None and jid not in only:
                    continue
                if only is None and self.log.is_done(jid, retry_failed=self.retry_failed):
                    skipped(self.log, self.progress, jid)
                    continue
                self._meta[jid] = Pending.of(job)
                if jid in waiting:
                    continue  # already paid for: its batch is polled below
                line = self.api.line(jid, job.body)
                if chunk and (len(chunk) >= limit or size + len(line) > self.api.max_bytes):
                    await self._submit(chunk, tg)
                    chunk, size = [], 0
                chunk.append((jid, line))
                size += len(line)
            if chunk:
                await self._submit(chunk, tg)
            for e in entries:
                ids = [j for j in e.job_ids if j in self._meta]
                if ids:
                    self.progress.in_flight += len(ids)
                    tg.start_soon(self._watch, e.batch_id, ids)
                elif all(self.log.is_done(j) for j in e.job_ids):
                    # Logged in full before a crash cut its "collected" line: close it.
                    self.journal.collected(self.model.name, e.batch_id)
                # else: another shard's batch, which that shard's run collects

    async def _submit(self, chunk: list[tuple[str, bytes]], tg: TaskGroup) -> None:
        ids = [jid for jid, _ in chunk]
        lines = [line for _, line in chunk]
        entry = BatchEntry(self.model.name, self.model.provider, "", ids, time.time(),
                           token=uuid.uuid4().hex)
        # Shielded: a stop must not cut between the create and its journal line. The intent
        # goes first, so even kill -9 mid-create is resolved by `_recover`, never resent.
        with anyio.CancelScope(shield=True):
            try:
                entry.extra = await self.api.prepare(lines)
                self.journal.creating(entry)
                entry.batch_id = await self.api.create(lines, entry.extra, self._known_ids())
            except BatchCallError as exc:
                self.abort(str(exc))  # an intent left open is looked up on resume
                return
            self.journal.submitted(entry)
            self._known_ids().add(entry.batch_id)
        self.progress.sent += len(ids)
        self.progress.in_flight += len(ids)
        tg.start_soon(self._watch, entry.batch_id, ids)

    async def _recover(self) -> None:
        """Intents a crash left without a batch id: adopt the batch the provider made, if any."""
        for entry in self.journal.unconfirmed(self.model.name):
            try:
                found = await self.api.recover(entry.extra, self._known_ids())
            except BatchCallError as exc:
                self.abort(str(exc))
                return
            if found is None:
                self.journal.abandoned(self.model.name, entry.token)  # its jobs: pending
            else:
                entry.batch_id = found
                self.journal.submitted(entry)
                self._known_ids().add(found)

    def _known_ids(self) -> set[str]:
        """Batch ids already journaled (a crash recovery must not adopt one of them)."""
        if self._known is None:
            self._known = {str(r["batch_id"]) for r in self.journal.rows() if r.get("batch_id")}
        return self._known

    # -- one batch ---------------------------------------------------------------------------

    async def _watch(self, batch_id: str, ids: list[str]) -> None:
        """Poll until the batch is done, then log (or re-queue) every one of its jobs."""
        try:
            while True:
                state = await self.api.poll(batch_id)
                if state.done:
                    break
                await retry.sleep(self.opts.poll_s)
            results = [] if state.failed else await self.api.results(state)
        except BatchCallError as exc:
            self.abort(str(exc))  # the batch stays open in the journal: a resume polls it
            return
        self._collect(state, ids, results)

    def _collect(self, state: BatchState, ids: list[str], results: list[LineResult]) -> None:
        # No await in here: a stop cannot cut the collection of a batch in half.
        mine = set(ids)
        for r in results:
            if r.job_id in mine:
                mine.discard(r.job_id)
                self._settle(r.job_id, state.batch_id, r)
        for jid in mine:  # failed batch, or missing from its results: never ran
            self._settle(jid, state.batch_id,
                         LineResult(jid, None, b"", state.failed or "missing from the results"))
        self.journal.collected(self.model.name, state.batch_id)

    def _settle(self, jid: str, batch_id: str, r: LineResult) -> None:
        self.progress.in_flight -= 1
        meta = self._meta.get(jid)
        if meta is None or self.log.is_done(jid, retry_failed=True):
            return  # logged before a crash cut this batch's collection short
        if r.status is None:
            self._requeue[jid] = r.reason or "not processed"
            return
        try:
            answer = self.provider.parse(r.status, {}, r.body)
        except ProviderError as exc:
            if exc.kind is not FailureKind.PERMANENT:
                self._requeue[jid] = exc.message
                return
            self._log(meta.failed(FailureKind.PERMANENT, exc.message, status=r.status,
                                  batch_id=batch_id))
            return
        self._log(meta.answered(answer, batch_id=batch_id))

    def _log(self, record: Record) -> None:
        commit(self.log, self.progress, record)
        self._meta.pop(record.job_id, None)

    def _give_up(self) -> None:
        """Jobs still re-queued after the last round: logged as transient failures."""
        rounds = self.opts.rounds
        for jid, why in self._requeue.items():
            meta = self._meta.get(jid)
            if meta is not None:
                self._log(meta.failed(FailureKind.TRANSIENT,
                                      f"{why} (gave up after {rounds} batch rounds)"))
        self._requeue = {}

