"""The simulator in Gemini's shape: `POST /v1beta/models/{model}:generateContent`.

The respondent answers as it does on /v1/chat/completions; the request and the answer are
Google's (`contents`, `systemInstruction`, `generationConfig`; `candidates`,
`usageMetadata`). A wrong `x-goog-api-key` gets Google's 400 API_KEY_INVALID. No faults and
no rate limit here: those stay on the OpenAI route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from vpbatch.sim.formats import requested_choice
from vpbatch.transport.records import Answer, RequestParams

if TYPE_CHECKING:
    from vpbatch.sim.server import ServerStats

__all__ = ["PATH", "handler"]

PATH = "/v1beta/models/{call}"
_JSON = "application/json"
_STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
           500: "INTERNAL", 503: "UNAVAILABLE"}


Ask = Callable[[str, list[dict[str, str]], RequestParams],
              Awaitable["Answer | tuple[int, str, str]"]]


def handler(
    ask: Ask, stats: ServerStats, require_key: str | None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route's handler over the simulator's `ask` (its respondents) and its stats."""

    async def generate(request: web.Request) -> web.Response:
        stats.requests += 1
        model, _, method = request.match_info["call"].partition(":")
        if require_key is not None and request.headers.get("x-goog-api-key") != require_key:
            stats.unauthorized += 1
            return _error(400, "API key not valid. Please pass a valid API key.",
                          reason="API_KEY_INVALID")
        if method != "generateContent":
            return _error(404, f"method {method!r} is not simulated; use generateContent")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        asked = _request(body) if isinstance(body, dict) else "the body is not a JSON object"
        if isinstance(asked, str):
            return _error(400, asked)
        got = await ask(model, *asked)
        if isinstance(got, tuple):
            return _error(got[0], got[1])
        return web.Response(body=orjson.dumps(_doc(model, got)), content_type=_JSON)

    return generate


def _request(body: dict[str, Any]) -> tuple[list[dict[str, str]], RequestParams] | str:
    """The chat and the respondent's parameters of a generateContent body, or what is wrong."""
    choice = requested_choice("gemini", body)
    if isinstance(choice, str):
        return choice
    messages = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        messages.append({"role": "system", "content": _text(system)})
    for turn in body.get("contents") or []:
        if not isinstance(turn, dict):
            return "contents must be a list of Content objects"
        role = "assistant" if turn.get("role") == "model" else "user"
        messages.append({"role": role, "content": _text(turn)})
    gen = body.get("generationConfig") or {}
    return messages, RequestParams(temperature=gen.get("temperature"),
                                   max_tokens=int(gen.get("maxOutputTokens") or 64),
                                   seed=gen.get("seed"), choice=choice)


def _text(content: dict[str, Any]) -> str:
    parts = content.get("parts")
    return "".join(str(p.get("text") or "") for p in parts if isinstance(p, dict)) \
        if isinstance(parts, list) else ""


def _doc(model: str, ans: Answer) -> dict[str, Any]:
    parts = [{"text": ans.reasoning, "thought": True}] if ans.reasoning else []
    usage = {"promptTokenCount": ans.usage.get("prompt_tokens", 0),
             "candidatesTokenCount": ans.usage.get("completion_tokens", 0)}
    if "reasoning_tokens" in ans.usage:
        usage["thoughtsTokenCount"] = ans.usage["reasoning_tokens"]
        usage["candidatesTokenCount"] -= ans.usage["reasoning_tokens"]
    return {"candidates": [{"index": 0, "content": {"role": "model",
                                                    "parts": [*parts, {"text": ans.text}]},
                            "finishReason": "MAX_TOKENS" if ans.finish_reason == "length"
                            else "STOP"}],
            "usageMetadata": usage, "modelVersion": model}


def _error(status: int, message: str, *, reason: str | None = None) -> web.Response:
    err: dict[str, Any] = {"code": status, "message": message,
                           "status": _STATUS.get(status, "UNKNOWN")}
    if reason:
        err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                           "reason": reason, "domain": "googleapis.com"}]
    return web.Response(status=status, body=orjson.dumps({"error": err}), content_type=_JSON)
