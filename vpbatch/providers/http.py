"""HTTP delivery: the endpoint that sends and classifies, and `HttpProvider`.

`Endpoint` is the one place a request goes out over aiohttp and a network failure becomes a
`ProviderError`; the online providers and the batch APIs both send through it. `HttpProvider`
composes a wire (the API's format) with an endpoint: that is every real provider.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson
from yarl import URL

from vpbatch.config.schema import ModelConfig
from vpbatch.providers.adapt import Adapter
from vpbatch.providers.contract import Wire
from vpbatch.providers.secrets import endpoint_extras
from vpbatch.transport.failures import Failures, quota
from vpbatch.transport.records import Answer, HttpRequest, ProviderError, RequestParams
from vpbatch.transport.session import client_session

__all__ = ["Endpoint", "HttpProvider", "read_answer", "Signer"]

# Optional, per request: (method, url, headers, body bytes) -> the headers that authenticate
# that one request, for APIs whose signature covers the body and a timestamp (AWS SigV4).
Signer = Callable[[str, str, Mapping[str, str], bytes], dict[str, str]]

_JSON = {"Content-Type": "application/json"}  # a chat request's body is JSON bytes

# A URL aiohttp cannot send to (no scheme, no host, not http): permanent. NonHttpUrlClientError
# ("127.0.0.1:8000/v1", the usual slip) arrived in aiohttp 3.10 and is no InvalidURL.
_BAD_URL: tuple[type[Exception], ...] = tuple(
    c
    for n in ("InvalidURL", "NonHttpUrlClientError")
    if isinstance(c := getattr(aiohttp, n, None), type)
)


class Endpoint:
    """One model's API server: where requests go with which headers, and how failures read."""

    __slots__ = ("cfg", "session", "headers", "failures", "query")

    def __init__(
        self,
        cfg: ModelConfig,
        session: aiohttp.ClientSession | None,
        headers: dict[str, str],
        failures: Failures,
        query: Mapping[str, str] | None = None,
    ) -> None:
        self.cfg = cfg
        self.session = session  # None: each send opens its own (one-off calls)
        self.headers = headers  # the key among them: never logged, never in a message
        self.failures = failures
        self.query = dict(query or {})  # the `query` setting: may hold a secret, never shown

    async def send(
        self, method: str, url: str | URL, *, read_timeout: float | None = None,
        limit: int | None = None, **kw: Any,
    ) -> tuple[int, Mapping[str, str], bytes]:
        """One request's status, headers and body; failing to get them is a ProviderError.

        `limit` caps the body in bytes (a chat answer's `max_response_bytes`): a longer one
        fails at once, unread, so no server can fill the memory or the log.
        """
        headers = {**self.headers, **kw.pop("headers", {})}
        if self.query:
            kw["params"] = {**self.query, **kw.pop("params", {})}
        read = self.cfg.timeout_read if read_timeout is None else read_timeout
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.cfg.timeout_connect,
                                        sock_read=read)
        try:
            if self.session is None:
                async with client_session() as session:
                    return await _request(session, method, url, headers, timeout, kw, limit)
            return await _request(self.session, method, url, headers, timeout, kw, limit)
        except _TooLarge as big:
            # Permanent: a server that sends this much for one chat answer (a runaway
            # generation, a proxy streaming a file) will do it again; re-sending pays again.
            raise self.failures.permanent(
                f"the answer from {url} is larger than max_response_bytes = {limit:,} bytes"
                f"{big.declared}; the rest was not read. Lower max_tokens, check the server, "
                "or raise max_response_bytes if answers this long are expected") from None
        except TimeoutError as exc:
            limits = f"connect {self.cfg.timeout_connect:g}s, read {read:g}s"
            raise self.failures.transient(
                f"{method} {url} timed out ({type(exc).__name__}; {limits})",
                timed_out=True) from None
        except _BAD_URL as exc:
            # A malformed base_url fails the same way every time: no retry can help.
            raise self.failures.permanent(f"invalid URL {exc}; fix base_url") from None
        except aiohttp.ClientError as exc:
            # `from None`: aiohttp errors may carry request_info, whose headers hold the key.
            raise self.failures.transient(
                f"{method} {url}: {type(exc).__name__}: {exc}",
                unreachable=isinstance(exc, aiohttp.ClientConnectorError)) from None


class _TooLarge(Exception):
    """A body over the cap; `declared` says what Content-Length announced, if anything."""

    def __init__(self, length: int | None) -> None:
        super().__init__(length)
        self.declared = f" (Content-Length {length:,})" if length is not None else ""


