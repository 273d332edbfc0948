"""One model's pipeline: jobs in, log lines out, each job through the one retry loop.

A pipeline pulls the next job only when a concurrency slot is free, so memory follows what is
in flight, not the grid. Each job goes through `retry.retrying`: acquire the RPM and TPM
limits, call the provider, retry what can be retried; then parse the answer and append one
Record to the log: the commit point (`outcome.commit`, shared with the batch runner). A
`breaker.Breaker` watches the outcomes and stops the model when its failures are systematic.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel

from vpbatch.benchmark.tokens import prompt_tokens
from vpbatch.config.schema import Config, ModelConfig, RunConfig
from vpbatch.errors import LogWriteError
from vpbatch.log.adapted import save_adapted
from vpbatch.log.records import Record
from vpbatch.log.runlog import RunLog
from vpbatch.providers.adapt import Form
from vpbatch.providers.contract import Provider
from vpbatch.sweep.breaker import Breaker, BreakerPolicy
from vpbatch.sweep.grid import Job
from vpbatch.sweep.limits import ConcurrencyCap, RequestRate, ServerQuota, TokenBudget
from vpbatch.sweep.outcome import Pending, commit
from vpbatch.sweep.outcome import skipped as skip
from vpbatch.sweep.progress import ModelProgress
from vpbatch.transport import retry
from vpbatch.transport.records import Answer, FailureKind, ProviderError
from vpbatch.transport.retry import RetryPolicy

__all__ = ["Limits", "Pipeline", "policy_for", "group_limits"]

_SKIP_YIELD = 512  # skipped jobs between checkpoints: a long resume scan must not hog the loop


@dataclass(slots=True)
class Limits:
    """One model's client-side limits; None means "not limited".

    `group` is the limit group's (shared by every member's pipeline): a request takes the
    model's own limits first, then the group's, so a wait on its own limits never holds a slot
    or a token of the shared budget idle.
    """

    cap: ConcurrencyCap
    rate: RequestRate | None = None
    tokens: TokenBudget | None = None
    group: Limits | None = None
    # What the server says is left (x-ratelimit-remaining-*): read on the outermost layer,
    # the account the server counts.
    left_requests: ServerQuota = field(default_factory=ServerQuota)
    left_tokens: ServerQuota = field(default_factory=ServerQuota)

    @classmethod
    def for_model(cls, m: ModelConfig, group: Limits | None = None) -> Limits:
        # A model's rate exists even without rpm: unlimited, until 429s teach it one.
        window = m.rate_limit_window
        return cls(
            ConcurrencyCap(m.concurrency),
            RequestRate(m.rpm, hold=window),
            TokenBudget(m.tpm) if m.tpm else None,
            group,
            ServerQuota(window),
            ServerQuota(window),
        )

    @property
    def layers(self) -> tuple[Limits, ...]:
        """The limits a request takes, in order: the model's own, then its group's."""
        return (self,) if self.group is None else (self, self.group)


def group_limits(cfg: Config) -> dict[str, Limits]:
    """One shared `Limits` per limit group, for its members' online pipelines.

    A group without a concurrency of its own is capped at its members' summed concurrency:
    no tighter than they are alone, but one AIMD cap, so a 429 on the shared account slows
    every member.
    """
    out = {}
    for name, g in cfg.limits.items():
        members = [m for m in cfg.models if m.limit_group == name and m.mode != "batch"]
        if not members:
            continue  # batch members only: a batch API is not paced by client limits
        ceiling = g.concurrency or sum(m.concurrency for m in members)
        window = max(m.rate_limit_window for m in members)
        out[name] = Limits(ConcurrencyCap(ceiling),
                           RequestRate(g.rpm, hold=window) if g.rpm else None,
                           TokenBudget(g.tpm) if g.tpm else None,
                           left_requests=ServerQuota(window), left_tokens=ServerQuota(window))
    return out


def policy_for(m: ModelConfig) -> RetryPolicy:
    """The model's retry bounds from its config; backoff shape stays the policy's default."""
    return RetryPolicy(attempts=m.max_attempts, total=m.max_retry_seconds,
                       window=m.rate_limit_window)


class _Stopped(Exception):
    """The job was abandoned unsent or unanswered because the pipeline is stopping."""


class Pipeline:
    """Runs one model's job stream to the log; `stop()` stops issuing and abandons waits."""

    __slots__ = (
        "model", "provider", "log", "progress", "limits", "policy", "retry_failed",
        "breaker", "stopping", "_waits", "_scope", "_rng",
    )

    def __init__(
        self,
        model: ModelConfig,
        provider: Provider,
        log: RunLog,
        progress: ModelProgress,
        *,
        limits: Limits | None = None,
        policy: RetryPolicy | None = None,
        retry_failed: bool = False,
        breaker: Breaker | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.model = model
        self.provider = provider
        self.log = log
        self.progress = progress
        self.limits = limits if limits is not None else Limits.for_model(model)
        self.policy = policy if policy is not None else policy_for(model)
        self.retry_failed = retry_failed
        self.breaker = breaker or Breaker(BreakerPolicy.for_model(RunConfig(), model))
        self.stopping = False
        self._waits: set[anyio.CancelScope] = set()
        self._scope: anyio.CancelScope | None = None
        self._rng = rng or random.Random()

    # -- the stream ------------------------------------------------------------------------

    async def run(self, jobs: Iterable[Job]) -> None:
        """Send every job the log lacks; returns when all are logged or the pipeline stopped."""
        log, prog = self.log, self.progress
        async with anyio.create_task_group() as tg:
            self._scope = tg.cancel_scope
            skipped = 0
            for job in jobs:
                if self.stopping:
                    break
                if log.is_done(job.job_id, retry_failed=self.retry_failed):
                    skip(log, prog, job.job_id)
                    skipped += 1
                    if skipped % _SKIP_YIELD == 0:
                        await anyio.lowlevel.checkpoint()
                    continue
                try:
                    await self._slot()
                except _Stopped:
                    break
                prog.in_flight += 1
                tg.start_soon(self._job, job)

    def stop(self) -> None:
        """Issue nothing more; jobs waiting for a limit or a backoff are abandoned, unsent."""
        self.stopping = True
        for scope in list(self._waits):  # the stream's wait for a slot is one of these
            scope.cancel()

    def trip(self, reason: str | None) -> None:
        """The breaker's verdict: stop issuing; what is in flight may still finish and log."""
        if reason is None:
            return
        if self.progress.stopped is None:
            self.progress.stopped = reason
        self.stop()

    def abort(self, reason: str) -> None:
        """Stop this model now, in-flight requests included (its key was rejected)."""
        if self.progress.stopped is None:
            self.progress.stopped = reason
        self.stop()
        if self._scope is not None:
            self._scope.cancel()

    async def _slot(self) -> None:
        """A concurrency slot of the model, then of its group (released by `_job`)."""
        taken: list[ConcurrencyCap] = []
        try:
            for layer in self.limits.layers:
                await self._wait(layer.cap.acquire)
                taken.append(layer.cap)
        except _Stopped:
            for cap in taken:
                cap.release()
            raise

    # -- one job ---------------------------------------------------------------------------

    async def _job(self, job: Job) -> None:
        try:
            record = await self._attempts(job)
            try:
                commit(self.log, self.progress, record)
            except LogWriteError:
                # The disk is full: stop the stream before this job's slot frees, or the
                # stream would take the slot and send one more request it cannot log.
                self.stop()
                raise
        except _Stopped:
            return
        finally:
            for layer in self.limits.layers:
                layer.cap.release()
            self.progress.in_flight -= 1
        self.trip(self.breaker.logged(record))

    async def _attempts(self, job: Job) -> Record:
        """One job through the retry loop: an answer, or the failure it gave up on."""
        pending = Pending.of(job)
        estimate = prompt_tokens(job.messages) + job.params.max_tokens  # the worst case
        # Each cap's epoch when the failing attempt was sent (AIMD backs off once per round),
        # and when it was sent (the rate's AIMD ignores refusals of what it sent before a cut).
        epochs: list[int] = []
        sent_at = 0.0
        refusals = 0  # this job's 429s, kept in its record

        async def attempt(n: int) -> Record:
            nonlocal epochs, sent_at
            if self.stopping:  # stopped (breaker, signal) since the job's last wait
                raise _Stopped
            for layer in self.limits.layers:
                if layer.rate is not None:
                    await self._wait(layer.rate.acquire)
                if layer.tokens is not None:
                    await self._wait(layer.tokens.acquire, estimate)
            server = self.limits.layers[-1]
            await self._wait(server.left_requests.acquire, 1.0)
            await self._wait(server.left_tokens.acquire, float(estimate))
            self.progress.sent += 1
            epochs = [layer.cap.epoch for layer in self.limits.layers]
            sent_at = anyio.current_time()
            t0 = time.perf_counter()
            answer = await self.provider.complete(job.messages, job.params, job.body)
            latency = (time.perf_counter() - t0) * 1000.0
            self._settle(answer, estimate)
            return pending.answered(answer, attempts=n, latency_ms=round(latency, 2))

        def on_failure(exc: ProviderError, n: int) -> None:
            nonlocal refusals
            refusals += exc.kind is FailureKind.RATE_LIMITED
            self._after_failure(exc, epochs, estimate, sent_at)

        try:
            record = await retry.retrying(self.policy, attempt, on_failure=on_failure,
                                          sleep=self._backoff, rng=self._rng)
        except retry.GaveUp as gave_up:
            exc, attempts = gave_up.error, gave_up.attempts
            why = exc.message
            if exc.kind is not FailureKind.PERMANENT:
                why = f"{why} (gave up after {attempts} attempts)"
            record = pending.failed(exc.kind, why, status=exc.status, attempts=attempts)
        if refusals:
            record.extra = {**record.extra, "rate_limited": refusals}  # `status` sums these
        return record

    def _settle(self, answer: Answer, estimate: int) -> None:
        """An answer's effect on the limits: the caps grow, the tokens used replace the estimate."""
        used = answer.usage.get("prompt_tokens", 0) + answer.usage.get("completion_tokens", 0)
        for layer in self.limits.layers:
            layer.cap.success()
            if layer.rate is not None:
                layer.rate.success()
            if layer.tokens is not None:
                layer.tokens.settle(estimate, used or estimate)
        q, server = answer.quota, self.limits.layers[-1]
        if q is not None and q.requests is not None:
            server.left_requests.observe(q.requests, q.requests_reset)
        if q is not None and q.tokens is not None:
            server.left_tokens.observe(q.tokens, q.tokens_reset)
        self._note_rates()

    def _after_failure(
        self, exc: ProviderError, epochs: list[int], estimate: int, sent_at: float
    ) -> None:
        """React to a failed attempt before the loop decides: refund, stop, or back off."""
        layers = self.limits.layers
        for layer in layers:
            if layer.tokens is not None:
                layer.tokens.settle(estimate, 0)  # refused requests use no tokens
        if exc.adapted is not None:  # this job's 400 switched the model's form (or undid it)
            self._adapted(Form.from_json(exc.adapted), exc.message)
        if exc.kind is FailureKind.ADAPTED:
            return  # the loop re-sends it at once: neither the breaker nor the caps react
        if exc.auth:
            self.abort(exc.message)  # the key is wrong for every job of this model
            raise _Stopped
        if exc.timed_out or exc.unreachable:
            # Counted per attempt: a silent server fails no job until its retries run out.
            self.trip(self.breaker.no_answer(exc))
        if exc.kind is FailureKind.RATE_LIMITED:
            # Which limit the provider enforced is not said: the model's own cap and the
            # shared one both halve (each once per round of pushback).
            for layer, epoch in zip(layers, epochs, strict=False):
                layer.cap.backoff(epoch)
            self.progress.limited += 1
            if exc.retry_after is None:  # no word on when: learn the rate the server allows
                self.progress.unsaid += 1
                for layer in layers:
                    if layer.rate is not None:
                        layer.rate.refused(sent_at)
                self._note_rates()

    def _note_rates(self) -> None:
        """The learned request rate (the tightest layer's) and the server-paced wait, shown."""
        learned = [r.rpm for layer in self.limits.layers
                   if (r := layer.rate) is not None and r.learned and r.rpm is not None]
        self.progress.learned_rpm = min(learned) if learned else None
        server = self.limits.layers[-1]
        self.progress.quota_wait = server.left_requests.waited + server.left_tokens.waited

    def _adapted(self, form: Form, why: str) -> None:
        """Record the model's new request form beside the log (a resume starts in it)."""
        self.progress.adapted = form.changes()
        save_adapted(self.log.path.parent, self.model.name, form.to_json(), form.changes(), why)

    async def _backoff(self, delay: float) -> None:
        """The loop's wait before a retry; abandoned if the pipeline stops meanwhile."""
        self.progress.retries += 1
        await self._wait(retry.sleep, delay)

    async def _wait(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Await a limit or a backoff, abandoning the job if the pipeline stops meanwhile."""
        if self.stopping:
            raise _Stopped
        with anyio.CancelScope() as scope:
            self._waits.add(scope)
            try:
                await fn(*args)
            finally:
                self._waits.discard(scope)
        if scope.cancelled_caught:
            raise _Stopped

