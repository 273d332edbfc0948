"""The records that cross the provider boundary: parameters in, an Answer or a ProviderError out.

A provider turns each failure into one of three kinds — permanent, transient, or
rate-limited with a retry-after — and nothing downstream second-guesses it. It never retries:
`vpbatch.transport.retry.retrying` is the one retry loop. The interfaces are in `contract`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FailureKind", "ProviderError", "Answer", "HttpRequest", "RequestParams", "Quota"]


class FailureKind(enum.Enum):
    PERMANENT = "permanent"  # 400, 401/403, 404, content filter: re-sending cannot help
    TRANSIENT = "transient"  # 5xx, dropped connection, timeout, malformed body
    RATE_LIMITED = "rate_limited"  # 429 (or 529 overloaded): wait retry_after, then again
    # The server refused a parameter by name and the provider switched the model's request
    # form (providers.adapt): re-send at once, without spending an attempt.
    ADAPTED = "adapted"


class ProviderError(Exception):
    """A classified failure. `message` is safe to log and show (it never contains the key)."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        auth: bool = False,
        timed_out: bool = False,
        unreachable: bool = False,
        adapted: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.auth = auth  # the key was rejected: the whole model stops, the others go on
        self.timed_out = timed_out  # no answer within the timeouts (sweep.breaker counts these)
        self.unreachable = unreachable  # no connection at all: refused, no such host
        self.adapted = adapted  # ADAPTED, first to switch: the model's new form (to record)


@dataclass(slots=True)
class RequestParams:
    """What the grid asks of one request, before a provider maps it to its own body."""

    temperature: float | None
    max_tokens: int
    seed: int | None
    reasoning: bool = False
    # Choice mode: the six phrases in the order the prompt lists them (the answer's enum);
    # None asks for the paper's free text.
    choice: tuple[str, ...] | None = None


@dataclass(slots=True)
class HttpRequest:
    """A fully built request. `headers` may hold the key; only `body` is ever logged."""

    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Quota:
    """What a server says is left of its limits (`x-ratelimit-remaining-*` on an answer):
    requests and tokens, each with seconds until it resets (None: not said)."""

    requests: float | None = None
    requests_reset: float | None = None
    tokens: float | None = None
    tokens_reset: float | None = None


@dataclass(slots=True)
class Answer:
    text: str  # the answer content, reasoning stripped out
    reasoning: str | None = None  # separate reasoning field or <think>...</think> text
    finish_reason: str | None = None  # "length" means cut off at max_tokens
    usage: dict[str, int] = field(default_factory=dict)
    # The text is OpenAI's `refusal` field (the message had no content): never rated.
    refusal: bool = False
    quota: Quota | None = None  # the server's remaining-limit headers, when it sent any
    adapted: tuple[str, ...] = ()  # how the body sent differed from the job's (adapt.py)
