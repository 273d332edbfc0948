"""The two contracts of the provider stage: `Wire` (an API's format) and `Provider` (a model).

The pipeline and the batch runner see a model only through `Provider`. A provider composes a
`Wire` (how a request body is built and an answer read: pure, keyless) with a way to deliver
the body: an HTTP endpoint (`providers.http.HttpProvider`) or the in-process respondent
(`providers.sim.SimProvider`). The grid builds each job's body with the wire alone, so a job's
id covers exactly what is sent, and `plan`/`status --shard` need no key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from vpbatch.config.schema import ModelConfig
from vpbatch.transport.failures import Failures
from vpbatch.transport.records import Answer, HttpRequest, RequestParams

__all__ = ["Wire", "Provider"]


class Wire(Protocol):
    """One API's request and answer format for one model; it never sees a key or a socket.

    A new request field (an answer format, a vendor switch) goes into `body` from
    `RequestParams` or the model's config: the job id digests the body, so it follows.
    """

    label: str  # names the API in messages: "openai", "anthropic", "sim", ...
    base_url: str  # the API's root (batch endpoints hang off it), no trailing slash
    url: str  # where one chat request goes

    def body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        """The JSON body exactly as sent (extra_body merged); ProviderError if unsendable."""
        ...

    def headers(self, key: str | None) -> dict[str, str]:
        """Every request's headers, the key among them when there is one; the content type is
        the sender's (JSON for a chat, a form for a batch upload)."""
        ...

    def answer(
        self, payload: dict[str, Any], headers: Mapping[str, str], failures: Failures
    ) -> Answer:
        """A decoded 2xx body as an Answer, or the ProviderError it amounts to."""
        ...


class Provider(Protocol):
    """One model as the pipeline and the batch runner use it; every failure a ProviderError."""

    @property
    def cfg(self) -> ModelConfig: ...

    @property
    def wire(self) -> Wire: ...

    @property
    def failures(self) -> Failures: ...

    def build_request(self, messages: list[dict[str, str]], params: RequestParams) -> HttpRequest:
        """The whole request (URL, headers with the key, body) for one chat; pure."""
        ...

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: RequestParams,
        body: dict[str, Any] | None = None,
    ) -> Answer:
        """Send one chat and return its answer. `body` is `wire.body(messages, params)` when
        the caller has it (a job carries it); it is never retried here."""
        ...

    def parse(self, status: int, headers: Mapping[str, str], raw: bytes) -> Answer:
        """One HTTP response (online, or a batch result line) as an Answer or its error."""
        ...
