"""An asyncio event loop on a virtual clock, for tests of pacing that must not feel the machine.

Time moves only when every task waits for a timer (then it jumps to the next one), so work takes
no time and other processes loading the machine change nothing. Optional stalls stand in for a
descheduled process: every `stall_every` seconds the clock jumps by up to `longest_stall` while
work is pending, so timers fire late.
"""

from __future__ import annotations

import asyncio
import random
import selectors
from typing import Any

__all__ = ["VirtualTimeLoop"]


class _SelectorOnVirtualTime:
    """The loop's selector: when nothing is ready, the clock jumps to the next timer."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self.inner, self.loop = inner, loop

    def __getattr__(self, name: str) -> Any:  # register, unregister, modify, get_map, close
        return getattr(self.inner, name)

    def select(self, timeout: float | None = None) -> Any:
        # Loopback hands the bytes over within the sender's send(): an empty poll means idle.
        events = self.inner.select(0 if timeout is not None else None)
        if not events and timeout is not None:
            self.loop.now += timeout
        # Each turn takes a nanosecond, as on a real clock: a timer re-armed for "now" (float
        # residue in a limiter) cannot stop time.
        self.loop.now += 1e-9
        self.loop.maybe_stall()
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """`anyio.run(main, backend_options={"loop_factory": lambda: loop})` runs on this clock."""

    def __init__(
        self, *, stall_every: float | None = None, longest_stall: float = 0.0, seed: int = 0
    ) -> None:
        super().__init__()
        self.now = 0.0
        self.stall_every, self.longest_stall = stall_every, longest_stall
        self.next_stall = stall_every if stall_every is not None else float("inf")
        self.stalls: list[float] = []
        self.rng = random.Random(seed)
        self._selector = _SelectorOnVirtualTime(self._selector, self)  # type: ignore[assignment]

    def time(self) -> float:
        return self.now

    def maybe_stall(self) -> None:
        if self.stall_every is not None and self.now >= self.next_stall:
            stall = self.rng.uniform(0.0, self.longest_stall)
            self.stalls.append(stall)
            self.now += stall
            self.next_stall = self.now + self.stall_every
