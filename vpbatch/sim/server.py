"""`vpbatch sim serve`: the simulated respondent behind an OpenAI-compatible HTTP API.

POST /v1/chat/completions answers like OpenAI; the `model` field picks the respondent
("sim", "sim:<profile>", "replay:<recorded model>"). A `response_format` asking for a choice
(`sim.formats`) gets the JSON object, as a schema-constrained server would send it. On top:
latency, an RPM limit of its own (a sliding 60 s window, or per calendar minute as LiteLLM
counts; with or without Retry-After; x-ratelimit-* headers optional), injected faults and an
optional key check. GET /stats reports counts.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.lowlevel
import anyio.to_thread
import orjson
from aiohttp import web

from vpbatch.benchmark.choice import CHOICE_PROPERTY
from vpbatch.benchmark.dims import PHRASES
from vpbatch.benchmark.layout import resolve_data_dir
from vpbatch.errors import ConfigError, VPBatchError
from vpbatch.sim import gemini
from vpbatch.sim.faults import ANSWER_FAULTS, REFUSAL_TEXT, FaultPlan, draw_fault, unit_hash
from vpbatch.sim.formats import forced_tool, requested_choice
from vpbatch.sim.replay import ReplayBook, replay_root
from vpbatch.sim.respondent import PROFILES, Respondent
from vpbatch.transport.records import Answer, ProviderError, RequestParams

__all__ = [
    "SimServerConfig",
    "ServerStats",
    "RunningServer",
    "make_app",
    "start_server",
    "LOOPBACK",
    "STATS_KEY",
    "RPM_WINDOWS",
]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
RPM_WINDOWS = ("sliding", "calendar")
_JSON = "application/json"


@dataclass(slots=True)
class SimServerConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rpm: float | None = None
    # "sliding": no 60 s span holds more than rpm; "calendar": each wall-clock minute (by
    # `wall_clock`) admits rpm, as LiteLLM's rpm and most gateways count.
    rpm_window: str = "sliding"
    rpm_retry_after: bool = True  # False: the RPM limit's 429s say nothing of when (LiteLLM)
    ratelimit_headers: bool = False  # x-ratelimit-limit/remaining/reset-requests on answers
    window_s: float = 60.0  # the RPM window's length (tests and demos shrink it)
    faults: FaultPlan = FaultPlan()
    seed: int = 0
    replay_dir: Path | None = None  # recorded outputs; None = <data>/lm_evaluation/outputs/final
    require_key: str | None = None  # 401 unless `Authorization: Bearer <key>`
    data: Path | None = None  # the dataset root; None = VPBATCH_DATA or the fetched cache
    settings: dict[str, Any] = field(default_factory=dict)  # sim settings for every model
    clock: Callable[[], float] = time.monotonic  # tests patch it to drive the RPM window
    wall_clock: Callable[[], float] = time.time  # the calendar window's (tests patch it too)
    batch_delay_s: float = 0.0  # a batch ends this long (by `clock`) after its creation
    batch_expire_after: int | None = None  # a batch answers this many requests; the rest expire
    batch_p_invalid: float = 0.0  # share of batch requests answered 400 (a permanent error)


@dataclass(slots=True)
class ServerStats:
    """What the server saw; `accepted` holds clock times of requests let through the RPM gate."""

    requests: int = 0
    ok: int = 0
    sent_429: int = 0  # every 429: the RPM limit's and injected ones
    rpm_rejected: int = 0
    unauthorized: int = 0
    errors: int = 0  # other 4xx/5xx answers (bad requests, replayed failures, injected 5xx)
    faults: dict[str, int] = field(default_factory=dict)  # injected, by kind
    per_key: dict[str, int] = field(default_factory=dict)  # sha256(body)[:32] -> times seen
    accepted: list[float] = field(default_factory=list)
    batches_created: int = 0  # batch creates (OpenAI and Anthropic): each one is paid for
    batch_requests: int = 0  # requests inside those batches
    batch_polls: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "sent_429": self.sent_429,
            "rpm_rejected": self.rpm_rejected,
            "unauthorized": self.unauthorized,
            "errors": self.errors,
            "faults": self.faults,
            "distinct_requests": len(self.per_key),
            "max_attempts_seen": max(self.per_key.values(), default=0),
            "cpu_seconds": time.process_time(),  # the server's own CPU, for benchmarks
            "batches_created": self.batches_created,
            "batch_requests": self.batch_requests,
            "batch_polls": self.batch_polls,
            "per_key": self.per_key,
            "accepted": self.accepted,
        }


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Any:
    body = {"error": {"message": message, "type": code, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type=_JSON,
                        headers=headers)


class _Sim:
    """The request handler's state: config, stats, RPM window and the respondents."""

    __slots__ = ("cfg", "stats", "window", "minute", "respondents", "lock")

    def __init__(self, cfg: SimServerConfig) -> None:
        if cfg.rpm_window not in RPM_WINDOWS:
            raise ConfigError(f"rpm_window {cfg.rpm_window!r} is unknown; use one of "
                              + ", ".join(RPM_WINDOWS))
        self.cfg = cfg
        self.stats = ServerStats()
        self.window: deque[float] = deque()
        self.minute = (-1, 0)  # the calendar window's (index, requests admitted in it)
        self.respondents: dict[str, Respondent] = {}
        self.lock = anyio.Lock()

    async def respondent(self, model: str) -> Respondent:
        got = self.respondents.get(model)
        if got is not None:
            return got
        async with self.lock:  # one build per model, off the event loop (it reads files)
            got = self.respondents.get(model)
            if got is None:
                got = await anyio.to_thread.run_sync(self._build, model)
                self.respondents[model] = got
            return got

    def _build(self, model: str) -> Respondent:
        settings = dict(self.cfg.settings)
        settings.setdefault("seed", self.cfg.seed)
        if self.cfg.replay_dir is not None:
            settings.setdefault("replay_dir", str(self.cfg.replay_dir))
        return Respondent.from_settings(settings, model=model, data=self.cfg.data)

    def _replayable(self) -> list[str]:
        """The recorded models this server can replay (none when the data has no outputs)."""
        try:
            root = self.cfg.replay_dir or replay_root(resolve_data_dir(self.cfg.data))
            return ReplayBook(root).models()
        except VPBatchError:
            return []

    def admit(self) -> float | None:
        """None when the RPM window has room (and the request is counted), else seconds to wait."""
        now, cfg = self.cfg.clock(), self.cfg
        if cfg.rpm is not None and cfg.rpm_window == "calendar":
            wall = cfg.wall_clock()
            index = math.floor(wall / cfg.window_s)
            count = self.minute[1] if self.minute[0] == index else 0
            if count >= cfg.rpm:
                return max(0.0, (index + 1) * cfg.window_s - wall)
            self.minute = (index, count + 1)
        elif cfg.rpm is not None:
            while self.window and self.window[0] <= now - cfg.window_s:
                self.window.popleft()
            if len(self.window) >= cfg.rpm:
                return max(0.0, self.window[0] + cfg.window_s - now)
            self.window.append(now)
        self.stats.accepted.append(now)
        return None

    def ratelimit_headers(self, wait: float | None = None) -> dict[str, str]:
        """x-ratelimit-* as OpenAI names them: the limit, what is left, when it resets."""
        cfg = self.cfg
        if not cfg.ratelimit_headers or cfg.rpm is None:
            return {}
        if cfg.rpm_window == "calendar":
            wall = cfg.wall_clock()
            index = math.floor(wall / cfg.window_s)
            used = self.minute[1] if self.minute[0] == index else 0
            reset = (index + 1) * cfg.window_s - wall
        else:
            now = cfg.clock()
            used = sum(1 for t in self.window if t > now - cfg.window_s)
            reset = self.window[0] + cfg.window_s - now if self.window else 0.0
        reset = max(0.0, wait if wait is not None else reset)
        return {"x-ratelimit-limit-requests": f"{cfg.rpm:g}",
                "x-ratelimit-remaining-requests": f"{max(0, int(cfg.rpm) - used)}",
                "x-ratelimit-reset-requests": f"{reset:.3f}s"}

    async def chat(self, request: web.Request) -> web.StreamResponse:
        st = self.stats
        st.requests += 1
        want = self.cfg.require_key
        if want is not None and request.headers.get("Authorization") != f"Bearer {want}":
            st.unauthorized += 1
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        raw = await request.read()
        key = hashlib.sha256(raw).hexdigest()[:32]
        attempt = st.per_key.get(key, 0)
        st.per_key[key] = attempt + 1
        parsed = _parse_body(raw)
        if isinstance(parsed, str):
            st.errors += 1
            return _error(400, parsed, "invalid_request_error")
        wait = self.admit()
        if wait is not None:
            st.sent_429 += 1
            st.rpm_rejected += 1
            said = {"Retry-After": str(math.ceil(wait))} if self.cfg.rpm_retry_after else {}
            if self.cfg.rpm_retry_after:
                said.update(self.ratelimit_headers(wait))
            return _error(429, f"Rate limit reached: {self.cfg.rpm:g} requests per minute.",
                          "rate_limit_exceeded", said)
        fault = draw_fault(self.cfg.faults, key, attempt, self.cfg.seed)
        if fault is not None:
            st.faults[fault] = st.faults.get(fault, 0) + 1
            early = None if fault in ANSWER_FAULTS else await self._fault(fault, request)
            if early is not None:
                return early
        await self._latency(key, attempt)
        answer = await self._answer(parsed, key, fault if fault in ANSWER_FAULTS else None)
        if answer.status == 200:
            answer.headers.update(self.ratelimit_headers())
        return answer

    async def _fault(self, fault: str, request: web.Request) -> web.StreamResponse | None:
        plan, st = self.cfg.faults, self.stats
        if fault == "429":
            st.sent_429 += 1
            return _error(429, "Rate limit reached (injected).", "rate_limit_exceeded",
                          {"Retry-After": f"{plan.retry_after_s:g}",
                           "retry-after-ms": f"{plan.retry_after_s * 1000:g}"})
        if fault in ("500", "503"):
            st.errors += 1
            return _error(int(fault), "The server had an error (injected).", "server_error")
        if fault == "drop":
            if request.transport is not None:
                request.transport.abort()  # a reset mid-request, as a flaky proxy would do
            raise web.HTTPInternalServerError()  # never reaches the (closed) socket
        if fault == "malformed":
            # A 200 whose JSON body stops half-way, as a truncated proxy response would.
            return web.Response(status=200, body=b'{"id": "chatcmpl-x", "choices": [{"mes',
                                content_type=_JSON)
        await anyio.sleep(plan.slow_s)  # "slow": answer normally, but late
        return None

    async def _latency(self, key: str, attempt: int) -> None:
        delay = self.cfg.latency_ms
        if self.cfg.jitter_ms:
            delay += self.cfg.jitter_ms * unit_hash("jitter", self.cfg.seed, key, attempt)
        if delay > 0:
            await anyio.sleep(delay / 1000.0)

    async def _answer(
        self, body: dict[str, Any], key: str, shape: str | None = None
    ) -> web.Response:
        params = _params("openai", body)
        if isinstance(params, str):
            self.stats.errors += 1
            return _error(400, params, "invalid_request_error")
        got = await self.ask(body["model"], body["messages"], params)
        if isinstance(got, tuple):
            return _error(*got)
        doc = _chat_doc(body["model"], key, got)
        if shape is not None:
            _misshape(doc, shape, params.max_tokens, self.cfg.faults.think_tokens)
        return web.Response(body=orjson.dumps(doc), content_type=_JSON)

    async def ask(
        self, model: str, messages: list[dict[str, str]], params: RequestParams
    ) -> Answer | tuple[int, str, str]:
        """The respondent's answer, or (status, message, code) for an error reply."""
        st = self.stats
        try:
            who = await self.respondent(model)
        except VPBatchError as exc:
            st.errors += 1
            return 404, str(exc), "model_not_found"
        try:
            ans = who.answer(messages, params)
        except ProviderError as exc:
            st.errors += 1
            status = exc.status or 500
            return status, exc.message, "server_error" if status >= 500 else "replay"
        st.ok += 1
        return ans

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats.to_json()), content_type=_JSON)

    async def models(self, request: web.Request) -> web.Response:
        names = ["sim", *(f"sim:{p}" for p in PROFILES)]
        names += [f"replay:{m}" for m in await anyio.to_thread.run_sync(self._replayable)]
        data = [{"id": n, "object": "model", "owned_by": "vpbatch"} for n in names]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                            content_type=_JSON)


