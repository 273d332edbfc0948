"""Anthropic Message Batches: POST the requests inline, poll `processing_status` until
"ended", then stream the JSONL at `results_url` (succeeded / errored / canceled / expired)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from vpbatch.providers.batchapi import (
    LIST_PAGE,
    MAX_PAGES,
    SKEW_S,
    BatchAPI,
    BatchCallError,
    BatchState,
    LineResult,
)
from vpbatch.transport.records import FailureKind

__all__ = ["AnthropicBatchAPI", "ERROR_STATUS"]


# An errored result names an error type, not an HTTP status: map it back so the online
# path's classification (permanent / transient / rate-limited) applies unchanged.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class AnthropicBatchAPI(BatchAPI):
    """The Message Batches API of api.anthropic.com (custom_id: at most 64 of [A-Za-z0-9_-])."""

    __slots__ = ()

    name = "anthropic batch"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def line(self, job_id: str, body: dict[str, Any]) -> bytes:
        return orjson.dumps({"custom_id": job_id, "params": body})

    async def prepare(self, lines: list[bytes]) -> dict[str, Any]:
        # Nothing to upload. A batch has no client-chosen name, so a lost create is found
        # again by its size and its creation time (after this moment, minus clock skew).
        return {"requests": len(lines), "since": time.time() - SKEW_S}

    async def create(self, lines: list[bytes], extra: dict[str, Any], known: set[str]) -> str:
        payload = b'{"requests":[' + b",".join(lines) + b"]}"

        async def send() -> str:
            doc = await self.calls.call_json("POST", f"{self.base}/messages/batches", data=payload,
                                       headers={"Content-Type": "application/json"},
                                       retries=False)
            if not doc.get("id"):
                raise BatchCallError(f"{self.name}: the create answered no batch id",
                                     kind=FailureKind.PERMANENT)
            return str(doc["id"])

        return await self.calls.create_once(send, lambda: self.recover(extra, known))

    async def recover(self, extra: dict[str, Any], known: set[str]) -> str | None:
        """The oldest unjournaled batch of the same size created since the intent, if any."""
        n, since = extra.get("requests"), extra.get("since")
        if not isinstance(n, int) or not isinstance(since, int | float):
            return None
        found: list[tuple[float, str]] = []
        after = ""
        for _ in range(MAX_PAGES):  # newest first: stop at batches older than the intent
            doc = await self.calls.call_json(
                "GET", f"{self.base}/messages/batches?limit={LIST_PAGE}{after}")
            page = [b for b in doc.get("data") or [] if isinstance(b, dict)]
            for b in page:
                created = _unix(b.get("created_at"))
                if str(b.get("id")) in known or created is None or created < since:
                    continue
                counts = _dict(b.get("request_counts"))
                if sum(v for v in counts.values() if isinstance(v, int)) == n:
                    found.append((created, str(b["id"])))
            oldest = _unix(page[-1].get("created_at")) if page else None
            if not doc.get("has_more") or oldest is None or oldest < since:
                break
            after = f"&after_id={page[-1].get('id')}"
        return min(found)[1] if found else None

    async def poll(self, batch_id: str) -> BatchState:
        doc = await self.calls.call_json("GET", f"{self.base}/messages/batches/{batch_id}")
        status = str(doc.get("processing_status") or "")
        files = {"results_url": str(doc["results_url"])} if doc.get("results_url") else {}
        done = status == "ended"
        failed = f"batch {batch_id} ended without results" if done and not files else None
        return BatchState(batch_id, status, done, failed, files)

    async def results(self, state: BatchState) -> list[LineResult]:
        url = state.files.get("results_url")
        if not url:
            return []
        if urlsplit(url).netloc != urlsplit(self.base).netloc:
            # The download carries the key: never to a host other than the API's own.
            raise BatchCallError(f"{self.name}: results_url {url} is not on {self.base}; "
                                 "check base_url", kind=FailureKind.PERMANENT)
        raw = await self.calls.call("GET", url)
        out = []
        for line in raw.splitlines():
            if line.strip():
                row = orjson.loads(line)
                if isinstance(row, dict) and isinstance(row.get("custom_id"), str):
                    out.append(_line_result(row))
        return out


def _line_result(row: dict[str, Any]) -> LineResult:
    jid = row["custom_id"]
    result = _dict(row.get("result"))
    kind = result.get("type")
    if kind == "succeeded":
        return LineResult(jid, 200, orjson.dumps(result.get("message")))
    if kind == "errored":
        envelope = _dict(result.get("error"))
        # Current shape {"type": "error", "error": {"type", "message"}}; older: the inner one.
        inner = _dict(envelope.get("error")) or envelope
        status = ERROR_STATUS.get(str(inner.get("type")), 500)
        return LineResult(jid, status, orjson.dumps({"type": "error", "error": inner}))
    # canceled / expired: never processed, so sent again in the next batch.
    return LineResult(jid, None, b"", f"{kind or 'unknown'}: the request was not processed")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unix(value: Any) -> float | None:
    """A creation time as unix seconds: RFC 3339 (their format) or a number."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
