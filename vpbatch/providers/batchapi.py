"""What every provider batch API offers the runner (`BatchAPI`), and the calls they share.

`BatchAPI` is the contract: submit, poll, fetch results. `BatchCalls` is the component each
API composes for its HTTP calls (upload, create, poll, download): sent through the model's own
`Endpoint` (its headers, its key masked, its failures classified as online), transient
failures retried through `retry.retrying` under the model's retry policy. Per-request answers
are handed back raw, to be parsed by the same provider code as an online answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from vpbatch.errors import VPBatchError
from vpbatch.providers.http import Endpoint, HttpProvider
from vpbatch.transport import retry
from vpbatch.transport.records import FailureKind, ProviderError
from vpbatch.transport.retry import RetryPolicy

__all__ = ["BatchAPI", "BatchCalls", "BatchCallError", "BatchState", "LineResult", "LIST_PAGE",
           "MAX_PAGES", "SKEW_S"]

_SNIPPET = 200
_ONCE = RetryPolicy(attempts=1)  # a create is never blindly resent: create_once looks it up
_READ_S = 300.0  # the least read timeout of a batch call: a results file can be large


class BatchCallError(VPBatchError):
    """A batch call (upload, create, poll, download) failed for good; names cause and fix."""

    def __init__(self, message: str, *, kind: FailureKind, auth: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.auth = auth


@dataclass(slots=True)
class BatchState:
    """A batch as last polled. `done`: the provider will change nothing more."""

    batch_id: str
    status: str  # the provider's own word (in_progress, completed, ended, expired, ...)
    done: bool = False
    failed: str | None = None  # the whole batch failed or expired unrun: why
    files: dict[str, str] = field(default_factory=dict)  # result locations (ids or URLs)


@dataclass(slots=True)
class LineResult:
    """One request's outcome: an HTTP status and body to parse, or why it never ran."""

    job_id: str
    status: int | None  # None: expired or cancelled before it ran (transient: send again)
    body: bytes = b""
    reason: str | None = None


# Shared by the vendors' list endpoints (a crash-recovery lookup of a batch we created):
LIST_PAGE = 100
MAX_PAGES = 50  # how far back a crash-recovery lookup pages through the batch list
SKEW_S = 300.0  # their clock against ours, when matching a batch by its creation time


class BatchAPI(ABC):
    """One provider's batch API as the batch runner uses it, over that provider's endpoint."""

    __slots__ = ("calls", "base")

    def __init__(self, provider: HttpProvider, policy: RetryPolicy) -> None:
        self.calls = BatchCalls(self.name, provider.endpoint, policy)
        self.base = provider.wire.base_url

    name: ClassVar[str]  # names the API in messages: "openai batch"
    max_requests: ClassVar[int]  # the provider's caps on one batch
    max_bytes: ClassVar[int]

    @abstractmethod
    def line(self, job_id: str, body: dict[str, Any]) -> bytes:
        """One request in the provider's batch input format."""

    @abstractmethod
    async def prepare(self, lines: list[bytes]) -> dict[str, Any]:
        """Whatever precedes the create (an upload); returns what identifies the batch-to-be."""

    @abstractmethod
    async def create(self, lines: list[bytes], extra: dict[str, Any], known: set[str]) -> str:
        """Create the batch; its id. A create whose answer was lost is looked up, not resent."""

    @abstractmethod
    async def recover(self, extra: dict[str, Any], known: set[str]) -> str | None:
        """The id of a batch created from `extra` but never journaled (a crash), or None."""

    @abstractmethod
    async def poll(self, batch_id: str) -> BatchState:
        """The batch's state now."""

    @abstractmethod
    async def results(self, state: BatchState) -> list[LineResult]:
        """Every request's outcome of a done batch."""


class BatchCalls:
    """The HTTP calls around a batch: the model's endpoint under the model's retry policy."""

    __slots__ = ("name", "endpoint", "policy")

    def __init__(self, name: str, endpoint: Endpoint, policy: RetryPolicy) -> None:
        self.name = name
        self.endpoint = endpoint
        self.policy = policy

    async def create_once(
        self, send: Callable[[], Awaitable[str]], recover: Callable[[], Awaitable[str | None]]
    ) -> str:
        """Run `send()` (one create); on a lost or failed answer, `recover()` looks it up first."""

        async def attempt(n: int) -> str:
            try:
                return await send()
            except BatchCallError as exc:
                if exc.kind is FailureKind.PERMANENT:
                    raise
                found = await recover()
                if found is not None:
                    return found  # the create went through; only its answer was lost
                # Back into the loop's terms; the message is already the explained one.
                raise ProviderError(exc.kind, str(exc), auth=exc.auth) from None

        try:
            return await retry.retrying(self.policy, attempt)
        except retry.GaveUp as gave_up:
            exc = gave_up.error
            raise BatchCallError(exc.message, kind=exc.kind, auth=exc.auth) from None

    async def call(self, method: str, url: str, *, retries: bool = True, **kw: Any) -> bytes:
        """One batch call's body; transient failures retried, the rest a BatchCallError."""
        policy = self.policy if retries else _ONCE

        async def attempt(n: int) -> bytes:
            return await self._once(method, url, **kw)

        try:
            return await retry.retrying(policy, attempt)
        except retry.GaveUp as gave_up:
            exc = gave_up.error
            raise BatchCallError(self._explain(exc), kind=exc.kind, auth=exc.auth) from None

    async def call_json(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        raw = await self.call(method, url, **kw)
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise BatchCallError(f"{self.name}: {method} {url} answered {raw[:80]!r}, not a JSON "
                                 "object; check base_url", kind=FailureKind.PERMANENT)
        return doc

    async def _once(self, method: str, url: str, **kw: Any) -> bytes:
        endpoint = self.endpoint
        read = max(endpoint.cfg.timeout_read, _READ_S)
        status, headers, raw = await endpoint.send(method, url, read_timeout=read, **kw)
        if not 200 <= status < 300:
            raise endpoint.failures.status(status, headers, raw, where=f" batch {method} {url}")
        return raw

    def _explain(self, exc: ProviderError) -> str:
        what = self.endpoint.failures.redact(exc.message)[: _SNIPPET * 2]
        if exc.auth:
            return what
        if exc.kind is FailureKind.PERMANENT:
            return f"{what}; fix the cause, then resume (submitted batches are polled, not resent)"
        return f"{what}; gave up retrying: resume later (submitted batches are polled, not resent)"