def _params(kind: str, body: dict[str, Any]) -> RequestParams | str:
    """The respondent's parameters for a request, or what is wrong with its answer format."""
    choice = requested_choice(kind, body)
    if isinstance(choice, str):
        return choice
    return RequestParams(
        temperature=body.get("temperature"),
        max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 64),
        seed=body.get("seed"),
        choice=choice,
    )


def _chat_doc(model: str, key: str, ans: Answer) -> dict[str, Any]:
    """A chat.completion object for one answer."""
    message: dict[str, Any] = {"role": "assistant", "content": ans.text}
    if ans.reasoning:
        message["reasoning_content"] = ans.reasoning
    usage: dict[str, Any] = dict(ans.usage)
    reasoning_tokens = usage.pop("reasoning_tokens", None)
    usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    if reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return {
        "id": "chatcmpl-" + key[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": ans.finish_reason}],
        "usage": usage,
    }


_THOUGHT = "Let me weigh how much this person is like me, value by value. "


def _misshape(doc: dict[str, Any], shape: str, max_tokens: int, think_tokens: int) -> None:
    """Turn a chat.completion into an answer fault (faults.ANSWER_FAULTS), in place."""
    choice = doc["choices"][0]
    message, usage = choice["message"], doc["usage"]
    if shape == "digits":
        message["content"] = str(_rating_of(str(message["content"])))
    elif shape == "refusal":
        message["content"] = None
        message["refusal"] = REFUSAL_TEXT
    elif think_tokens and max_tokens > think_tokens:  # "length", with room left to answer
        message["reasoning_content"] = _THOUGHT * 4
        usage["completion_tokens"] += think_tokens
        usage["completion_tokens_details"] = {"reasoning_tokens": think_tokens}
    else:  # "length": the whole budget thought through, no answer
        message["content"] = None
        message["reasoning_content"] = _THOUGHT * 4
        choice["finish_reason"] = "length"
        usage["completion_tokens"] = max_tokens
        usage["completion_tokens_details"] = {"reasoning_tokens": max_tokens}
    usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage["completion_tokens"]


def _rating_of(text: str) -> int:
    """The 1..6 rating a respondent's answer names (a phrase, or a choice's JSON object)."""
    if text in PHRASES:
        return PHRASES[text]
    doc = _parse_json(text.encode())
    phrase = doc.get(CHOICE_PROPERTY) if doc else None
    return PHRASES.get(str(phrase), 3)


def _parse_body(raw: bytes) -> dict[str, Any] | str:
    """The request as a dict, or what is wrong with it (for a 400)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "the request body is not valid JSON"
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str)
        and isinstance(m.get("content"), str) for m in msgs
    ):
        return "messages must be a non-empty list of {role, content} objects with text content"
    return body


# -- provider batch APIs ------------------------------------------------------------------------

# Our error statuses as Anthropic error types (their errored results name a type, not a status).
_ANTHROPIC_ERROR = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                    529: "overloaded_error"}
_FAULT_STATUS = {"429": 429, "500": 500, "503": 503, "drop": 500, "malformed": 500}
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens"}


@dataclass(slots=True)
class _Batch:
    id: str
    kind: str  # "openai" | "anthropic"
    requests: list[tuple[str, dict[str, Any]]]  # (custom_id, body/params)
    created: float  # by the server's clock
    created_unix: int
    input_file_id: str | None = None
    results: list[dict[str, Any]] | None = None  # once processed
    expired: bool = False


class _Batches:
    """OpenAI Batch and Anthropic Message Batches over the same respondents as the chat path.

    A batch ends `batch_delay_s` after creation (by the server's clock, so tests can advance
    it); its requests are answered when a poll first finds it ended.
    """

    __slots__ = ("sim", "files", "batches", "lock")

    def __init__(self, sim: _Sim) -> None:
        self.sim = sim
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.lock = anyio.Lock()

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/v1/files", self.upload)
        r.add_get("/v1/files/{id}/content", self.file_content)
        r.add_post("/v1/batches", self.openai_create)
        r.add_get("/v1/batches", self.openai_list)
        r.add_get("/v1/batches/{id}", self.openai_get)
        r.add_post("/v1/messages/batches", self.anthropic_create)
        r.add_get("/v1/messages/batches", self.anthropic_list)
        r.add_get("/v1/messages/batches/{id}", self.anthropic_get)
        r.add_get("/v1/messages/batches/{id}/results", self.anthropic_results)

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{len(self.batches) + len(self.files) + 1:06d}" + hashlib.sha256(
            f"{prefix}{time.time_ns()}".encode()).hexdigest()[:12]

    def _denied(self, request: web.Request) -> web.Response | None:
        want = self.sim.cfg.require_key
        if want is None:
            return None
        got = request.headers.get("Authorization") or ""
        if got == f"Bearer {want}" or request.headers.get("x-api-key") == want:
            return None
        self.sim.stats.unauthorized += 1
        return _error(401, "Incorrect API key provided.", "invalid_api_key")

    # -- OpenAI -----------------------------------------------------------------------------

    async def upload(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        form = await request.post()
        upload = form.get("file")
        if form.get("purpose") != "batch" or not isinstance(upload, web.FileField):
            return _error(400, "expected multipart fields purpose=batch and file",
                          "invalid_request_error")
        data = upload.file.read()
        file_id = self._new_id("file-")
        self.files[file_id] = data
        return _json({"id": file_id, "object": "file", "bytes": len(data),
                      "created_at": int(time.time()), "filename": upload.filename,
                      "purpose": "batch"})

    async def file_content(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        data = self.files.get(request.match_info["id"])
        if data is None:
            return _error(404, "No such file.", "not_found")
        return web.Response(body=data, content_type="application/jsonl")

    async def openai_create(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        body = _parse_json(await request.read())
        file_id = body.get("input_file_id") if body else None
        if body is None or file_id not in self.files:
            return _error(400, "input_file_id must name an uploaded file", "invalid_request_error")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return _error(400, "endpoint must be /v1/chat/completions and completion_window 24h",
                          "invalid_request_error")
        reqs = []
        for line in self.files[file_id].splitlines():
            row = _parse_json(line) if line.strip() else None
            if row is not None:
                reqs.append((str(row.get("custom_id")), row.get("body") or {}))
        batch = self._add(self._new_id("batch_"), "openai", reqs)
        batch.input_file_id = str(file_id)
        return _json(self._openai_doc(batch))

    def _add(self, bid: str, kind: str, reqs: list[tuple[str, dict[str, Any]]]) -> _Batch:
        batch = _Batch(bid, kind, reqs, self.sim.cfg.clock(), int(time.time()))
        self.batches[bid] = batch
        self.sim.stats.batches_created += 1
        self.sim.stats.batch_requests += len(reqs)
        return batch

    async def openai_list(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        mine, more = _page(self.batches, "openai", request, "after")
        return _json({"object": "list", "data": [self._openai_doc(b) for b in mine],
                      "has_more": more})

    async def openai_get(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        batch = await self._polled(request.match_info["id"], "openai")
        if batch is None:
            return _error(404, "No such batch.", "not_found")
        return _json(self._openai_doc(batch))

    def _openai_doc(self, b: _Batch) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": b.id, "object": "batch", "endpoint": "/v1/chat/completions",
            "input_file_id": b.input_file_id, "completion_window": "24h",
            "status": "in_progress", "output_file_id": None, "error_file_id": None,
            "created_at": b.created_unix, "errors": None,
            "request_counts": {"total": len(b.requests), "completed": 0, "failed": 0},
            "metadata": {},
        }
        if b.results is None:
            return doc
        ok: list[dict[str, Any]] = []
        bad: list[dict[str, Any]] = []
        for r in b.results:
            (ok if (r.get("response") or {}).get("status_code") == 200 else bad).append(r)
        doc["status"] = "expired" if b.expired else "completed"
        doc["request_counts"].update(completed=len(ok), failed=len(bad))
        for key, rows in (("output_file_id", ok), ("error_file_id", bad)):
            if rows:
                fid = f"file-{key[:3]}-{b.id}"
                if fid not in self.files:
                    self.files[fid] = b"".join(orjson.dumps(r) + b"\n" for r in rows)
                doc[key] = fid
        return doc

    # -- Anthropic --------------------------------------------------------------------------

    async def anthropic_create(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        body = _parse_json(await request.read())
        reqs = body.get("requests") if body else None
        if not isinstance(reqs, list) or not reqs or not all(
            isinstance(r, dict) and isinstance(r.get("custom_id"), str)
            and 0 < len(r["custom_id"]) <= 64 and isinstance(r.get("params"), dict)
            for r in reqs
        ):
            return _error(400, "requests must be a non-empty list of {custom_id (<= 64 chars), "
                          "params}", "invalid_request_error")
        batch = self._add(self._new_id("msgbatch_"), "anthropic",
                          [(r["custom_id"], r["params"]) for r in reqs])
        return _json(self._anthropic_doc(batch, request))

    async def anthropic_list(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        mine, more = _page(self.batches, "anthropic", request, "after_id")
        data = [self._anthropic_doc(b, request) for b in mine]
        return _json({"data": data, "has_more": more, "first_id": data[0]["id"] if data
                      else None, "last_id": data[-1]["id"] if data else None})

    async def anthropic_get(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        batch = await self._polled(request.match_info["id"], "anthropic")
        if batch is None:
            return _error(404, "No such batch.", "not_found_error")
        return _json(self._anthropic_doc(batch, request))

    async def anthropic_results(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        batch = self.batches.get(request.match_info["id"])
        if batch is None or batch.kind != "anthropic" or batch.results is None:
            return _error(404, "No results for this batch (yet).", "not_found_error")
        data = b"".join(orjson.dumps(r) + b"\n" for r in batch.results)
        return web.Response(body=data, content_type="application/binary")

    def _anthropic_doc(self, b: _Batch, request: web.Request) -> dict[str, Any]:
        counts = {"processing": len(b.requests), "succeeded": 0, "errored": 0, "canceled": 0,
                  "expired": 0}
        doc: dict[str, Any] = {
            "id": b.id, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": counts, "ended_at": None, "created_at": _rfc3339(b.created_unix),
            "expires_at": _rfc3339(b.created_unix + 86400), "cancel_initiated_at": None,
            "results_url": None,
        }
        if b.results is not None:
            counts["processing"] = 0
            for r in b.results:
                counts[r["result"]["type"]] += 1
            base = f"{request.scheme}://{request.host}"
            doc.update(processing_status="ended", ended_at=_rfc3339(time.time()),
                       results_url=f"{base}/v1/messages/batches/{b.id}/results")
        return doc

    # -- processing -------------------------------------------------------------------------

    async def _polled(self, bid: str, kind: str) -> _Batch | None:
        """The batch, processed first if its delay has passed."""
        self.sim.stats.batch_polls += 1
        batch = self.batches.get(bid)
        if batch is None or batch.kind != kind:
            return None
        if batch.results is None and self.sim.cfg.clock() >= batch.created + \
                self.sim.cfg.batch_delay_s:
            async with self.lock:
                if batch.results is None:
                    batch.results = await self._process(batch)
        return batch

    async def _process(self, b: _Batch) -> list[dict[str, Any]]:
        cfg, out = self.sim.cfg, []
        for i, (cid, body) in enumerate(b.requests):
            if cfg.batch_expire_after is not None and i >= cfg.batch_expire_after:
                b.expired = True
                out.append(_expired(b.kind, cid))
                continue
            if i % 512 == 511:
                await anyio.lowlevel.checkpoint()  # a big batch must not starve other requests
            status, reply = await self._one(b.kind, body)
            out.append(_openai_line(cid, status, reply) if b.kind == "openai"
                       else _anthropic_line(cid, status, reply))
        return out

    async def _one(self, kind: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One batch request: (HTTP status, body) as the online path would answer it."""
        st, cfg = self.sim.stats, self.sim.cfg
        # Not counted in `requests` (the chat path's); per_key sees both, so a job paid for
        # twice, online or in a second batch, shows up in max_attempts_seen.
        key = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
        attempt = st.per_key.get(key, 0)
        st.per_key[key] = attempt + 1
        if cfg.batch_p_invalid and unit_hash("invalid", cfg.seed, key) < cfg.batch_p_invalid:
            st.errors += 1
            return 400, {"error": {"message": "invalid request (injected)",
                                   "type": "invalid_request_error"}}
        fault = draw_fault(cfg.faults, key, attempt, cfg.seed)
        if fault in _FAULT_STATUS:
            st.faults[fault] = st.faults.get(fault, 0) + 1
            st.errors += 1
            return _FAULT_STATUS[fault], {"error": {"message": f"injected {fault}",
                                                    "type": "server_error"}}
        messages = _messages_of(kind, body)
        if not isinstance(body.get("model"), str) or messages is None:
            st.errors += 1
            return 400, {"error": {"message": "model and messages are required",
                                   "type": "invalid_request_error"}}
        params = _params(kind, body)
        if isinstance(params, str):
            st.errors += 1
            return 400, {"error": {"message": params, "type": "invalid_request_error"}}
        got = await self.sim.ask(body["model"], messages, params)
        if isinstance(got, tuple):
            return got[0], {"error": {"message": got[1], "type": got[2]}}
        if kind == "openai":
            doc = _chat_doc(body["model"], key, got)
            if fault in ANSWER_FAULTS:  # counted with the chat path's faults
                st.faults[fault] = st.faults.get(fault, 0) + 1
                _misshape(doc, fault, params.max_tokens, cfg.faults.think_tokens)
            return 200, doc
        return 200, _message_doc(body["model"], key, got, forced_tool(body))


def _page(
    batches: dict[str, _Batch], kind: str, request: web.Request, cursor: str
) -> tuple[list[_Batch], bool]:
    """One page of a batch list, newest first, after the cursor's batch; and whether more."""
    mine = [b for b in reversed(batches.values()) if b.kind == kind]
    after = request.query.get(cursor)
    if after:
        ids = [b.id for b in mine]
        mine = mine[ids.index(after) + 1:] if after in ids else []
    limit = int(request.query.get("limit") or 20)
    return mine[:limit], len(mine) > limit


def _rfc3339(unix: float) -> str:
    """Anthropic's timestamp format."""
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def _json(doc: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(doc), content_type=_JSON)


def _parse_json(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _messages_of(kind: str, body: dict[str, Any]) -> list[dict[str, str]] | None:
    """The chat as the respondent reads it; Anthropic's top-level system becomes a message."""
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not all(
        isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs
    ):
        return None
    out = [{"role": str(m.get("role")), "content": m["content"]} for m in msgs]
    if kind == "anthropic" and isinstance(body.get("system"), str) and body["system"]:
        out.insert(0, {"role": "system", "content": body["system"]})
    return out


def _message_doc(model: str, key: str, ans: Answer, tool: str | None = None) -> dict[str, Any]:
    """An Anthropic Messages object for one answer (reasoning as a thinking block; a forced
    tool's call carrying the choice answer as its input)."""
    blocks: list[dict[str, Any]] = []
    if ans.reasoning:
        blocks.append({"type": "thinking", "thinking": ans.reasoning, "signature": "sim"})
    stop = _ANTHROPIC_STOP.get(ans.finish_reason or "stop", ans.finish_reason)
    if tool is not None:
        blocks.append({"type": "tool_use", "id": "toolu_" + key[:24], "name": tool,
                       "input": orjson.loads(ans.text)})
        stop = "tool_use"
    else:
        blocks.append({"type": "text", "text": ans.text})
    return {"id": "msg_" + key[:24], "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": ans.usage.get("prompt_tokens", 0),
                      "output_tokens": ans.usage.get("completion_tokens", 0)}}


def _openai_line(cid: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"batch_req_{cid}", "custom_id": cid,
            "response": {"status_code": status, "request_id": f"req_{cid}", "body": body},
            "error": None}


def _anthropic_line(cid: str, status: int, body: dict[str, Any]) -> dict[str, Any]:
    if status == 200:
        return {"custom_id": cid, "result": {"type": "succeeded", "message": body}}
    kind = _ANTHROPIC_ERROR.get(status, "api_error")
    message = str((body.get("error") or {}).get("message") or kind)
    return {"custom_id": cid, "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": kind, "message": message}}}}


