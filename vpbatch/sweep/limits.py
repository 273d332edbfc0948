"""Per-model client-side limits: requests/min, tokens/min, and an AIMD concurrency cap.

The provider should never have to say 429: the RPM limit paces requests so that no 60-second
window holds more than `rpm` of them, the TPM budget does the same for estimated tokens, and
the concurrency cap halves when the provider pushes back anyway, then grows back additively.
When the server says 429 without saying how long to wait, the RPM limit learns (AIMD) what the
server allows; `ServerQuota` follows what a server says is left before it refuses at all.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["RequestRate", "ServerQuota", "TokenBudget", "ConcurrencyCap", "rpm_bucket", "WINDOW"]

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
    """Requests per minute (per `window` seconds) as a leaky bucket, served in arrival order,
    and resizable: `rpm` is a setter (None = no limit), which the AIMD below drives.

    One waiter at a time, oldest first: when pipelines share one rate (a limit group), a
    newcomer finding capacity must not take it ahead of the queue, or one model's arrivals win
    every tick and the other's starve.

    AIMD on the rate: `refused()` hears of each 429 that came without a wait of its own. Two
    within `hold`, for requests sent at least `hold` after the last cut, set the rate to
    DECREASE times what the server let through in the last `hold` (a window-counting server
    may refuse for a whole window after the cut, which says nothing new). Each
    `success()` adds GROW rpm, up to the configured `ceiling`.
    """

    __slots__ = ("ceiling", "window", "hold", "_rpm", "_burst", "_rate", "_level", "_last",
                 "_clock", "_sleep", "_lock", "_ok", "_refusals", "changed", "cuts")

    DECREASE = 0.9  # of the observed rate: below what the server let through
    GROW = 0.05  # rpm per success: +5% of the rate per window of successes
    REPEATED = 2  # refusals within a window before the rate is cut

    def __init__(
        self,
        rpm: float | None,
        window: float = WINDOW,
        *,
        hold: float | None = None,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.ceiling = rpm  # the configured limit: learning never goes above it
        self.window = window  # what "per minute" means (tests shrink it)
        # The server's counting window (rate_limit_window): how far back the observed rate
        # looks, and how long after a cut refusals say nothing new.
        self.hold = window if hold is None else hold
        self._clock = clock
        self._sleep = sleep
        self._level = 0.0
        self._last: float | None = None
        self._rpm: float | None = None
        self._burst = self._rate = 0.0
        self.rpm = rpm
        self._lock = anyio.Lock()
        self._ok: deque[float] = deque()  # times of successes within the last window
        self._refusals: deque[float] = deque()
        self.changed: float | None = None  # when AIMD last cut the rate
        self.cuts = 0

    @property
    def rpm(self) -> float | None:
        return self._rpm

    @rpm.setter
    def rpm(self, value: float | None) -> None:
        if value is not None:
            if self._last is not None:  # (unused yet: no clock to read outside a loop)
                self._leak()
            self._burst, self._rate = rpm_bucket(value, self.window)
            self._level = min(self._level, self._burst)
        self._rpm = value

    @property
    def learned(self) -> bool:
        """The rate was cut below what the config set (or set one where it set none)."""
        return self.cuts > 0

    def _leak(self) -> None:
        now = self._clock()
        if self._last is not None and self._rpm is not None:
            self._level = max(0.0, self._level - (now - self._last) * self._rate)
        self._last = now

    async def acquire(self) -> None:
        if self._rpm is None:
            return
        async with self._lock:
            while self._rpm is not None:
                self._leak()
                excess = self._level + 1.0 - self._burst
                if excess <= 1e-9:
                    self._level += 1.0
                    return
                await self._sleep(excess / self._rate)

    def _prune(self, times: deque[float], now: float) -> int:
        while times and times[0] <= now - self.hold:
            times.popleft()
        return len(times)

    def success(self) -> None:
        """An answer came back: counted for the observed rate; a learned rate grows."""
        now = self._clock()
        self._ok.append(now)
        self._prune(self._ok, now)
        if self.cuts and self._rpm is not None:
            grown = self._rpm + self.GROW
            self.rpm = grown if self.ceiling is None else min(self.ceiling, grown)

    def refused(self, sent_at: float) -> bool:
        """A 429 without Retry-After for a request sent at `sent_at`; True if the rate was cut."""
        if self.changed is not None and sent_at < self.changed + self.hold:
            return False
        now = self._clock()
        self._refusals.append(now)
        if self._prune(self._refusals, now) < self.REPEATED:
            return False
        observed = self._prune(self._ok, now) * self.window / self.hold  # per `window`
        base = observed if observed > 0 else self._rpm
        if base is None:
            return False  # nothing got through and no limit is set: nothing to scale
        if self._rpm is not None:
            base = min(base, self._rpm)
        self.rpm = max(1.0, self.DECREASE * base)
        self.changed, self.cuts = now, self.cuts + 1
        self._refusals.clear()
        return True


class ServerQuota:
    """What the server says is left (`x-ratelimit-remaining-*` on its answers), spread evenly
    over the time until it resets, so the client slows down before the first 429.

    `observe` takes the newest word; `acquire(cost)` admits a request once its share of the
    time left has passed (cost 1 for requests, the token estimate for tokens). With nothing
    left it waits for the reset; past the reset, with no new word, it admits freely.
    """

    __slots__ = ("window", "_left", "_until", "_next", "_clock", "_sleep", "_lock", "waited")

    def __init__(
        self,
        window: float = WINDOW,
        *,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.window = window  # the reset assumed when a server names none (LiteLLM)
        self._left = 0.0
        self._until: float | None = None
        self._next = 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = anyio.Lock()
        self.waited = 0.0  # seconds spent waiting on the server's word, for the summary

    def observe(self, left: float, reset: float | None) -> None:
        now = self._clock()
        self._left = max(0.0, float(left))
        self._until = now + (self.window if reset is None else max(0.0, reset))
        self._next = now

    async def acquire(self, cost: float = 1.0) -> None:
        async with self._lock:
            now = self._clock()
            if self._until is None or now >= self._until:
                return
            if self._left < cost:  # spent: the server refuses until its count resets
                await self._pause(self._until - now)
                return
            if self._next > now:
                await self._pause(self._next - now)
                now = self._clock()
            span = max(0.0, self._until - now)
            self._next = now + span * cost / self._left
            self._left -= cost

    async def _pause(self, seconds: float) -> None:
        self.waited += seconds
        await self._sleep(seconds)


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
