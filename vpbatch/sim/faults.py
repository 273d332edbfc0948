"""Injected faults: which failure (if any) the simulated server answers a request with.

A fault is a pure function of (seed, request key, attempt number), so a test sees the same
faults on every run, and a retried request draws afresh and eventually succeeds. Three faults
answer 200 with an answer that measures nothing (ANSWER_FAULTS): the rating as a digit, no
content after a reasoning budget spent (finish_reason "length"), OpenAI's `refusal` field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from vpbatch.errors import ConfigError

__all__ = ["FaultPlan", "FAULT_KINDS", "ANSWER_FAULTS", "REFUSAL_TEXT", "draw_fault",
           "unit_hash"]

# The order fixes how one uniform draw is cut into kinds; never reorder (tests rely on it).
# New kinds go at the end, so the draws of the older ones stay where they were.
FAULT_KINDS: Final = ("429", "500", "503", "drop", "malformed", "slow", "digits", "length",
                      "refusal")
ANSWER_FAULTS: Final = frozenset({"digits", "length", "refusal"})  # a 200 that rates as nothing
REFUSAL_TEXT: Final = "I'm sorry, I can't help with that."


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) determined by `parts` alone (stable across processes)."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    digest = hashlib.blake2b(blob, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Per-attempt probabilities of each fault; `max_faulty_attempts` caps the bad luck."""

    p_429: float = 0.0
    retry_after_s: float = 1.0
    p_500: float = 0.0
    p_503: float = 0.0
    p_drop: float = 0.0
    p_malformed: float = 0.0
    p_slow: float = 0.0
    slow_s: float = 5.0
    p_digits: float = 0.0  # the answer is the rating as a digit ("5"), not a phrase
    p_length: float = 0.0  # content null, finish_reason "length", max_tokens spent reasoning
    p_refusal: float = 0.0  # content null, OpenAI's refusal field set
    # With p_length: a budget above this many tokens leaves room to answer after reasoning
    # (0: no budget is ever enough). Models a reasoning model that thinks this long.
    think_tokens: int = 0
    # From this attempt on (0-based) a request is never faulted: a client that retries at
    # least this many times always gets through, whatever the probabilities.
    max_faulty_attempts: int = 4

    def __post_init__(self) -> None:
        probs = self.probabilities()
        bad = [k for k, p in zip(FAULT_KINDS, probs, strict=True) if not 0.0 <= p <= 1.0]
        if bad:
            raise ConfigError(f"fault probabilities for {bad} must lie in [0, 1]")
        if sum(probs) > 1.0 + 1e-9:
            raise ConfigError(
                f"fault probabilities sum to {sum(probs):.3f} > 1; lower some of them"
            )
        if self.retry_after_s < 0 or self.slow_s < 0:
            raise ConfigError("retry_after_s and slow_s must be >= 0 seconds")
        if self.think_tokens < 0:
            raise ConfigError("think_tokens must be >= 0 (0: every budget is spent reasoning)")

    def probabilities(self) -> tuple[float, ...]:
        return (self.p_429, self.p_500, self.p_503, self.p_drop, self.p_malformed, self.p_slow,
                self.p_digits, self.p_length, self.p_refusal)

    @property
    def active(self) -> bool:
        return any(p > 0 for p in self.probabilities())


def draw_fault(plan: FaultPlan, key: str, attempt: int, seed: int = 0) -> str | None:
    """The fault kind for this attempt of this request, or None to answer normally."""
    if not plan.active or attempt >= plan.max_faulty_attempts:
        return None
    u = unit_hash("fault", seed, key, attempt)
    edge = 0.0
    for kind, p in zip(FAULT_KINDS, plan.probabilities(), strict=True):
        edge += p
        if u < edge:
            return kind
    return None
