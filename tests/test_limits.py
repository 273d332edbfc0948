"""Client-side limits: RPM bucket sizing, the TPM budget, the resizable AIMD concurrency cap."""

from __future__ import annotations

import anyio
import pytest
from virtual_time import VirtualTimeLoop

from vpbatch.sweep.limits import WINDOW, ConcurrencyCap, RequestRate, TokenBudget, rpm_bucket


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("rpm", [1, 2, 3, 59, 60, 100, 600, 3000, 5000, 10_000, 1e6])
def test_rpm_bucket_never_admits_more_than_rpm_in_any_window(rpm: float) -> None:
    burst, rate = rpm_bucket(rpm)
    assert burst >= 1
    assert int(burst + WINDOW * rate + 1e-9) <= rpm  # whole requests


@pytest.mark.parametrize("rpm", [40, 60, 100, 119, 120, 600, 3000, 5000, 10_000, 1e6])
def test_rpm_bucket_keeps_at_least_95_percent_of_the_rate(rpm: float) -> None:
    _, rate = rpm_bucket(rpm)
    assert rate * WINDOW >= 0.95 * rpm


def test_rpm_bucket_scales_to_another_window() -> None:
    burst, rate = rpm_bucket(600, window=3.0)
    assert burst + 3.0 * rate <= 600
    assert rate * 3.0 >= 0.95 * 600


def test_rpm_bucket_rejects_a_non_positive_limit() -> None:
    with pytest.raises(ValueError, match="rpm"):
        rpm_bucket(0)


def test_request_rate_admits_the_burst_at_once_then_paces() -> None:
    loop = VirtualTimeLoop()  # time passes only while the limiter waits
    burst, rate = rpm_bucket(6000)  # 50, then 98.3 a second
    waited: list[float] = []

    async def main() -> None:
        limiter = RequestRate(6000)
        for _ in range(int(burst) + 2):
            t0 = loop.time()
            await limiter.acquire()
            waited.append(loop.time() - t0)

    anyio.run(main, backend_options={"loop_factory": lambda: loop})
    assert waited[:50] == pytest.approx([0.0] * 50, abs=1e-6)  # a checkpoint ticks 1 ns
    assert waited[50:] == pytest.approx([1 / rate] * 2, rel=1e-3)


def test_token_budget_charges_without_waiting_while_under_the_limit() -> None:
    clock = FakeClock()

    async def main() -> None:
        budget = TokenBudget(6000, clock=clock, sleep=clock.sleep)
        for _ in range(6):
            await budget.acquire(1000)
        assert budget.level == pytest.approx(6000)

    anyio.run(main)
    assert clock.sleeps == []


def test_token_budget_waits_exactly_until_the_tokens_have_leaked_out() -> None:
    clock = FakeClock()

    async def main() -> None:
        budget = TokenBudget(6000, clock=clock, sleep=clock.sleep)  # 100 tokens/s
        await budget.acquire(6000)
        await budget.acquire(500)

    anyio.run(main)
    assert sum(clock.sleeps) == pytest.approx(5.0)


def test_token_budget_spreads_a_stream_at_the_tpm_rate() -> None:
    clock = FakeClock()
    start = clock.t

    async def main() -> None:
        budget = TokenBudget(60_000, clock=clock, sleep=clock.sleep)  # 1000 tokens/s
        for _ in range(100):
            await budget.acquire(1200)

    anyio.run(main)
    # 120k tokens through a 60k/min budget: the first 60k at once, the rest at 1000/s.
    assert clock.t - start == pytest.approx(60.0)


def test_token_budget_lets_an_oversized_request_through_alone() -> None:
    clock = FakeClock()

    async def main() -> None:
        budget = TokenBudget(1000, clock=clock, sleep=clock.sleep)
        with anyio.fail_after(5):
            await budget.acquire(50_000)
        assert budget.level == pytest.approx(1000)

    anyio.run(main)


def test_token_budget_settle_refunds_unused_tokens() -> None:
    clock = FakeClock()

    async def main() -> None:
        budget = TokenBudget(6000, clock=clock, sleep=clock.sleep)
        await budget.acquire(4000)
        budget.settle(4000, 1000)
        assert budget.level == pytest.approx(1000)
        await budget.acquire(5000)

    anyio.run(main)
    assert clock.sleeps == []


def test_token_budget_settle_charges_tokens_beyond_the_estimate() -> None:
    clock = FakeClock()

    async def main() -> None:
        budget = TokenBudget(6000, clock=clock, sleep=clock.sleep)
        await budget.acquire(1000)
        budget.settle(1000, 3000)
        assert budget.level == pytest.approx(3000)

    anyio.run(main)


