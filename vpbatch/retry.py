"""The retry policy as data: how many attempts, how long to wait, and for how long in total.

The scheduler owns the one retry loop; this module only answers "wait how long, or give up?"
and does the waiting (providers turn Retry-After and x-ratelimit-reset-* into `retry_after`).
`testing()` records waits instead of sleeping (like `stamina`), so tests of retry behaviour
take no wall-clock time.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import anyio
import anyio.lowlevel

__all__ = ["RetryPolicy", "sleep", "now", "testing", "Waits"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by total time."""

    attempts: int = 8  # total tries, the first one included
    base: float = 0.5  # first backoff ceiling, seconds
    cap: float = 60.0  # no single backoff above this (a Retry-After may ask for more)
    total: float = 600.0  # give up when the next wait would end past this many seconds
    jitter: bool = True  # full jitter: uniform(0, ceiling) spreads synchronised retries

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The backoff after failed attempt number `attempt` (1-based), jitter included."""
        ceiling = min(self.cap, self.base * 2.0 ** (attempt - 1))
        if not self.jitter:
            return ceiling
        return (rng or random).uniform(0.0, ceiling)

    def next_delay(
        self,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when the budget is spent."""
        if attempt >= self.attempts:
            return None
        delay = self.backoff(attempt, rng)
        if retry_after is not None and retry_after > delay:
            delay = retry_after  # the server knows when capacity returns; earlier is a waste
        if elapsed + delay > self.total:
            return None
        return delay


class Waits(list[float]):
    """The waits recorded in test mode, in order."""


_recorder: Waits | None = None


def now() -> float:
    """The retry loop's clock: monotonic time, plus the waits test mode skipped."""
    skipped = sum(_recorder) if _recorder is not None else 0.0
    return time.monotonic() + skipped


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
