"""Per-model client-side limits: requests/min, tokens/min, and an AIMD concurrency cap.

The provider should never have to say 429: the RPM limit paces requests so that no 60-second
window holds more than `rpm` of them, the TPM budget does the same for estimated tokens, and
the concurrency cap halves when the provider pushes back anyway, then grows back additively.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio
from aiolimiter import AsyncLimiter

__all__ = ["RequestRate", "TokenBudget", "ConcurrencyCap", "rpm_bucket"]

WINDOW = 60.0  # providers state their limits per minute


def rpm_bucket(rpm: float, window: float = WINDOW) -> tuple[float, float]:
    """(burst, steady rate per second) so that any `window` holds at most `rpm` requests.

    A leaky bucket of capacity b draining at r/s admits at most b + window·r in any window.
    The burst is 1/120 of the limit (half a second's worth per minute); as much again is kept
    in reserve, because requests admitted evenly can still arrive bunched (a stalled event
    loop, network jitter). That leaves a steady rate of ≥ 95% of `rpm` from 40 rpm up.
    """
    if rpm <= 0:
        raise ValueError(f"rpm must be > 0, got {rpm}")
    burst = max(1.0, float(int(rpm / 120.0)))
    if rpm <= burst:  # under one per window: a bucket of one, drained over two windows
        return 1.0, rpm / (2 * window)
    slack = burst if rpm >= 120 else 0.0
    return burst, (rpm - burst - slack) / window


class RequestRate:
    """Requests per minute (per `window` seconds), as an aiolimiter leaky bucket, served in
    arrival order.

    aiolimiter lets a newcomer that finds capacity take it ahead of the queue, and re-queues a
    woken waiter at the back if it lost that race. When pipelines share one rate (a limit
    group), each feeding it from its own bucket of the same rate, one model's arrivals then win
    every tick and the other's starve. The lock admits one waiter at a time, oldest first.
    """

    __slots__ = ("rpm", "_limiter", "_lock")

    def __init__(self, rpm: float, window: float = WINDOW) -> None:
        self.rpm = rpm
        burst, rate = rpm_bucket(rpm, window)
        self._limiter = AsyncLimiter(burst, burst / rate)
        self._lock = anyio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            await self._limiter.acquire(1)


class TokenBudget:
    """Tokens per minute: a leaky bucket charged with an estimate, settled with the real usage.

    Charging `prompt estimate + max_tokens` up front keeps the worst case under the limit;
    `settle` gives back what the answer did not use, so short answers do not waste budget.
    """

    __slots__ = ("tpm", "_rate", "_capacity", "_level", "_last", "_clock", "_sleep", "_lock")

    def __init__(
        self,
        tpm: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if tpm <= 0:
            raise ValueError(f"tpm must be > 0, got {tpm}")
        self.tpm = tpm
        self._rate = tpm / WINDOW
        # OpenAI and Anthropic refill token limits continuously up to the per-minute maximum,
        # so a full minute's budget may go at once; RPM is paced stricter (see rpm_bucket).
        self._capacity = tpm
        self._level = 0.0
        self._clock = clock
        self._last = clock()
        self._sleep = sleep
        # One waiter at a time, in arrival order: a big request is not starved by small ones.
        self._lock = anyio.Lock()

    def _leak(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._last) * self._rate)
        self._last = now

    @property
    def level(self) -> float:
        """Tokens currently charged against the last minute."""
        self._leak()
        return self._level

    async def acquire(self, tokens: float) -> None:
        """Wait until `tokens` fit in the budget, then charge them."""
        # A request larger than the whole budget could never fit; let it through alone.
        tokens = min(float(tokens), self._capacity)
        async with self._lock:
            while True:
                self._leak()
                excess = self._level + tokens - self._capacity
                if excess <= 1e-6:  # float residue of the last sleep must not loop forever
                    self._level += tokens
                    return
                await self._sleep(excess / self._rate)

    def settle(self, charged: float, used: float) -> None:
        """Replace a charged estimate by the tokens really used (refund or extra charge)."""
        self._leak()
        self._level = max(0.0, self._level + float(used) - min(float(charged), self._capacity))


class ConcurrencyCap:
    """A semaphore whose size can change while tasks wait: the AIMD concurrency cap.

    `backoff()` halves the limit (never below 1); each `success()` adds 1/limit, so the limit
    regains one slot per limit's worth of successes, up to `ceiling`, like TCP's AIMD.
    `epoch` counts backoffs: a 429 for a request sent before the last backoff says nothing
    new, so the limit halves once per round of pushback, not once per refused request.
    """

    __slots__ = ("ceiling", "_limit", "_credit", "in_use", "_waiters", "epoch")

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError(f"concurrency must be >= 1, got {ceiling}")
        self.ceiling = ceiling
        self._limit = ceiling
        self._credit = 0.0
        self.in_use = 0
        self._waiters: deque[anyio.Event] = deque()
        self.epoch = 0

    @property
    def limit(self) -> int:
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        self._limit = max(1, min(self.ceiling, int(value)))
        self._wake()

    def _wake(self) -> None:
        # Hand each free slot to the oldest waiter, taking it on the waiter's behalf: a newcomer
        # must not take it first (pipelines sharing a limit group's cap would starve each other).
        while self.in_use < self._limit and self._waiters:
            self._waiters.popleft().set()
            self.in_use += 1

    async def acquire(self) -> None:
        """Take a slot, waiting while `in_use >= limit` (FIFO among waiters)."""
        if self.in_use < self._limit and not self._waiters:
            self.in_use += 1
            return
        event = anyio.Event()
        self._waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self.release()  # handed a slot as we were cancelled: pass it on
            else:
                self._waiters.remove(event)
            raise

    def release(self) -> None:
        self.in_use -= 1
        self._wake()

    def backoff(self, sent_epoch: int | None = None) -> None:
        """The provider pushed back (429): halve the limit, never below 1.

        `sent_epoch` is `epoch` as it was when the refused request was sent; if the limit has
        halved since, this refusal was already answered and changes nothing.
        """
        if sent_epoch is not None and sent_epoch != self.epoch:
            return
        self.epoch += 1
        self._credit = 0.0
        self.limit = max(1, self._limit // 2)

    def success(self) -> None:
        """One success: grow by 1/limit, so a full limit's worth of successes adds one slot."""
        if self._limit >= self.ceiling:
            return
        self._credit += 1.0 / self._limit
        if self._credit >= 1.0:
            self._credit -= 1.0
            self.limit = self._limit + 1