def _expired(kind: str, cid: str) -> dict[str, Any]:
    if kind == "anthropic":
        return {"custom_id": cid, "result": {"type": "expired"}}
    return {"id": f"batch_req_{cid}", "custom_id": cid, "response": None,
            "error": {"code": "batch_expired", "message": "This request could not be executed "
                      "before the completion window expired."}}

def make_app(cfg: SimServerConfig) -> web.Application:
    """The aiohttp application; `app[STATS_KEY]` is the live ServerStats."""
    sim = _Sim(cfg)
    # Room for a batch upload as large as OpenAI accepts (200 MB); chat bodies are far smaller.
    app = web.Application(client_max_size=256 << 20)
    app[STATS_KEY] = sim.stats
    app.router.add_post("/v1/chat/completions", sim.chat)
    app.router.add_post("/chat/completions", sim.chat)
    app.router.add_get("/v1/models", sim.models)
    app.router.add_get("/stats", sim.get_stats)
    app.router.add_post(gemini.PATH, gemini.handler(sim.ask, sim.stats, cfg.require_key))
    _Batches(sim).routes(app)
    return app


STATS_KEY: Final = web.AppKey("sim_stats", ServerStats)


@dataclass(slots=True)
class RunningServer:
    """A started server: `url` is the base URL a provider config takes."""

    url: str
    port: int
    stats: ServerStats
    runner: web.AppRunner

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_server(
    cfg: SimServerConfig, host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Start serving on host:port (port 0 = a free one); only loopback addresses are allowed."""
    if host not in LOOPBACK:
        raise ConfigError(
            f"the simulator only binds to loopback, not {host!r}; use --host 127.0.0.1"
        )
    app = make_app(cfg)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound = runner.addresses[0][1]
    shown = f"[{host}]" if ":" in host else host
    return RunningServer(f"http://{shown}:{bound}/v1", bound, app[STATS_KEY], runner)
