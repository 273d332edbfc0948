"""The one place a failure becomes permanent, transient or rate-limited, its message safe to show.

`classify_status` turns an HTTP error status into a `ProviderError`; `Failures` names one
model's failures (its API label, its key masked out of every message, the variable the key came
from). The online providers, the batch APIs and the data fetcher all classify through here.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import orjson

from vpbatch.transport.records import FailureKind, ProviderError, Quota

__all__ = ["Failures", "classify_status", "retry_after", "quota", "redact"]

_SNIPPET = 300  # characters of an error body kept in a message: enough to name the cause
_HEAD = 120  # bytes of a body that is not an answer shown in its message: enough to know it

# Key-shaped tokens are masked even when they are not our key: an error body may echo a
# header we never saw (a proxy's), and a message is shown and logged verbatim.
_TOKEN = r"""[^\s'",]+"""  # a header value up to its closing quote or separator
_KEYLIKE = re.compile(
    r"(?i)\b(?:sk|rk|pk)-[A-Za-z0-9_\-]{6,}|\bBearer\s+"
    + _TOKEN
    + r"""|(x-api-key|api[_-]?key)(["':=\s]+)"""
    + _TOKEN
)
# A FastAPI/pydantic validation error of the request body ("'loc': ('body', ...").
_REJECTED_BODY = re.compile(r"validation error.*'loc': \('body'", re.DOTALL)
# An authentication failure a gateway reports as a server error: LiteLLM 1.x answers a missing
# or wrong proxy key with HTTP 500 ("Authentication Error, No api key passed in.", auth_error).
_AUTH_IN_5XX = re.compile(
    r"(?i)authentication ?error|\bauth_error\b|no api key|invalid api[ _-]?key"
    r"|api[ _-]?key\b.{0,40}\b(?:missing|required|not (?:set|found|provided|passed))")
_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_GO_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


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


# (remaining, reset) header names per kind: OpenAI's and the gateways' (LiteLLM, Together,
# Groq), then Anthropic's.
_QUOTA_HEADERS = {
    kind: ((f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}"),
           (f"anthropic-ratelimit-{kind}-remaining", f"anthropic-ratelimit-{kind}-reset"))
    for kind in ("requests", "tokens")
}


def quota(headers: Mapping[str, str], now: float | None = None) -> Quota | None:
    """What a successful answer's headers say is left of the server's limits, or None."""
    now = time.time() if now is None else now
    lower = {k.lower(): v for k, v in headers.items()}
    found: dict[str, float | None] = {}
    for kind, names in _QUOTA_HEADERS.items():
        for remaining, reset in names:
            if remaining not in lower:
                continue
            try:
                left = float(lower[remaining])
            except ValueError:
                continue  # a value we cannot read tells us nothing
            found[kind] = max(0.0, left)
            when = lower.get(reset)
            found[f"{kind}_reset"] = _seconds(when, now) if when is not None else None
            break
    return Quota(**found) if found else None


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
    if status >= 500 and _AUTH_IN_5XX.search(raw[:_SNIPPET * 4].decode("utf-8", "replace")):
        # Re-sending cannot fix a key; LiteLLM's 500 cost 175 retries before this.
        where = f"the key in ${key_env}" if key_env else "the request, which carried no key"
        text = redact(f"{provider} HTTP {status}: {detail}", key) + (
            f" -- an authentication failure reported as a server error ({where}; "
            "LiteLLM answers so): set api_key_env to the variable holding the gateway's key "
            "and export it; if the key is the gateway's own for its upstream, fix it in the "
            "gateway's config")
        return ProviderError(FailureKind.PERMANENT, text, status=status, auth=True)
    if status >= 500 and _REJECTED_BODY.search(detail):
        # llama-cpp-python's server reports a request it cannot validate as a 500: the request
        # was refused, not the server broken, so re-sending it cannot help.
        if "response_format" in detail:
            msg += ' (llama-cpp-python\'s server: set choice_format = "json_object")'
        return ProviderError(FailureKind.PERMANENT, msg, status=status)
    if status in (408, 409) or status >= 500 or status < 400:
        return ProviderError(FailureKind.TRANSIENT, msg, status=status, retry_after=wait)
    return ProviderError(FailureKind.PERMANENT, msg, status=status)


class Failures:
    """How one model's failures are named: its API's label, its key masked, its key variable."""

    __slots__ = ("label", "key", "key_env", "clock", "secrets")

    def __init__(
        self, label: str, key: str | None = None, key_env: str | None = None,
        *, secrets: tuple[str, ...] = (),
    ) -> None:
        self.label = label
        self.key = key or None  # only ever used to mask it out of messages
        self.key_env = key_env  # named in an auth failure: the variable actually read
        self.secrets = tuple(s for s in secrets if s)  # header/query values from env: masked
        self.clock: Callable[[], float] = time.time  # tests patch it to date Retry-After

    def status(
        self, status: int, headers: Mapping[str, str], raw: bytes, *, where: str = ""
    ) -> ProviderError:
        """An HTTP error status (or one reported inside a 2xx body) as its ProviderError."""
        err = classify_status(status, headers, raw, provider=f"{self.label}{where}",
                              key=self.key, key_env=self.key_env, now=self.clock())
        if self.secrets:
            err.message = self.redact(err.message)
            err.args = (err.message,)
        return err

    def transient(
        self, what: str, *, timed_out: bool = False, unreachable: bool = False
    ) -> ProviderError:
        """A failure that may pass: a dropped connection, a timeout, a malformed answer."""
        return ProviderError(FailureKind.TRANSIENT, self.redact(f"{self.label}: {what}"),
                             timed_out=timed_out, unreachable=unreachable)

    def permanent(self, what: str) -> ProviderError:
        """A failure that re-sending cannot change: a refused answer, an unusable URL."""
        return ProviderError(FailureKind.PERMANENT, self.redact(f"{self.label}: {what}"))

    def not_an_answer(
        self, url: str, headers: Mapping[str, str], head: bytes, what: str
    ) -> ProviderError:
        """A 2xx that is not the API's answer (an HTML page, JSON of another API): permanent.

        The usual cause is a base_url that reaches some other page of the server; every
        request will get the same page, so it is named (URL, content type, first bytes).
        """
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        first = head[:_HEAD].decode("utf-8", "replace")
        if "event-stream" in (ctype or "") or head.lstrip()[:6] in (b"data: ", b"data:{",
                                                                      b"event:"):
            return self.permanent(
                f"{url} answered a stream of server-sent events (Content-Type: "
                f"{ctype or 'none'}; first bytes: {first!r}), not one chat completion: the "
                "server streams although vpbatch asks for one JSON answer. Add extra_body = "
                "{ stream = false } to the model; if the server streams only, turn on "
                "non-streaming answers in it (or in the gateway in front of it)")
        return self.permanent(
            f"{url} answered {what}, not a chat completion (Content-Type: {ctype or 'none'}; "
            f"first bytes: {first!r}); check base_url (a missing or doubled /v1?)")

    def redact(self, text: str) -> str:
        text = redact(text, self.key)
        for secret in self.secrets:
            text = redact(text, secret)
        return text
