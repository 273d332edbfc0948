"""The retry policy (full-jitter backoff, Retry-After honoured, bounded by attempts and time)
and the one loop that follows it."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from vpbatch.transport import retry
from vpbatch.transport.records import FailureKind, ProviderError
from vpbatch.transport.retry import GaveUp, RetryPolicy, retrying


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


# -- the loop ----------------------------------------------------------------------------------


def _transient(retry_after: float | None = None) -> ProviderError:
    return ProviderError(FailureKind.TRANSIENT, "HTTP 503", status=503, retry_after=retry_after)


def _failing(errors: list[ProviderError], answer: str = "ok") -> tuple[list[int], Any]:
    """An attempt that raises `errors` in turn, then answers; and the attempt numbers it saw."""
    seen: list[int] = []

    async def attempt(n: int) -> str:
        seen.append(n)
        if errors:
            raise errors.pop(0)
        return answer

    return seen, attempt


def _run(policy: RetryPolicy, attempt: Any, **kw: Any) -> tuple[Any, list[float]]:
    """The loop's result (or the exception it raised) and the waits, in test mode."""
    async def main() -> tuple[Any, list[float]]:
        with retry.testing() as waits:
            try:
                return await retrying(policy, attempt, **kw), list(waits)
            except Exception as exc:  # noqa: BLE001 - the exception is the result under test
                return exc, list(waits)

    return anyio.run(main)


def test_loop_returns_the_first_answer_without_waiting() -> None:
    seen, attempt = _failing([])
    assert _run(RetryPolicy(), attempt) == ("ok", [])
    assert seen == [1]


def test_loop_retries_transient_failures_until_an_answer() -> None:
    seen, attempt = _failing([_transient(), _transient()])
    got, waits = _run(RetryPolicy(base=1.0, jitter=False), attempt)
    assert got == "ok" and waits == [1.0, 2.0]
    assert seen == [1, 2, 3]


def test_loop_gives_up_after_the_policys_attempts() -> None:
    last = _transient()
    seen, attempt = _failing([_transient(), _transient(), last, _transient()])
    got, waits = _run(RetryPolicy(attempts=3), attempt)
    assert isinstance(got, GaveUp) and got.error is last and got.attempts == 3
    assert seen == [1, 2, 3] and len(waits) == 2


def test_loop_honours_retry_after() -> None:
    limited = ProviderError(FailureKind.RATE_LIMITED, "HTTP 429", status=429, retry_after=30.0)
    _, attempt = _failing([limited])
    assert _run(RetryPolicy(base=0.1, cap=1.0), attempt) == ("ok", [30.0])


def test_loop_never_retries_a_permanent_failure() -> None:
    bad = ProviderError(FailureKind.PERMANENT, "HTTP 400", status=400, retry_after=1.0)
    seen, attempt = _failing([bad])
    got, waits = _run(RetryPolicy(attempts=10), attempt)
    assert isinstance(got, GaveUp) and got.error is bad and got.attempts == 1
    assert seen == [1] and waits == []


def test_loop_stops_before_a_wait_would_pass_the_total_time() -> None:
    seen, attempt = _failing([_transient(retry_after=40.0) for _ in range(5)])
    got, waits = _run(RetryPolicy(attempts=100, total=100.0), attempt)
    assert isinstance(got, GaveUp) and got.attempts == 3
    assert waits == [40.0, 40.0] and seen == [1, 2, 3]


def test_on_failure_hook_sees_each_failure_with_its_attempt() -> None:
    errors = [_transient(), _transient(), ProviderError(FailureKind.PERMANENT, "HTTP 404")]
    expected = list(zip(errors, [1, 2, 3], strict=True))
    _, attempt = _failing(list(errors))
    seen: list[tuple[ProviderError, int]] = []
    got, _ = _run(RetryPolicy(), attempt, on_failure=lambda e, n: seen.append((e, n)))
    assert isinstance(got, GaveUp) and seen == expected


def test_an_exception_from_the_hook_stops_the_loop_at_once() -> None:
    class Abort(Exception):
        pass

    def hook(exc: ProviderError, n: int) -> None:
        raise Abort

    seen, attempt = _failing([_transient(), _transient()])
    got, waits = _run(RetryPolicy(), attempt, on_failure=hook)
    assert isinstance(got, Abort) and seen == [1] and waits == []


def test_other_exceptions_pass_through_unretried() -> None:
    async def attempt(n: int) -> str:
        raise KeyError("a bug, not a provider failure")

    got, waits = _run(RetryPolicy(), attempt)
    assert isinstance(got, KeyError) and waits == []


def test_a_given_sleep_does_the_waiting() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    _, attempt = _failing([_transient(retry_after=5.0)])
    got, waits = _run(RetryPolicy(base=0.1, cap=0.1), attempt, sleep=sleep)
    assert got == "ok" and slept == [5.0] and waits == []


def test_the_rng_makes_jittered_waits_repeatable() -> None:
    def waits_with(seed: int) -> list[float]:
        _, attempt = _failing([_transient() for _ in range(4)])
        return _run(RetryPolicy(), attempt, rng=random.Random(seed))[1]

    assert waits_with(7) == waits_with(7) != waits_with(8)