async def _request(
    session: aiohttp.ClientSession, method: str, url: str | URL, headers: dict[str, str],
    timeout: aiohttp.ClientTimeout, kw: dict[str, Any], limit: int | None,
) -> tuple[int, Mapping[str, str], bytes]:
    async with session.request(method, url, headers=headers, timeout=timeout, **kw) as resp:
        if limit is None:
            return resp.status, resp.headers, await resp.read()
        return resp.status, resp.headers, await _read_capped(resp, limit)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body if it holds at most `limit` bytes (decoded); else _TooLarge, the rest unread."""
    declared = resp.content_length
    if declared is not None and declared > limit:  # (compressed, it would only be larger)
        resp.close()  # the connection goes, not the body: nothing more is read
        raise _TooLarge(declared)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > limit:
            resp.close()
            raise _TooLarge(declared)
    return bytes(body)


def read_answer(
    wire: Wire, failures: Failures, status: int, headers: Mapping[str, str], raw: bytes
) -> Answer:
    """One HTTP response as an Answer, or the ProviderError it amounts to."""
    if not 200 <= status < 300:
        raise failures.status(status, headers, raw)
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if raw.lstrip()[:1] in (b"", b"{", b"["):
            # Nothing, or JSON that breaks off: a response cut short (a proxy dropped it).
            raise failures.transient(
                f"a truncated or empty {status} answer: {raw[:80]!r}") from None
        # An HTML page or any other text: the URL reaches something that is not the API.
        raise failures.not_an_answer(wire.url, headers, raw, f"{status} with a body that "
                                     "is not JSON") from None
    if not isinstance(payload, dict):
        raise failures.not_an_answer(wire.url, headers, raw, f"{status} with a JSON "
                                     f"{type(payload).__name__}, not an object")
    answer = wire.answer(payload, headers, failures)
    answer.quota = quota(headers, failures.clock())  # the pipeline paces by it
    return answer


class HttpProvider:
    """A model behind an HTTP API: its wire's bodies POSTed to its endpoint, answers read back."""

    __slots__ = ("cfg", "wire", "endpoint", "sign", "adapter")

    def __init__(
        self,
        cfg: ModelConfig,
        wire: Wire,
        session: aiohttp.ClientSession | None,
        key: str | None,
        *,
        key_env: str | None = None,
        sign: Signer | None = None,
        failures: Failures | None = None,
        env: Mapping[str, str] = os.environ,
    ) -> None:
        self.cfg = cfg
        self.wire = wire
        if failures is None:  # (a provider may bring its own: its error shapes, its key names)
            # ... or its wire may name the Failures of its API's error bodies (gemini, azure)
            failures = getattr(wire, "make_failures", Failures)(
                wire.label, key, key_env if key_env is not None else cfg.api_key_env)
        # The `headers` / `query` settings, "${NAME}" read from env: secrets, masked like the key.
        extra = endpoint_extras(cfg, env)
        failures.secrets = extra.secrets
        headers = {**wire.headers(key or None), **extra.headers}
        self.endpoint = Endpoint(cfg, session, headers, failures, extra.query)
        self.sign = sign
        # A wire that says so (OpenAI-compatible) switches max_tokens/temperature on a 400.
        self.adapter = Adapter() if getattr(wire, "adapts", False) else None

    @property
    def failures(self) -> Failures:
        return self.endpoint.failures

    def build_request(self, messages: list[dict[str, str]], params: RequestParams) -> HttpRequest:
        return HttpRequest(self.wire.url, {**self.endpoint.headers, **_JSON},
                           self.wire.body(messages, params))

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: RequestParams,
        body: dict[str, Any] | None = None,
    ) -> Answer:
        if body is None:
            body = self.wire.body(messages, params)
        if self.adapter is None:
            return self.parse(*await self._send(body))
        adapter = self.adapter
        # (Bounded: a probe its pipeline abandoned must not hold the others for ever.)
        patience = self.cfg.timeout_connect + self.cfg.timeout_read
        await adapter.wait_turn(body, patience)
        sent = adapter.apply(body)
        probing = False  # this request's 400 switched the form: its job is now the probe
        try:
            status, headers, raw = await self._send(sent)
            futile = adapter.futile
            adapted = adapter.learn(sent, body, raw, self.wire.label) if status == 400 else None
            if adapter.futile and not futile:  # undone: the 400 stands, the form is recorded
                try:
                    self.parse(status, headers, raw)
                except ProviderError as exc:
                    exc.adapted = adapter.form.to_json()
                    raise
            if adapted is not None and adapted.adapted is None:
                await adapter.wait_turn(body, patience)  # sent before the switch: the probe's
                adapted = None if adapter.futile else adapted  # outcome says if re-sending helps
            if adapted is not None:
                probing = adapted.adapted is not None
                raise adapted  # ADAPTED: the one retry loop re-sends it at once, in the new form
            answer = self.parse(status, headers, raw)
        finally:
            if not probing:
                adapter.settled(body)
        if sent is not body:
            answer.adapted = adapter.form.changes()
        return answer

    async def _send(self, body: dict[str, Any]) -> tuple[int, Mapping[str, str], bytes]:
        """POST one body (signed first if this API signs each request)."""
        data = orjson.dumps(body)
        url: str | URL = self.wire.url
        sent = dict(_JSON)
        if self.sign is not None:
            sent.update(self.sign("POST", self.wire.url, {**self.endpoint.headers, **_JSON},
                                  data))
            # Sent byte for byte as signed: yarl would decode a model id's %3A to ":", and the
            # signature covers the path.
            url = URL(self.wire.url, encoded=True)
        return await self.endpoint.send(
            "POST", url, limit=self.cfg.max_response_bytes, data=data, headers=sent)

    def parse(self, status: int, headers: Mapping[str, str], raw: bytes) -> Answer:
        return read_answer(self.wire, self.failures, status, headers, raw)