async def _hold(cap: ConcurrencyCap, started: list[int], gate: anyio.Event, i: int) -> None:
    await cap.acquire()
    started.append(i)
    try:
        await gate.wait()
    finally:
        cap.release()


def test_concurrency_cap_admits_at_most_its_limit() -> None:
    async def main() -> None:
        cap, gate = ConcurrencyCap(3), anyio.Event()
        started: list[int] = []
        async with anyio.create_task_group() as tg:
            for i in range(10):
                tg.start_soon(_hold, cap, started, gate, i)
            await anyio.wait_all_tasks_blocked()
            assert len(started) == 3 and cap.in_use == 3
            gate.set()
        assert len(started) == 10 and cap.in_use == 0

    anyio.run(main)


def test_concurrency_cap_growing_wakes_waiting_tasks() -> None:
    async def main() -> None:
        cap, gate = ConcurrencyCap(8), anyio.Event()
        started: list[int] = []
        cap.limit = 2
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(_hold, cap, started, gate, i)
            await anyio.wait_all_tasks_blocked()
            assert len(started) == 2
            cap.limit = 5
            await anyio.wait_all_tasks_blocked()
            assert len(started) == 5
            gate.set()

    anyio.run(main)


def test_concurrency_cap_shrinking_holds_new_tasks_until_in_use_drops() -> None:
    async def main() -> None:
        cap = ConcurrencyCap(4)
        for _ in range(4):
            await cap.acquire()
        cap.limit = 2
        got = []

        async def take() -> None:
            await cap.acquire()
            got.append(1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(take)
            await anyio.wait_all_tasks_blocked()
            cap.release()
            cap.release()
            await anyio.wait_all_tasks_blocked()
            assert got == []  # in_use 2 == limit 2
            cap.release()
        assert got == [1] and cap.in_use == 2

    anyio.run(main)


def test_concurrency_cap_backoff_halves_and_never_goes_below_one() -> None:
    cap = ConcurrencyCap(64)
    seen = []
    for _ in range(8):
        cap.backoff()
        seen.append(cap.limit)
    assert seen == [32, 16, 8, 4, 2, 1, 1, 1]


def test_concurrency_cap_halves_once_per_round_of_pushback() -> None:
    cap = ConcurrencyCap(64)
    sent = cap.epoch  # eight requests in flight together, all refused
    for _ in range(8):
        cap.backoff(sent)
    assert cap.limit == 32
    cap.backoff(cap.epoch)  # a request sent after the halving, refused too
    assert cap.limit == 16


def test_concurrency_cap_recovers_additively_to_its_ceiling() -> None:
    cap = ConcurrencyCap(16)
    cap.backoff()  # 8
    for _ in range(8):
        cap.success()
    assert cap.limit == 9  # one slot per limit's worth of successes
    for _ in range(10_000):
        cap.success()
    assert cap.limit == 16


def test_concurrency_cap_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> None:
        cap = ConcurrencyCap(1)
        await cap.acquire()
        with anyio.move_on_after(0.01):
            await cap.acquire()
        cap.release()
        with anyio.fail_after(5):
            await cap.acquire()
        assert cap.in_use == 1

    anyio.run(main)


def test_concurrency_cap_hands_a_freed_slot_to_the_oldest_waiter_not_a_newcomer() -> None:
    # Pipelines sharing a limit group's cap: a newcomer taking the slot freed for a waiter
    # would starve the waiting model.
    async def main() -> None:
        cap = ConcurrencyCap(1)
        await cap.acquire()
        order: list[str] = []

        async def waiter() -> None:
            await cap.acquire()
            order.append("waiter")
            cap.release()

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            cap.release()
            await cap.acquire()  # a newcomer, asking before the waiter has run
            order.append("newcomer")
            cap.release()
        assert order == ["waiter", "newcomer"]

    anyio.run(main)


def test_concurrency_cap_passes_on_a_slot_handed_to_a_waiter_cancelled_meanwhile() -> None:
    async def main() -> None:
        cap = ConcurrencyCap(1)
        await cap.acquire()
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def doomed() -> None:
                with scope:
                    await cap.acquire()
                    cap.release()  # not reached: the cancellation wins

            tg.start_soon(doomed)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()  # the waiter is cancelled...
            cap.release()  # ...and handed the slot before it runs
        assert cap.in_use == 0
        with anyio.fail_after(5):
            await cap.acquire()

    anyio.run(main)


def test_concurrency_cap_rejects_zero() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        ConcurrencyCap(0)
