"""OpenAI Batch: upload a JSONL file (purpose=batch), create a batch on /v1/chat/completions
with a 24h window, poll it, download the output and error files."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
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

__all__ = ["OpenAIBatchAPI", "ENDPOINT", "WINDOW"]

ENDPOINT = "/v1/chat/completions"
WINDOW = "24h"  # the only completion window OpenAI offers
_DONE = {"completed", "failed", "expired", "cancelled"}


class OpenAIBatchAPI(BatchAPI):
    """The Batch API of api.openai.com (and servers that copy it, such as the simulator)."""

    __slots__ = ()

    name = "openai batch"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024
    chat_path = ENDPOINT  # each line's "url" and the batch's "endpoint" (Azure: no /v1)

    def line(self, job_id: str, body: dict[str, Any]) -> bytes:
        return orjson.dumps({"custom_id": job_id, "method": "POST", "url": self.chat_path,
                             "body": body}) + b"\n"

    async def prepare(self, lines: list[bytes]) -> dict[str, Any]:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", b"".join(lines), filename="vpbatch.jsonl",
                       content_type="application/jsonl")
        # Uploading twice costs nothing, so the upload retries freely.
        up = await self.calls.call_json("POST", f"{self.base}/files", data=form)
        if not up.get("id"):
            raise BatchCallError(f"{self.name}: the upload answered no file id",
                                 kind=FailureKind.PERMANENT)
        return {"input_file_id": str(up["id"]), "since": time.time() - SKEW_S}

    async def create(self, lines: list[bytes], extra: dict[str, Any], known: set[str]) -> str:
        body = {"input_file_id": extra["input_file_id"], "endpoint": self.chat_path,
                "completion_window": WINDOW, "metadata": {"source": "vpbatch"}}

        async def send() -> str:
            doc = await self.calls.call_json("POST", f"{self.base}/batches", json=body,
                                       retries=False)
            return str(doc["id"])

        return await self.calls.create_once(send, lambda: self.recover(extra, known))

    async def recover(self, extra: dict[str, Any], known: set[str]) -> str | None:
        """A batch already created from this upload: the input file id names it exactly."""
        file_id, since = extra.get("input_file_id"), extra.get("since", 0.0)
        if not file_id:
            return None
        after = ""
        for _ in range(MAX_PAGES):  # newest first: stop at batches older than the upload
            doc = await self.calls.call_json(
                "GET", f"{self.base}/batches?limit={LIST_PAGE}{after}")
            page = [b for b in doc.get("data") or [] if isinstance(b, dict)]
            for b in page:
                if b.get("input_file_id") == file_id:
                    return str(b.get("id"))
            oldest = page[-1].get("created_at") if page else None
            if not doc.get("has_more") or not page or (
                    isinstance(oldest, int | float) and oldest < since):
                return None
            after = f"&after={page[-1].get('id')}"
        return None

    async def poll(self, batch_id: str) -> BatchState:
        doc = await self.calls.call_json("GET", f"{self.base}/batches/{batch_id}")
        status = str(doc.get("status") or "")
        files = {k: str(doc[k]) for k in ("output_file_id", "error_file_id") if doc.get(k)}
        failed = None
        if status in ("failed", "cancelled") or (status == "expired" and not files):
            errs = (doc.get("errors") or {}).get("data") or []
            why = "; ".join(str(e.get("message")) for e in errs if isinstance(e, dict))[:300]
            failed = f"batch {batch_id} {status}" + (f": {why}" if why else "")
        return BatchState(batch_id, status, status in _DONE, failed, files)

    async def results(self, state: BatchState) -> list[LineResult]:
        out: list[LineResult] = []
        for key in ("output_file_id", "error_file_id"):
            file_id = state.files.get(key)
            if file_id:
                raw = await self.calls.call("GET", f"{self.base}/files/{file_id}/content")
                out.extend(_line_result(row) for row in _jsonl(raw))
        return out


def _jsonl(raw: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in raw.splitlines():
        if line.strip():
            row = orjson.loads(line)
            if isinstance(row, dict) and isinstance(row.get("custom_id"), str):
                rows.append(row)
    return rows


def _line_result(row: dict[str, Any]) -> LineResult:
    """An output/error file line: {"custom_id", "response": {"status_code", "body"}, "error"}."""
    jid = row["custom_id"]
    resp = row.get("response")
    if isinstance(resp, dict) and isinstance(resp.get("status_code"), int):
        return LineResult(jid, resp["status_code"], orjson.dumps(resp.get("body")))
    err: dict[str, Any] = row["error"] if isinstance(row.get("error"), dict) else {}
    code = str(err.get("code") or "error")
    # batch_expired and the like: the request never ran, so it is sent again, not failed.
    return LineResult(jid, None, b"", f"{code}: {err.get('message') or 'no response'}")
