"""The retry policy: full-jitter backoff, Retry-After honoured, bounded by attempts and time."""

from __future__ import annotations

import random

import anyio
import pytest

from vpbatch import retry
from vpbatch.retry import RetryPolicy


def test_backoff_without_jitter_doubles_from_base_up_to_cap() -> None:
    p = RetryPolicy(base=0.5, cap=4.0, jitter=False)
    assert [p.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_full_jitter_stays_between_zero_and_the_ceiling() -> None:
    p = RetryPolicy(base=1.0, cap=8.0)
    rng = random.Random(1)
    for n in range(1, 10):
        ceiling = min(8.0, 2.0 ** (n - 1))
        draws = [p.backoff(n, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.5 * ceiling  # really spread, not stuck at zero


def test_retry_after_longer_than_the_backoff_wins() -> None:
    p = RetryPolicy(base=0.1, cap=1.0)
    assert p.next_delay(1, elapsed=0.0, retry_after=7.5) == 7.5


def test_backoff_longer_than_retry_after_wins() -> None:
    p = RetryPolicy(base=10.0, cap=10.0, jitter=False)
    assert p.next_delay(1, elapsed=0.0, retry_after=0.2) == 10.0


def test_gives_up_after_the_last_attempt() -> None:
    p = RetryPolicy(attempts=3)
    assert p.next_delay(2, elapsed=0.0) is not None
    assert p.next_delay(3, elapsed=0.0) is None


def test_gives_up_when_the_wait_would_pass_the_total_time() -> None:
    p = RetryPolicy(attempts=100, total=30.0)
    assert p.next_delay(1, elapsed=10.0, retry_after=15.0) == 15.0
    assert p.next_delay(1, elapsed=20.0, retry_after=15.0) is None


def test_testing_mode_records_waits_instead_of_sleeping() -> None:
    async def main() -> None:
        with retry.testing() as waits:
            t0 = retry.now()
            await retry.sleep(3600.0)
            await retry.sleep(1.5)
            assert retry.now() - t0 >= 3601.5  # the retry clock counts skipped waits
        assert waits == [3600.0, 1.5]

    anyio.run(main)


def test_outside_testing_mode_sleep_really_waits() -> None:
    async def main() -> None:
        with anyio.move_on_after(0.01) as scope:
            await retry.sleep(60.0)
        assert scope.cancelled_caught

    anyio.run(main)


@pytest.mark.parametrize("field", ["attempts", "base", "cap", "total", "jitter"])
def test_policy_is_plain_data(field: str) -> None:
    assert field in RetryPolicy.__dataclass_fields__
