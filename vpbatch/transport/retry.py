"""The code base's one retry loop, and its policy as data.

`retrying` calls an attempt until it returns, fails permanently, or the policy's attempts or
total time run out; it reacts only to the ProviderError a provider classified (permanent /
transient / rate-limited with `retry_after`). A rate-limited job is retried by time, not by
count, until it has been refused for `window` seconds: a server that counts per minute
refuses for up to a minute, whatever the attempts. `testing()` records waits instead of sleeping
(like `stamina`), so tests of retry behaviour take no wall-clock time.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.lowlevel

from vpbatch.transport.records import FailureKind, ProviderError

__all__ = ["RetryPolicy", "GaveUp", "retrying", "sleep", "now", "testing", "Waits",
           "FREE_RESENDS"]

T = TypeVar("T")
# ADAPTED re-sends per job that spend no attempt: each follows a change of the request's form
# (two forms can change: the token field, the temperature), so more means a server that
# refuses every form; from then on they count as attempts like any other failure.
FREE_RESENDS = 4


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by total time."""

    attempts: int = 8  # total tries, the first one included
    base: float = 0.5  # first backoff ceiling, seconds
    cap: float = 60.0  # no single backoff above this (a Retry-After may ask for more)
    total: float = 600.0  # give up when the next wait would end past this many seconds
    jitter: bool = True  # full jitter: uniform(0, ceiling) spreads synchronised retries
    # A job refused with 429 is retried, attempts regardless, until refused this long: the
    # window a gateway counts in (LiteLLM: the calendar minute). Its backoff stays under a
    # quarter of it (a Retry-After may ask for more), so the first try after the window
    # turns comes soon.
    window: float = 60.0

    def backoff(
        self, attempt: int, rng: random.Random | None = None, *, limited: bool = False
    ) -> float:
        """The backoff after failed attempt number `attempt` (1-based), jitter included;
        `limited`: after a 429, whose backoff stays under a quarter window."""
        cap = min(self.cap, self.window / 4.0) if limited else self.cap
        ceiling = min(cap, self.base * 2.0 ** min(attempt - 1, 64))
        if not self.jitter:
            return ceiling
        return (rng or random).uniform(0.0, ceiling)

    def next_delay(
        self,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
        *,
        refused_for: float | None = None,
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when the budget is spent.

        `refused_for`: how long this job has been rate-limited (None: the failure is not a
        429); within `window` the attempt count does not end it, only `total` does.
        """
        in_window = refused_for is not None and refused_for < self.window
        if attempt >= self.attempts and not in_window:
            return None
        delay = self.backoff(attempt, rng, limited=refused_for is not None)
        if retry_after is not None and retry_after > delay:
            delay = retry_after  # the server knows when capacity returns; earlier is a waste
        if elapsed + delay > self.total:
            return None
        return delay


class Waits(list[float]):
    """The waits recorded in test mode, in order."""


_recorder: Waits | None = None


def now() -> float:
    """The retry loop's clock: the event loop's (monotonic) time, plus the waits test mode
    skipped. The loop's, so that a loop on virtual time (tests) moves this clock too."""
    skipped = sum(_recorder) if _recorder is not None else 0.0
    try:
        clock = anyio.current_time()
    except RuntimeError:  # called outside any event loop (anyio's NoEventLoopError)
        clock = time.monotonic()
    return clock + skipped


async def sleep(seconds: float) -> None:
    """Wait before a retry; in test mode, record the wait and return at once."""
    if _recorder is not None:
        _recorder.append(seconds)
        await anyio.lowlevel.checkpoint()
        return
    await anyio.sleep(seconds)


@contextlib.contextmanager
def testing() -> Iterator[Waits]:
    """Within this block retry waits are recorded, not slept: `with testing() as waits: ...`."""
    global _recorder
    previous, _recorder = _recorder, Waits()
    try:
        yield _recorder
    finally:
        _recorder = previous


class GaveUp(Exception):
    """No more attempts: `error` is the last failure (permanent, or retries ran out)."""

    def __init__(self, error: ProviderError, attempts: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts


_sleep = sleep  # `retrying`'s default, reachable although its parameter shadows the name


async def retrying(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
    *,
    on_failure: Callable[[ProviderError, int], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] | None = None,
    rng: random.Random | None = None,
) -> T:
    """`await attempt(n)` for n = 1, 2, ... until it returns; raises GaveUp when it stops.

    Only ProviderError is retried; anything else (a cancellation, a bug, an exception the
    hook raises to stop early) passes through at once. `on_failure` sees every failure
    before the decision; `sleep` waits out the delay (default: this module's `sleep`).
    """
    wait = sleep if sleep is not None else _sleep
    started = now()
    refused_since: float | None = None  # when this job's first 429 came back
    n = free = 0
    while True:
        n += 1
        try:
            return await attempt(n)
        except ProviderError as exc:
            if on_failure is not None:
                on_failure(exc, n)
            if exc.kind is FailureKind.ADAPTED and free < FREE_RESENDS:
                # The provider changed the request's form on the server's word: the same
                # attempt again, now, in the new form (not a retry of a failure).
                free += 1
                n -= 1
                continue
            delay = None
            t = now()
            refused_for = None
            if exc.kind is FailureKind.RATE_LIMITED:
                refused_since = t if refused_since is None else refused_since
                refused_for = t - refused_since
            if exc.kind is not FailureKind.PERMANENT:  # re-sending cannot fix a permanent one
                delay = policy.next_delay(n, t - started, exc.retry_after, rng,
                                          refused_for=refused_for)
            if delay is None:
                raise GaveUp(exc, n) from exc
            await wait(delay)
