"""The retry policy as data: how many attempts, how long to wait, and for how long in total.

The scheduler owns the one retry loop; this module only answers "wait how long, or give up?"
and does the waiting. `testing()` records waits instead of sleeping (like `stamina`), so tests
of retry behaviour take no wall-clock time.
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import anyio
import anyio.lowlevel

__all__ = ["RetryPolicy", "retry_after_from_headers", "sleep", "now", "testing", "Waits"]


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


def _seconds(value: str, now: float) -> float | None:
    """A header value as seconds from now: "1.5", "20ms", "1m30s", or an HTTP date."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    # OpenAI's x-ratelimit-reset-* use Go durations: "6m0s", "1.2s", "350ms".
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    if parts and "".join(n + u for n, u in parts) == value:
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[u] for n, u in parts)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def retry_after_from_headers(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait a 429/503 response asks for: Retry-After, retry-after-ms, x-ratelimit-reset-*.

    When several are given the longest wins: a request retried before every exhausted limit
    has reset would only be refused again.
    """
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    waits: list[float] = []
    if "retry-after-ms" in lower:
        ms = _seconds(lower["retry-after-ms"], now)
        if ms is not None:
            waits.append(ms / 1000.0)
    for name in ("retry-after", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        if name in lower:
            s = _seconds(lower[name], now)
            if s is not None:
                waits.append(s)
    return max(waits) if waits else None


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
