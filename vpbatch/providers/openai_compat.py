"""The one provider base: OpenAI Chat Completions and every server that speaks it.

It builds the request body, sends it with aiohttp, parses the answer (reasoning kept apart)
and turns every failure into exactly one `ProviderError` at this boundary. The other
providers subclass it and override only what their API does differently.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from vpbatch.benchmark.parser import split_reasoning
from vpbatch.providers.base import (
    Answer,
    FailureKind,
    HttpRequest,
    ProviderError,
    RequestParams,
)
from vpbatch.providers.http import client_session
from vpbatch.sweep.config import ModelConfig

__all__ = [
    "OpenAICompatProvider",
    "Provider",
    "classify_status",
    "retry_after",
    "redact",
    "merge_extra",
    "is_local",
    "usage_of",
]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
_SNIPPET = 300  # characters of an error body kept in a message: enough to name the cause

# Key-shaped tokens are masked even when they are not our key: an error body may echo a
# header we never saw (a proxy's), and a message is shown and logged verbatim.
_TOKEN = r"""[^\s'",]+"""  # a header value up to its closing quote or separator
_KEYLIKE = re.compile(
    r"(?i)\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{6,}|\bBearer\s+"
    + _TOKEN
    + r"""|(x-api-key|api[_-]?key)(["':=\s]+)"""
    + _TOKEN
)
# A URL aiohttp cannot send to (no scheme, no host, not http): permanent. NonHttpUrlClientError
# ("127.0.0.1:8000/v1", the usual slip) arrived in aiohttp 3.10 and is no InvalidURL.
_BAD_URL: tuple[type[Exception], ...] = tuple(
    c
    for n in ("InvalidURL", "NonHttpUrlClientError")
    if isinstance(c := getattr(aiohttp, n, None), type)
)
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_GO_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def is_local(base_url: str | None) -> bool:
    """True for a server on this machine (a key is optional there)."""
    return bool(base_url) and (urlsplit(base_url).hostname or "") in _LOCAL_HOSTS


def redact(text: str, key: str | None) -> str:
    """`text` with the key, any fragment of it (8+ chars) and key-shaped tokens masked."""
    if key:
        text = text.replace(key, "***")
        # A server may echo a truncated key ("sk-abc...xyz"): mask any long piece of it.
        text = re.sub(
            r"[A-Za-z0-9_\-]{8,}", lambda m: "***" if m.group(0) in key else m.group(0), text
        )
    return _KEYLIKE.sub(lambda m: f"{m.group(1)}{m.group(2)}***" if m.group(1) else "***", text)


def _seconds(value: str, now: float) -> float | None:
    """One header value as seconds from `now`: "1.5", Go "6m0s"/"20ms", HTTP or RFC 3339 date."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _GO_DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value:
        return sum(float(n) * _GO_SCALE[u] for n, u in parts)
    try:
        when = datetime.fromisoformat(value)  # Anthropic's RFC 3339 reset times
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        return None  # a date without a zone cannot be placed in time
    return max(0.0, when.timestamp() - now)


def _remaining_name(reset: str) -> str | None:
    """The `remaining` header that goes with a reset header, or None if it is not one."""
    if reset.startswith("x-ratelimit-reset-"):
        return "x-ratelimit-remaining-" + reset.removeprefix("x-ratelimit-reset-")
    if reset.startswith("anthropic-ratelimit-") and reset.endswith("-reset"):
        return reset.removesuffix("reset") + "remaining"
    return None


def retry_after(
    headers: Mapping[str, str], now: float | None = None, *, resets: bool = True
) -> float | None:
    """Seconds a pushed-back request should wait, from whichever rate-limit header is present.

    `retry-after-ms` and `Retry-After` are explicit answers and win. Otherwise (if `resets`)
    the reset time of the exhausted limit (remaining 0), or the latest reset when none says.
    """
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lower:
        ms = _seconds(lower["retry-after-ms"], now)
        if ms is not None:
            return ms / 1000.0
    if "retry-after" in lower:
        explicit = _seconds(lower["retry-after"], now)
        if explicit is not None:
            return explicit
    if not resets:
        return None
    waits: dict[str, float] = {}
    for name, value in lower.items():
        remaining = _remaining_name(name)
        if remaining is not None and (s := _seconds(value, now)) is not None:
            waits[remaining] = s
    # Only the exhausted limit matters: the token window may be minutes while requests reset
    # in milliseconds, and waiting for the wrong one wastes the whole difference.
    exhausted = [s for rem, s in waits.items() if lower.get(rem, "").strip() == "0"]
    pool = exhausted or list(waits.values())
    return max(pool) if pool else None


def _error_detail(raw: bytes) -> tuple[str, Any]:
    """The provider's own error message and code from an error body, else the body's start."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:_SNIPPET].decode("utf-8", "replace").strip(), None
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        msg = str(err.get("message") or err.get("type") or err)
        return msg[:_SNIPPET], err.get("code") or err.get("type")
    if isinstance(err, str):
        return err[:_SNIPPET], None
    return raw[:_SNIPPET].decode("utf-8", "replace").strip(), None


def classify_status(
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    provider: str,
    key: str | None,
    key_env: str | None,
    now: float | None = None,
) -> ProviderError:
    """The one place an HTTP error status becomes permanent, transient or rate-limited."""
    detail, code = _error_detail(raw)
    wait = retry_after(headers, now, resets=status in (429, 529))
    msg = redact(f"{provider} HTTP {status}: {detail}", key)
    if status in (401, 403):
        where = f"the key in ${key_env}" if key_env else "the request (no api_key_env set)"
        text = f"{provider} HTTP {status}: {where} was rejected; check the key and api_key_env"
        return ProviderError(FailureKind.PERMANENT, text, status=status, auth=True)
    if status == 429 and code == "insufficient_quota":
        # Out of credit, not out of rate: waiting cannot help.
        return ProviderError(FailureKind.PERMANENT, msg, status=status)
    if status in (429, 529):  # 529: Anthropic overloaded
        return ProviderError(FailureKind.RATE_LIMITED, msg, status=status, retry_after=wait)
    if status in (408, 409) or status >= 500 or status < 400:
        return ProviderError(FailureKind.TRANSIENT, msg, status=status, retry_after=wait)
    return ProviderError(FailureKind.PERMANENT, msg, status=status)


def merge_extra(body: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`extra_body` over `body`: nested dicts merge one level, a None value removes the key."""
    for name, value in extra.items():
        if value is None:
            body.pop(name, None)
        elif isinstance(value, dict) and isinstance(body.get(name), dict):
            body[name] = {**body[name], **value}
        else:
            body[name] = value
    return body


def _text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def usage_of(raw: Any) -> dict[str, int]:
    """Token counts under our names (prompt, completion, reasoning); missing ones left out."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, int] = {}
    for ours, theirs in (
        ("prompt_tokens", ("prompt_tokens", "input_tokens")),
        ("completion_tokens", ("completion_tokens", "output_tokens")),
    ):
        for name in theirs:
            if isinstance(raw.get(name), int):
                out[ours] = raw[name]
                break
    details = raw.get("completion_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out["reasoning_tokens"] = details["reasoning_tokens"]
    return out


class OpenAICompatProvider:
    """OpenAI Chat Completions over aiohttp; also vLLM, Ollama, llama.cpp, Together, DeepInfra."""

    __slots__ = ("cfg", "session", "url", "key_env", "_key", "clock")

    label = "openai-compatible"
    default_base_url = "https://api.openai.com/v1"
    path = "/chat/completions"

    def __init__(
        self, cfg: ModelConfig, session: aiohttp.ClientSession | None, api_key: str | None
    ) -> None:
        self.cfg = cfg
        self.session = session
        self.url = (cfg.base_url or self.default_base_url).rstrip("/") + self.path
        self.key_env = cfg.api_key_env
        self._key = api_key or None  # never logged, never in a message (see `redact`)
        self.clock: Callable[[], float] = time.time  # tests patch it to date Retry-After

    # -- building ---------------------------------------------------------------------------

    def build_request(self, messages: list[dict[str, str]], params: RequestParams) -> HttpRequest:
        """The exact request for one chat; pure, so `plan` and the contract tests can call it."""
        body = self._body([{"role": m["role"], "content": m["content"]} for m in messages], params)
        return HttpRequest(self.url, self._headers(), merge_extra(body, self.cfg.extra_body))

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return headers

    def _body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages}
        if self._completion_tokens(params):
            # o-series: max_tokens is refused and only the default temperature is accepted.
            body["max_completion_tokens"] = params.max_tokens
        else:
            body["max_tokens"] = params.max_tokens
            if params.temperature is not None:
                body["temperature"] = params.temperature
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def _completion_tokens(self, params: RequestParams) -> bool:
        """Whether this request takes `max_completion_tokens` (OpenAI's reasoning models)."""
        return False

    # -- sending ----------------------------------------------------------------------------

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: RequestParams,
        *,
        request: HttpRequest | None = None,
    ) -> Answer:
        """Send one chat and return its answer; every failure is a classified ProviderError.

        `request` is `build_request(messages, params)` when the caller has it already (the
        scheduler builds it once per job, for the log and for every attempt)."""
        req = request if request is not None else self.build_request(messages, params)
        if self.session is None:
            # No shared session (a one-off call): open one; the scheduler always passes one.
            async with client_session() as session:
                status, headers, raw = await self._post(session, req)
        else:
            status, headers, raw = await self._post(self.session, req)
        return self.parse(status, headers, raw)

    async def _post(
        self, session: aiohttp.ClientSession, req: HttpRequest
    ) -> tuple[int, Mapping[str, str], bytes]:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.cfg.timeout_connect, sock_read=self.cfg.timeout_read
        )
        try:
            async with session.post(
                req.url, data=orjson.dumps(req.body), headers=req.headers, timeout=timeout
            ) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:
            limits = f"connect {self.cfg.timeout_connect:g}s, read {self.cfg.timeout_read:g}s"
            raise self._transient(f"timed out ({type(exc).__name__}; {limits})") from None
        except _BAD_URL as exc:
            # A malformed base_url fails the same way every time: no retry can help.
            text = redact(f"{self.label}: invalid URL {exc}; fix base_url", self._key)
            raise ProviderError(FailureKind.PERMANENT, text) from None
        except aiohttp.ClientError as exc:
            # `from None`: aiohttp errors may carry request_info, whose headers hold the key.
            raise self._transient(f"{type(exc).__name__}: {exc}") from None

    def _transient(self, what: str) -> ProviderError:
        return ProviderError(
            FailureKind.TRANSIENT, redact(f"{self.label} {self.url}: {what}", self._key)
        )

    # -- parsing ----------------------------------------------------------------------------

    def parse(self, status: int, headers: Mapping[str, str], raw: bytes) -> Answer:
        """One HTTP response as an Answer, or the ProviderError it amounts to."""
        if not 200 <= status < 300:
            raise self._classify(status, headers, raw)
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._transient(f"invalid JSON in a {status} answer: {raw[:80]!r}") from None
        if not isinstance(payload, dict):
            raise self._transient(f"expected a JSON object, got {type(payload).__name__}")
        return self._answer(payload, headers)

    def _classify(self, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
        return classify_status(
            status,
            headers,
            raw,
            provider=self.label,
            key=self._key,
            key_env=self.key_env,
            now=self.clock(),
        )

    def _answer(self, payload: dict[str, Any], headers: Mapping[str, str]) -> Answer:
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            err = payload.get("error")
            if isinstance(err, dict) and isinstance(err.get("code"), int):
                # OpenRouter reports upstream failures inside a 200 body with an HTTP code.
                raise self._classify(err["code"], headers, orjson.dumps(payload))
            raise self._transient("the answer has no choices")
        choice = choices[0]
        finish = choice.get("finish_reason")
        if finish == "error" or isinstance(choice.get("error"), dict):
            # OpenRouter: the upstream model failed after the response had begun.
            raise self._transient(f"the upstream model failed: {choice.get('error')}")
        if finish == "content_filter":
            raise ProviderError(
                FailureKind.PERMANENT, f"{self.label}: the content filter stopped the answer"
            )
        message = choice.get("message")
        text, reasoning = self._split(message if isinstance(message, dict) else {})
        return Answer(text, reasoning, finish, usage_of(payload.get("usage")))

    def _split(self, message: dict[str, Any]) -> tuple[str, str | None]:
        """Answer text apart from reasoning: separate fields first, then `<think>` in content."""
        content = _text_of(message.get("content"))
        if not content.strip() and isinstance(message.get("refusal"), str):
            content = message["refusal"]  # kept as the answer so the parser marks it a refusal
        text, inline = split_reasoning(content)
        field = message.get("reasoning_content") or message.get("reasoning")
        parts = [p for p in (field if isinstance(field, str) else None, inline) if p]
        return text, "\n".join(parts) or None


Provider = OpenAICompatProvider  # the interface every provider implements (see module doc)
