"""`vpbatch sim serve`: the simulated respondent behind an OpenAI-compatible HTTP API.

POST /v1/chat/completions answers like OpenAI; the `model` field picks the respondent
("sim", "sim:<profile>", "replay:<recorded model>"). On top: latency, an RPM limit of its own
(sliding 60 s window), injected faults and an optional key check. GET /stats reports counts.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import orjson
from aiohttp import web

from vpbatch.errors import ConfigError, VPBatchError
from vpbatch.providers.base import ProviderError, RequestParams
from vpbatch.sim.faults import FaultPlan, draw_fault, unit_hash
from vpbatch.sim.replay import ReplayBook, replay_root
from vpbatch.sim.respondent import PROFILES, Respondent, data_dir

__all__ = [
    "SimServerConfig",
    "ServerStats",
    "RunningServer",
    "make_app",
    "start_server",
    "LOOPBACK",
    "STATS_KEY",
]

LOOPBACK = ("127.0.0.1", "localhost", "::1")
WINDOW_S = 60.0
_JSON = "application/json"


@dataclass(slots=True)
class SimServerConfig:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    rpm: float | None = None
    faults: FaultPlan = FaultPlan()
    seed: int = 0
    replay_dir: Path | None = None  # recorded outputs; None = <data>/lm_evaluation/outputs/final
    require_key: str | None = None  # 401 unless `Authorization: Bearer <key>`
    data: Path | None = None  # the dataset root; None = VPBATCH_DATA or the fetched cache
    settings: dict[str, Any] = field(default_factory=dict)  # sim settings for every model
    clock: Callable[[], float] = time.monotonic  # tests patch it to drive the RPM window


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
            "per_key": self.per_key,
            "accepted": self.accepted,
        }


def _error(status: int, message: str, code: str, headers: dict[str, str] | None = None) -> Any:
    body = {"error": {"message": message, "type": code, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), content_type=_JSON,
                        headers=headers)


class _Sim:
    """The request handler's state: config, stats, RPM window and the respondents."""

    __slots__ = ("cfg", "stats", "window", "respondents", "lock")

    def __init__(self, cfg: SimServerConfig) -> None:
        self.cfg = cfg
        self.stats = ServerStats()
        self.window: deque[float] = deque()
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
            root = self.cfg.replay_dir or replay_root(data_dir(self.cfg.data))
            return ReplayBook(root).models()
        except VPBatchError:
            return []

    def admit(self) -> float | None:
        """None when the RPM window has room (and the request is counted), else seconds to wait."""
        now = self.cfg.clock()
        if self.cfg.rpm is not None:
            while self.window and self.window[0] <= now - WINDOW_S:
                self.window.popleft()
            if len(self.window) >= self.cfg.rpm:
                return max(0.0, self.window[0] + WINDOW_S - now)
            self.window.append(now)
        self.stats.accepted.append(now)
        return None

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
            return _error(429, f"Rate limit reached: {self.cfg.rpm:g} requests per minute.",
                          "rate_limit_exceeded", {"Retry-After": str(math.ceil(wait))})
        fault = draw_fault(self.cfg.faults, key, attempt, self.cfg.seed)
        if fault is not None:
            st.faults[fault] = st.faults.get(fault, 0) + 1
            early = await self._fault(fault, request)
            if early is not None:
                return early
        await self._latency(key, attempt)
        return await self._answer(parsed, key)

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

    async def _answer(self, body: dict[str, Any], key: str) -> web.Response:
        st = self.stats
        model = body["model"]
        try:
            who = await self.respondent(model)
        except VPBatchError as exc:
            st.errors += 1
            return _error(404, str(exc), "model_not_found")
        params = RequestParams(
            temperature=body.get("temperature"),
            max_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 64),
            seed=body.get("seed"),
        )
        try:
            ans = who.answer(body["messages"], params)
        except ProviderError as exc:
            st.errors += 1
            status = exc.status or 500
            return _error(status, exc.message, "server_error" if status >= 500 else "replay")
        message: dict[str, Any] = {"role": "assistant", "content": ans.text}
        if ans.reasoning:
            message["reasoning_content"] = ans.reasoning
        usage: dict[str, Any] = dict(ans.usage)
        reasoning_tokens = usage.pop("reasoning_tokens", None)
        usage["total_tokens"] = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
        if reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
        out = {
            "id": "chatcmpl-" + key[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": ans.finish_reason}],
            "usage": usage,
        }
        st.ok += 1
        return web.Response(body=orjson.dumps(out), content_type=_JSON)

    async def get_stats(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats.to_json()), content_type=_JSON)

    async def models(self, request: web.Request) -> web.Response:
        names = ["sim", *(f"sim:{p}" for p in PROFILES)]
        names += [f"replay:{m}" for m in await anyio.to_thread.run_sync(self._replayable)]
        data = [{"id": n, "object": "model", "owned_by": "vpbatch"} for n in names]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                            content_type=_JSON)


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


def make_app(cfg: SimServerConfig) -> web.Application:
    """The aiohttp application; `app[STATS_KEY]` is the live ServerStats."""
    sim = _Sim(cfg)
    app = web.Application(client_max_size=8 << 20)
    app[STATS_KEY] = sim.stats
    app.router.add_post("/v1/chat/completions", sim.chat)
    app.router.add_post("/chat/completions", sim.chat)
    app.router.add_get("/v1/models", sim.models)
    app.router.add_get("/stats", sim.get_stats)
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
