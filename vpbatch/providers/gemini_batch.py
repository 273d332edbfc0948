"""Gemini Batch Mode: requests inline in `models/{model}:batchGenerateContent` (each keyed by
its job id in `metadata.key`), the batch operation polled at `batches/{id}`, the answers read
inline from its output (`inlinedResponses`). Half the online price."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from vpbatch.providers.batchapi import (
    LIST_PAGE,
    MAX_PAGES,
    BatchAPI,
    BatchCallError,
    BatchState,
    LineResult,
)
from vpbatch.providers.http import HttpProvider
from vpbatch.transport.records import FailureKind
from vpbatch.transport.retry import RetryPolicy

__all__ = ["GeminiBatchAPI", "GRPC_HTTP"]

# The HTTP status of each google.rpc code an inlined result's error carries, so the online
# classification (permanent / transient / rate-limited) applies unchanged.
GRPC_HTTP = {1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409,
             11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}
_ENDED = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")  # after BATCH_STATE_ / JOB_STATE_
_JSON = {"Content-Type": "application/json"}


class GeminiBatchAPI(BatchAPI):
    """The Batch Mode of generativelanguage.googleapis.com, inline requests (20 MB a batch)."""

    __slots__ = ("model",)

    name = "gemini batch"
    max_requests = 50_000
    max_bytes = 19 * 1024 * 1024  # inline requests: at most 20 MB, the envelope included

    def __init__(self, provider: HttpProvider, policy: RetryPolicy) -> None:
        super().__init__(provider, policy)
        self.model = provider.cfg.model.removeprefix("models/")

    def line(self, job_id: str, body: dict[str, Any]) -> bytes:
        return orjson.dumps({"request": body, "metadata": {"key": job_id}})

    async def prepare(self, lines: list[bytes]) -> dict[str, Any]:
        # Nothing to upload; the display name is ours, so a lost create is found by it.
        return {"display_name": f"vpbatch-{uuid.uuid4().hex}", "requests": len(lines)}

    async def create(self, lines: list[bytes], extra: dict[str, Any], known: set[str]) -> str:
        head = orjson.dumps({"displayName": extra["display_name"]})[:-1]
        payload = (head + b',"inputConfig":{"requests":{"requests":['
                   + b",".join(lines) + b"]}}")
        url = f"{self.base}/models/{self.model}:batchGenerateContent"

        async def send() -> str:
            doc = await self.calls.call_json("POST", url, data=b'{"batch":' + payload + b"}}",
                                             headers=_JSON, retries=False)
            if not str(doc.get("name") or "").startswith("batches/"):
                raise BatchCallError(f"{self.name}: the create answered no batch name "
                                     f"({str(doc)[:120]})", kind=FailureKind.PERMANENT)
            return str(doc["name"])

        return await self.calls.create_once(send, lambda: self.recover(extra, known))

    async def recover(self, extra: dict[str, Any], known: set[str]) -> str | None:
        """The batch created under this intent's display name, if Google has one."""
        want = extra.get("display_name")
        if not want:
            return None
        token = ""
        for _ in range(MAX_PAGES):
            doc = await self.calls.call_json(
                "GET", f"{self.base}/batches?pageSize={LIST_PAGE}{token}")
            for op in doc.get("operations") or doc.get("batches") or []:
                batch = _batch(op) if isinstance(op, dict) else {}
                name = str(op.get("name") or "") if isinstance(op, dict) else ""
                if batch.get("displayName") == want and name and name not in known:
                    return name
            if not doc.get("nextPageToken"):
                return None
            token = f"&pageToken={doc['nextPageToken']}"
        return None

    async def poll(self, batch_id: str) -> BatchState:
        doc = await self.calls.call_json("GET", f"{self.base}/{batch_id}")
        state = str(_batch(doc).get("state") or "")
        ended = state.rsplit("_", 1)[-1]
        done = ended in _ENDED or doc.get("done") is True
        failed = None
        if done and ended != "SUCCEEDED":
            err: dict[str, Any] = doc["error"] if isinstance(doc.get("error"), dict) else {}
            why = str(err.get("message") or "")[:300]
            failed = f"batch {batch_id} {state or 'ended'}" + (f": {why}" if why else "")
        return BatchState(batch_id, state, done, failed)

    async def results(self, state: BatchState) -> list[LineResult]:
        doc = await self.calls.call_json("GET", f"{self.base}/{state.batch_id}")
        output = _batch(doc).get("output") or doc.get("response") or {}
        if isinstance(output, dict) and output.get("responsesFile") and not _inlined(output):
            raise BatchCallError(
                f"{self.name}: batch {state.batch_id} put its answers in a file "
                f"({output['responsesFile']}), which vpbatch does not download; lower "
                "batch_size so the answers come inline", kind=FailureKind.PERMANENT)
        return [r for r in map(_line_result, _inlined(output)) if r is not None]


def _batch(doc: dict[str, Any]) -> dict[str, Any]:
    """The GenerateContentBatch of an operation (its metadata), or the doc if it is one."""
    meta = doc.get("metadata")
    return meta if isinstance(meta, dict) else doc


def _inlined(output: Any) -> list[Any]:
    inner = output.get("inlinedResponses") if isinstance(output, dict) else None
    rows = inner.get("inlinedResponses") if isinstance(inner, dict) else inner
    return rows if isinstance(rows, list) else []


def _line_result(row: Any) -> LineResult | None:
    """One inlined response: its answer as a 200, or its google.rpc.Status as that HTTP error."""
    if not isinstance(row, dict):
        return None
    meta = row.get("metadata")
    jid = meta.get("key") if isinstance(meta, dict) else None
    if not isinstance(jid, str):
        return None  # unmatched: the runner re-queues what its batch did not answer
    if isinstance(row.get("response"), dict):
        return LineResult(jid, 200, orjson.dumps(row["response"]))
    err: dict[str, Any] = row["error"] if isinstance(row.get("error"), dict) else {}
    code = err.get("code")
    status = GRPC_HTTP.get(code, 500) if isinstance(code, int) else 500
    return LineResult(jid, status, orjson.dumps({"error": {**err, "code": status}}))
