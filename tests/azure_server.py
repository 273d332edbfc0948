"""An Azure-OpenAI-shaped server on 127.0.0.1 for the azure provider's tests.

It checks what Azure checks (the `api-key` header or a Bearer token, the deployment in the
path or the body, api-version on the dated paths) and answers with Azure's bodies: a chat
completion, 401, 404 DeploymentNotFound, 400 content_filter, 429 with retry-after(-ms), and
the Global Batch API (files, batches) under /openai and /openai/v1.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from loopback import serve

__all__ = ["AzureServer", "azure_server", "KEY", "TOKEN", "NO_ROLE", "VERSION", "FILTERED",
           "ANSWER"]

KEY = "azkey-0123456789abcdefSECRET"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.entra-SECRET"
NO_ROLE = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.norole-SECRET"  # valid, but lacks the role
VERSION = "2024-10-21"
FILTERED = "FILTER-ME"  # a prompt holding this is refused by the content filter
ANSWER = "Very much like me"

_NOT_FOUND = {"error": {"code": "DeploymentNotFound", "message": "The API deployment for this "
                        "resource does not exist. If you created the deployment within the last "
                        "5 minutes, please wait a moment and try again."}}
_DENIED = {"error": {"code": "401", "message": "Access denied due to invalid subscription key or "
                     "wrong API endpoint. Make sure to provide a valid key for an active "
                     "subscription and use a correct regional API endpoint for your resource."}}
_FILTER = {"error": {
    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content "
               "management policy. Please modify your prompt and retry.",
    "type": None, "param": "prompt", "code": "content_filter", "status": 400,
    "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
        "hate": {"filtered": False, "severity": "safe"},
        "jailbreak": {"filtered": False, "detected": False},
        "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": True, "severity": "medium"}}}}}


@dataclass
class AzureServer:
    """What the server was sent, and how it behaves (set these before sending)."""

    url: str = ""  # the resource root: https://RESOURCE.openai.azure.com's stand-in
    deployments: set[str] = field(default_factory=lambda: {"gpt-4o-prod", "gpt-4o-batch"})
    throttle: int = 0  # the next N chats answer 429 with retry-after-ms 1500
    seen: list[dict[str, Any]] = field(default_factory=list)  # every request: path, query, ...
    files: dict[str, bytes] = field(default_factory=dict)
    processing: int = 2  # an upload stays pending for this many status asks
    pending: dict[str, int] = field(default_factory=dict)
    reject_uploads: bool = False  # uploads end in status "error" (Azure's validation)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def chats(self) -> list[dict[str, Any]]:
        return [r for r in self.seen if r["path"].endswith("/chat/completions")]


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(doc), status=status, headers=headers,
                        content_type="application/json")


def _completion(deployment: str) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": ANSWER},
                         "content_filter_results": {}}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44},
            "system_fingerprint": deployment}


class _App:
    """The routes; `state` records and configures them."""

    def __init__(self, state: AzureServer) -> None:
        self.state = state
        self.ids = itertools.count(1)

    def auth(self, request: web.Request, v1: bool) -> web.Response | None:
        """None when the request may pass: the key, a bearer key (v1), or the token."""
        bearer = request.headers.get("Authorization", "")
        if request.headers.get("api-key") == KEY or bearer == f"Bearer {TOKEN}":
            return None
        if v1 and bearer == f"Bearer {KEY}":
            return None
        if bearer == f"Bearer {NO_ROLE}":
            return _json({"error": {"code": "PermissionDenied", "message": "The principal "
                                    "lacks the required data action Microsoft.Cognitive"
                                    "Services/accounts/OpenAI/deployments/chat/completions/"
                                    "action to perform this operation."}}, 403)
        return _json(_DENIED, 401)

    def version(self, request: web.Request, v1: bool) -> web.Response | None:
        if v1:
            return None if "api-version" not in request.query else _json(
                {"error": {"code": "BadRequest", "message": "api-version is not allowed"}}, 400)
        if request.query.get("api-version") != VERSION:
            return _json({"error": {"code": "404", "message": "Resource not found"}}, 404)
        return None

    async def record(self, request: web.Request) -> bytes:
        raw = await request.read()
        self.state.seen.append({"method": request.method, "path": request.path,
                                "query": dict(request.query), "headers": dict(request.headers),
                                "body": raw})
        return raw

    async def chat(self, request: web.Request) -> web.Response:
        v1 = "/v1/" in request.path
        raw = await self.record(request)
        refused = self.gate(request, v1)
        if refused is not None:
            return refused
        body = orjson.loads(raw)
        deployment = body.get("model") if v1 else request.match_info["deployment"]
        return self.answer(deployment, body)

    def answer(self, deployment: str, body: dict[str, Any]) -> web.Response:
        if deployment not in self.state.deployments:
            return _json(_NOT_FOUND, 404)
        if self.state.throttle > 0:
            self.state.throttle -= 1
            return _json({"error": {"code": "429", "message": "Requests to the ChatCompletions_"
                                    "Create Operation have exceeded the rate limit."}}, 429,
                         {"retry-after-ms": "1500", "retry-after": "2"})
        if FILTERED in orjson.dumps(body.get("messages")).decode():
            return _json(_FILTER, 400)
        return _json(_completion(deployment))

    # -- the Global Batch API ------------------------------------------------------------

    def gate(self, request: web.Request, v1: bool | None = None) -> web.Response | None:
        """The auth refusal, else the api-version one, else None. Not `a or b`: a Response
        is a mapping whose truth is its length on older aiohttp (3.11: empty, so falsy)."""
        if v1 is None:
            v1 = request.path.startswith("/openai/v1/")
        refused = self.auth(request, v1)
        return refused if refused is not None else self.version(request, v1)

    async def upload(self, request: web.Request) -> web.Response:
        self.state.seen.append({"method": "POST", "path": request.path,
                                "query": dict(request.query), "headers": dict(request.headers),
                                "body": b""})
        if (refused := self.gate(request)) is not None:
            return refused
        form = await request.post()
        upload = form["file"]
        assert form["purpose"] == "batch" and not isinstance(upload, str)
        file_id = f"file-{next(self.ids)}"
        self.state.files[file_id] = upload.file.read()
        self.state.pending[file_id] = self.state.processing
        return _json({"id": file_id, "object": "file", "purpose": "batch", "status": "pending"})

    async def get_file(self, request: web.Request) -> web.Response:
        """A file's status: pending for `processing` asks after its upload, then processed."""
        await self.record(request)
        if (refused := self.gate(request)) is not None:
            return refused
        file_id = request.match_info["file"]
        left = self.state.pending.get(file_id, 0)
        self.state.pending[file_id] = max(0, left - 1)
        if self.state.reject_uploads:
            return _json({"id": file_id, "object": "file", "purpose": "batch",
                          "status": "error", "status_details": "Line 1: invalid model"})
        return _json({"id": file_id, "object": "file", "purpose": "batch",
                      "status": "pending" if left else "processed", "status_details": None})

    async def create(self, request: web.Request) -> web.Response:
        raw = await self.record(request)
        if (refused := self.gate(request)) is not None:
            return refused
        doc = orjson.loads(raw)
        if self.state.pending.get(doc["input_file_id"]):
            return _json({"error": {"code": "invalidPayload", "message": "The input file is "
                                    "not processed yet."}}, 400)
        batch_id = f"batch_{next(self.ids)}"
        out = [self.line(orjson.loads(line))
               for line in self.state.files[doc["input_file_id"]].splitlines() if line.strip()]
        self.state.files[f"out-{batch_id}"] = b"\n".join(out) + b"\n"
        self.state.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": doc["endpoint"],
            "input_file_id": doc["input_file_id"], "completion_window": "24h",
            "status": "completed", "output_file_id": f"out-{batch_id}", "error_file_id": None,
            "created_at": int(time.time()), "request_counts": {"total": len(out)}}
        return _json({**self.state.batches[batch_id], "status": "validating"})

    def line(self, row: dict[str, Any]) -> bytes:
        """One batch line answered: Azure routes by the body's model (the deployment)."""
        assert row["url"] == "/chat/completions" and row["method"] == "POST"
        resp = self.answer(row["body"]["model"], row["body"])
        assert isinstance(resp.body, bytes)
        return orjson.dumps({"custom_id": row["custom_id"], "response": {
            "status_code": resp.status, "request_id": "r", "body": orjson.loads(resp.body)},
            "error": None})

    async def get_batch(self, request: web.Request) -> web.Response:
        await self.record(request)
        if (refused := self.gate(request)) is not None:
            return refused
        return _json(self.state.batches[request.match_info["batch"]])

    async def list_batches(self, request: web.Request) -> web.Response:
        await self.record(request)
        if (refused := self.gate(request)) is not None:
            return refused
        return _json({"object": "list", "data": list(self.state.batches.values())[::-1],
                      "has_more": False})

    async def content(self, request: web.Request) -> web.Response:
        await self.record(request)
        if (refused := self.gate(request)) is not None:
            return refused
        return web.Response(body=self.state.files[request.match_info["file"]],
                            content_type="application/octet-stream")


def _routes(app: _App) -> list[web.RouteDef]:
    routes = [web.post("/openai/deployments/{deployment}/chat/completions", app.chat),
              web.post("/openai/v1/chat/completions", app.chat)]
    for root in ("/openai", "/openai/v1"):
        routes += [web.post(f"{root}/files", app.upload),
                   web.post(f"{root}/batches", app.create),
                   web.get(f"{root}/batches", app.list_batches),
                   web.get(f"{root}/batches/{{batch}}", app.get_batch),
                   web.get(f"{root}/files/{{file}}", app.get_file),
                   web.get(f"{root}/files/{{file}}/content", app.content)]
    return routes


@contextlib.asynccontextmanager
async def azure_server() -> AsyncIterator[AzureServer]:
    """An Azure-shaped server on a free port of 127.0.0.1, for one test."""
    state = AzureServer()
    web_app = web.Application()
    web_app.add_routes(_routes(_App(state)))
    async with serve(web_app) as root:
        state.url = root
        yield state
