"""What every provider batch API offers the runner: submit, poll, fetch results.

The HTTP calls around a batch (upload, create, poll, download) retry transient failures
through `retry.retrying` under the model's retry policy; per-request answers are handed back
raw, to be parsed by the same provider code as an online answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from vpbatch.errors import VPBatchError
from vpbatch.providers.base import FailureKind, ProviderError
from vpbatch.providers.failures import classify_status, redact
from vpbatch.providers.http import HttpProvider
from vpbatch.sweep import retry
from vpbatch.sweep.config import ModelConfig
from vpbatch.sweep.retry import RetryPolicy

__all__ = ["BatchAPI", "BatchCallError", "BatchState", "LineResult"]

_SNIPPET = 200
_ONCE = RetryPolicy(attempts=1)  # a create is never blindly resent: create_once looks it up


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


class BatchAPI:
    """HTTP plumbing shared by the providers' batch APIs; subclasses give the shapes."""

    __slots__ = ("provider", "session", "policy", "base", "headers", "key")

    name = "batch"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024

    def __init__(
        self, provider: HttpProvider, session: aiohttp.ClientSession, policy: RetryPolicy
    ) -> None:
        self.provider = provider
        self.session = session
        self.policy = policy
        self.base = provider.wire.base_url
        # The provider's own headers (key included): one source of truth for auth and
        # version headers. The key stays in memory, never in a message.
        self.headers = {k: v for k, v in provider.endpoint.headers.items()
                        if k != "Content-Type"}
        self.key = provider.failures.key

    # -- the shapes (subclasses) -------------------------------------------------------------

    def line(self, job_id: str, body: dict[str, Any]) -> bytes:
        """One request in the provider's batch input format."""
        raise NotImplementedError

    async def prepare(self, lines: list[bytes]) -> dict[str, Any]:
        """Whatever precedes the create (an upload); returns what identifies the batch-to-be."""
        raise NotImplementedError

    async def create(self, lines: list[bytes], extra: dict[str, Any], known: set[str]) -> str:
        """Create the batch; its id. A create whose answer was lost is looked up, not resent."""
        raise NotImplementedError

    async def recover(self, extra: dict[str, Any], known: set[str]) -> str | None:
        """The id of a batch created from `extra` but never journaled (a crash), or None."""
        raise NotImplementedError

    async def create_once(
        self, send: Any, extra: dict[str, Any], known: set[str]
    ) -> str:
        """Run `send()` (one create); on a lost or failed answer, look the batch up first."""

        async def attempt(n: int) -> str:
            try:
                return str(await send())
            except BatchCallError as exc:
                if exc.kind is FailureKind.PERMANENT:
                    raise
                found = await self.recover(extra, known)
                if found is not None:
                    return found  # the create went through; only its answer was lost
                # Back into the loop's terms; the message is already the explained one.
                raise ProviderError(exc.kind, str(exc), auth=exc.auth) from None

        try:
            return await retry.retrying(self.policy, attempt)
        except retry.GaveUp as gave_up:
            exc = gave_up.error
            raise BatchCallError(exc.message, kind=exc.kind, auth=exc.auth) from None

    async def poll(self, batch_id: str) -> BatchState:
        raise NotImplementedError

    async def results(self, state: BatchState) -> list[LineResult]:
        raise NotImplementedError

    # -- HTTP ---------------------------------------------------------------------------------

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
        headers = {**self.headers, **kw.pop("headers", {})}
        cfg: ModelConfig = self.provider.cfg
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=cfg.timeout_connect,
                                        sock_read=max(cfg.timeout_read, 300.0))
        try:
            async with self.session.request(method, url, headers=headers, timeout=timeout,
                                            **kw) as resp:
                raw = await resp.read()
                status, got = resp.status, resp.headers
        except TimeoutError:
            raise ProviderError(FailureKind.TRANSIENT, f"{method} {url}: timed out") from None
        except aiohttp.ClientError as exc:  # `from None`: request_info would carry the key
            raise ProviderError(FailureKind.TRANSIENT,
                                redact(f"{method} {url}: {type(exc).__name__}: {exc}",
                                       self.key)) from None
        if not 200 <= status < 300:
            raise classify_status(status, got, raw, provider=f"{self.name} {method} {url}",
                                  key=self.key, key_env=self.provider.failures.key_env)
        return raw

    def _explain(self, exc: ProviderError) -> str:
        what = redact(exc.message, self.key)[: _SNIPPET * 2]
        if exc.auth:
            return what
        if exc.kind is FailureKind.PERMANENT:
            return f"{what}; fix the cause, then resume (submitted batches are polled, not resent)"
        return f"{what}; gave up retrying: resume later (submitted batches are polled, not resent)"

