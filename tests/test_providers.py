"""Providers: the bodies they build, the answers they parse, and every failure classified once.

Failures come from real aiohttp servers on 127.0.0.1 (and a raw TCP server for dropped
connections and truncated bodies); no provider code is mocked.
"""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio
import orjson
import pytest
from aiohttp import web
from loopback import serve

from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.anthropic import anthropic_provider
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai import openai_provider
from vpbatch.providers.openrouter import openrouter_provider
from vpbatch.providers.registry import make_provider
from vpbatch.transport.failures import redact, retry_after
from vpbatch.transport.records import Answer, FailureKind, ProviderError, RequestParams

pytestmark = pytest.mark.anyio

KEY = "sk-test-0123456789abcdefSECRETSECRET"
PLAIN = [{"role": "user", "content": "Is this like you?"}]
PERSONA = [
    {"role": "system", "content": "**Your Profile**: Your gender is male."},
    {"role": "user", "content": "Is this like you?"},
]
PAPER = RequestParams(temperature=0.0, max_tokens=64, seed=42)
REASONING = RequestParams(temperature=0.0, max_tokens=4096, seed=42, reasoning=True)
NOW = 1_800_000_000.0  # the patched clock for dated Retry-After headers
Maker = Callable[[ModelConfig, aiohttp.ClientSession | None, str | None], HttpProvider]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cfg(provider: str = "openai", **kw: Any) -> ModelConfig:
    kw.setdefault("timeout_read", 5.0)
    return ModelConfig(name="m", provider=provider, model=kw.pop("model", "gpt-4o-mini"), **kw)


def chat(content: Any = "like me", finish: str = "stop", **message: Any) -> dict[str, Any]:
    """An OpenAI Chat Completions response body."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 3,
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


def message(blocks: list[dict[str, Any]], stop: str = "end_turn") -> dict[str, Any]:
    """An Anthropic Messages response body."""
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": blocks,
        "stop_reason": stop,
        "usage": {"input_tokens": 100, "output_tokens": 5},
    }


# -- a scripted loopback server --------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=chat)  # dict -> JSON, bytes/str -> as is
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (read timeout)


@dataclass
class Server:
    url: str
    reply: Reply = field(default_factory=Reply)
    seen: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    echo: Callable[[dict[str, str]], str] | None = None  # body built from request headers


@asynccontextmanager
async def scripted() -> AsyncIterator[Server]:
    server = Server(url="")
    forever = anyio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        server.seen.append((dict(request.headers), await request.json()))
        r = server.reply
        if r.hang:
            await forever.wait()
        if server.echo is not None:
            text = server.echo(dict(request.headers))
        elif isinstance(r.body, dict | list):
            text = orjson.dumps(r.body).decode()
        else:
            text = r.body.decode() if isinstance(r.body, bytes) else r.body
        return web.Response(status=r.status, text=text, headers=r.headers)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    async with serve(app) as root:
        server.url = f"{root}/v1"
        try:
            yield server
        finally:
            forever.set()


@asynccontextmanager
async def raw_server(response: bytes) -> AsyncIterator[str]:
    """A TCP server that reads a request, writes `response` (maybe nothing) and hangs up."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive(65536)
            if response:
                await stream.send(response)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            tg.cancel_scope.cancel()


async def failure(provider: HttpProvider, messages: Any = PLAIN) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await provider.complete(messages, PAPER)
    return info.value


async def answer_from(body: Any, cls: Maker = openai_provider) -> Answer:
    async with scripted() as srv, aiohttp.ClientSession() as session:
        srv.reply = Reply(body=body)
        provider = cls(cfg(base_url=srv.url), session, KEY)
        return await provider.complete(PLAIN, PAPER)


async def error_from(
    reply: Reply, cls: Maker = openai_provider
) -> ProviderError:
    async with scripted() as srv, aiohttp.ClientSession() as session:
        srv.reply = reply
        provider = cls(cfg(base_url=srv.url, api_key_env="TEST_KEY"), session, KEY)
        provider.failures.clock = lambda: NOW
        return await failure(provider)


# -- request bodies --------------------------------------------------------------------------


def test_openai_body_carries_the_paper_settings() -> None:
    body = openai_provider(cfg(), None, KEY).build_request(PLAIN, PAPER).body
    assert body == {
        "model": "gpt-4o-mini",
        "messages": PLAIN,
        "max_tokens": 64,
        "temperature": 0.0,
        "seed": 42,
    }


def test_openai_keeps_the_system_message_first() -> None:
    body = openai_provider(cfg(), None, KEY).build_request(PERSONA, PAPER).body
    assert body["messages"] == PERSONA


def test_unset_seed_and_temperature_are_left_out() -> None:
    params = RequestParams(temperature=None, max_tokens=64, seed=None)
    body = openai_provider(cfg(), None, KEY).build_request(PLAIN, params).body
    assert "seed" not in body and "temperature" not in body


def test_openai_reasoning_model_takes_max_completion_tokens_and_no_temperature() -> None:
    body = openai_provider(cfg(model="o3-mini"), None, KEY).build_request(PLAIN, REASONING).body
    assert body["max_completion_tokens"] == 4096
    assert "max_tokens" not in body and "temperature" not in body


def test_compatible_server_reasoning_model_keeps_max_tokens() -> None:
    provider = openai_provider(cfg(base_url="http://127.0.0.1:8000/v1"), None, None)
    body = provider.build_request(PLAIN, REASONING).body
    assert body["max_tokens"] == 4096 and "max_completion_tokens" not in body


def test_extra_body_merges_into_the_body_and_none_removes_a_field() -> None:
    c = cfg(extra_body={"top_p": 0.5, "temperature": None})
    body = openai_provider(c, None, KEY).build_request(PLAIN, PAPER).body
    assert body["top_p"] == 0.5 and "temperature" not in body


def test_request_url_joins_base_url_and_path() -> None:
    provider = openai_provider(cfg(base_url="http://127.0.0.1:18080/v1/"), None, None)
    assert provider.build_request(PLAIN, PAPER).url == "http://127.0.0.1:18080/v1/chat/completions"
    assert openai_provider(cfg(), None, KEY).wire.url == "https://api.openai.com/v1/chat/completions"


def test_bearer_header_is_sent_only_with_a_key() -> None:
    assert (
        openai_provider(cfg(), None, KEY).build_request(PLAIN, PAPER).headers["Authorization"]
        == f"Bearer {KEY}"
    )
    local = openai_provider(cfg(base_url="http://localhost:8080/v1"), None, None)
    assert "Authorization" not in local.build_request(PLAIN, PAPER).headers


def test_anthropic_moves_the_system_message_to_the_system_field_and_drops_seed() -> None:
    body = (
        anthropic_provider(cfg("anthropic", model="claude-x"), None, KEY)
        .build_request(PERSONA, PAPER)
        .body
    )
    assert body == {
        "model": "claude-x",
        "max_tokens": 64,
        "temperature": 0.0,
        "system": "**Your Profile**: Your gender is male.",
        "messages": [PERSONA[1]],
    }


def test_anthropic_headers_carry_the_key_and_version() -> None:
    req = anthropic_provider(cfg("anthropic"), None, KEY).build_request(PLAIN, PAPER)
    assert req.url == "https://api.anthropic.com/v1/messages"
    assert req.headers["x-api-key"] == KEY and req.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in req.headers


def test_anthropic_reasoning_enables_thinking_within_max_tokens_without_temperature() -> None:
    body = anthropic_provider(cfg("anthropic"), None, KEY).build_request(PLAIN, REASONING).body
    assert body["thinking"]["type"] == "enabled"
    assert 1024 <= body["thinking"]["budget_tokens"] < body["max_tokens"]
    assert "temperature" not in body


def test_anthropic_reasoning_with_too_few_tokens_is_permanent() -> None:
    params = RequestParams(temperature=None, max_tokens=512, seed=None, reasoning=True)
    with pytest.raises(ProviderError) as info:
        anthropic_provider(cfg("anthropic"), None, KEY).build_request(PLAIN, params)
    assert info.value.kind is FailureKind.PERMANENT and "max_tokens" in info.value.message


def test_openrouter_defaults_its_base_url_and_asks_for_reasoning() -> None:
    provider = openrouter_provider(
        cfg("openrouter", model="deepseek/deepseek-r1"), None, KEY, referer="https://example.org"
    )
    req = provider.build_request(PLAIN, REASONING)
    assert req.url == "https://openrouter.ai/api/v1/chat/completions"
    assert req.body["reasoning"] == {"enabled": True}
    assert req.headers["HTTP-Referer"] == "https://example.org"
    assert req.headers["X-Title"] == "vpbatch"


async def test_the_server_receives_the_built_body_and_key() -> None:
    async with scripted() as srv, aiohttp.ClientSession() as session:
        provider = openai_provider(cfg(base_url=srv.url), session, KEY)
        await provider.complete(PERSONA, PAPER)
        headers, body = srv.seen[0]
    assert body == provider.build_request(PERSONA, PAPER).body
    assert headers["Authorization"] == f"Bearer {KEY}"


async def test_complete_without_a_shared_session_opens_its_own() -> None:
    async with scripted() as srv:
        answer = await openai_provider(cfg(base_url=srv.url), None, KEY).complete(PLAIN, PAPER)
    assert answer.text == "like me"


# -- answers ---------------------------------------------------------------------------------


async def test_openai_answer_carries_text_finish_reason_and_usage() -> None:
    answer = await answer_from(chat("Somewhat like me"))
    assert answer == Answer(
        "Somewhat like me",
        None,
        "stop",
        {"prompt_tokens": 120, "completion_tokens": 3, "reasoning_tokens": 0},
    )


async def test_reasoning_content_field_is_kept_apart_from_the_answer() -> None:
    answer = await answer_from(chat("like me", reasoning_content="They value honesty."))
    assert (answer.text, answer.reasoning) == ("like me", "They value honesty.")


async def test_openrouter_reasoning_field_is_kept_apart_from_the_answer() -> None:
    answer = await answer_from(chat("not like me", reasoning="Hmm."), openrouter_provider)
    assert (answer.text, answer.reasoning) == ("not like me", "Hmm.")


async def test_think_tags_in_content_are_split_off() -> None:
    answer = await answer_from(chat("<think>\nweighing it\n</think>\n\nA little like me"))
    assert (answer.text, answer.reasoning) == ("A little like me", "weighing it")


async def test_max_tokens_cut_off_is_recorded_as_length() -> None:
    answer = await answer_from(chat("<think>still thinking", finish="length"))
    assert answer.finish_reason == "length"
    assert (answer.text, answer.reasoning) == ("", "still thinking")


async def test_null_content_with_a_refusal_keeps_the_refusal_as_text() -> None:
    answer = await answer_from(chat(None, refusal="I can't help with that."))
    assert answer.text == "I can't help with that." and answer.refusal  # never rated


async def test_content_filter_finish_is_permanent() -> None:
    err = await error_from(Reply(body=chat("", finish="content_filter")))
    assert err.kind is FailureKind.PERMANENT and "content filter" in err.message


async def test_anthropic_thinking_blocks_become_reasoning() -> None:
    body = message(
        [
            {"type": "thinking", "thinking": "Let me weigh it.", "signature": "s"},
            {"type": "text", "text": "Like me"},
        ]
    )
    answer = await answer_from(body, anthropic_provider)
    assert answer == Answer(
        "Like me", "Let me weigh it.", "stop", {"prompt_tokens": 100, "completion_tokens": 5}
    )


async def test_anthropic_max_tokens_stop_is_recorded_as_length() -> None:
    answer = await answer_from(
        message([{"type": "text", "text": "Some"}], "max_tokens"), anthropic_provider
    )
    assert answer.finish_reason == "length"


async def test_anthropic_refusal_stop_is_permanent() -> None:
    err = await error_from(Reply(body=message([], "refusal")), anthropic_provider)
    assert err.kind is FailureKind.PERMANENT


async def test_openrouter_error_inside_a_200_body_is_classified_by_its_code() -> None:
    body = {"error": {"code": 502, "message": "upstream provider failed"}}
    err = await error_from(Reply(body=body), openrouter_provider)
    assert err.kind is FailureKind.TRANSIENT and err.status == 502


# -- classification --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_client_errors_are_permanent(status: int) -> None:
    err = await error_from(Reply(status, {"error": {"message": "bad request"}}))
    assert (err.kind, err.status, err.auth) == (FailureKind.PERMANENT, status, False)
    assert "bad request" in err.message


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_permanent_and_name_the_variable(status: int) -> None:
    err = await error_from(Reply(status, {"error": {"message": "Incorrect API key"}}))
    assert (err.kind, err.auth) == (FailureKind.PERMANENT, True)
    assert "$TEST_KEY" in err.message


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503])
async def test_timeouts_conflicts_and_server_errors_are_transient(status: int) -> None:
    err = await error_from(Reply(status, "oops"))
    assert (err.kind, err.status) == (FailureKind.TRANSIENT, status)


async def test_429_is_rate_limited_with_retry_after_seconds() -> None:
    err = await error_from(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "7"}))
    assert (err.kind, err.retry_after) == (FailureKind.RATE_LIMITED, 7.0)


async def test_429_retry_after_as_an_http_date_uses_the_clock() -> None:
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    err = await error_from(Reply(429, "", {"Retry-After": date}))
    assert err.retry_after == 30.0


async def test_429_retry_after_ms_is_converted_to_seconds() -> None:
    err = await error_from(Reply(429, "", {"retry-after-ms": "250"}))
    assert err.retry_after == 0.25


async def test_429_waits_for_the_exhausted_openai_limit() -> None:
    headers = {
        "x-ratelimit-reset-requests": "20ms",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-tokens": "6m0s",
        "x-ratelimit-remaining-tokens": "9000",
    }
    err = await error_from(Reply(429, "", headers))
    assert err.retry_after == 0.02


async def test_anthropic_529_overloaded_is_rate_limited_with_rfc3339_reset() -> None:
    reset = "2027-01-15T08:00:12Z"  # NOW is 2027-01-15T08:00:00Z
    headers = {
        "anthropic-ratelimit-requests-reset": reset,
        "anthropic-ratelimit-requests-remaining": "0",
    }
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    err = await error_from(Reply(529, body, headers), anthropic_provider)
    assert (err.kind, err.retry_after) == (FailureKind.RATE_LIMITED, 12.0)


async def test_insufficient_quota_429_is_permanent() -> None:
    body = {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}
    err = await error_from(Reply(429, body))
    assert err.kind is FailureKind.PERMANENT


async def test_a_5xx_ignores_rate_limit_reset_headers() -> None:
    err = await error_from(Reply(500, "", {"x-ratelimit-reset-tokens": "6m0s"}))
    assert err.retry_after is None


async def test_a_503_with_retry_after_is_transient_and_carries_the_wait() -> None:
    err = await error_from(Reply(503, "busy", {"Retry-After": "3"}))
    assert (err.kind, err.retry_after) == (FailureKind.TRANSIENT, 3.0)


async def test_an_upstream_failure_inside_an_openrouter_choice_is_transient() -> None:
    body = chat("", finish="error")
    body["choices"][0]["error"] = {"code": 502, "message": "provider went away"}
    err = await error_from(Reply(body=body), openrouter_provider)
    assert err.kind is FailureKind.TRANSIENT and "provider went away" in err.message


@pytest.mark.parametrize("base_url", ["127.0.0.1:8000/v1", "http:///v1", "ftp://host/v1"])
async def test_a_base_url_aiohttp_cannot_use_is_permanent(base_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        err = await failure(openai_provider(cfg(base_url=base_url), session, KEY))
    assert err.kind is FailureKind.PERMANENT and "base_url" in err.message


async def test_json_cut_off_in_a_200_is_transient() -> None:
    err = await error_from(Reply(200, '{"id": "chatcmpl-x", "choices": [{"mes'))
    assert err.kind is FailureKind.TRANSIENT and "truncated" in err.message


async def test_a_chat_completion_with_no_choices_is_transient() -> None:
    err = await error_from(Reply(200, {"id": "x", "object": "chat.completion", "choices": []}))
    assert err.kind is FailureKind.TRANSIENT


HTML = "<!doctype html><html><head><title>Open WebUI</title></head><body>app</body></html>"


@pytest.mark.parametrize(("body", "ctype", "what"), [
    (HTML, "text/html", "not JSON"),
    ("OK", "text/plain", "not JSON"),
    ({"status": "ok", "version": "0.6.1"}, "application/json", "without choices"),
    ([1, 2], "application/json", "JSON list"),
    ({"object": "text_completion", "choices": [{"text": "like me", "index": 0}]},
     "application/json", "no message content"),
])
async def test_a_2xx_that_is_not_a_chat_completion_is_permanent_and_names_the_url(
    body: Any, ctype: str, what: str
) -> None:
    async with scripted() as srv, aiohttp.ClientSession() as session:
        srv.reply = Reply(200, body, {"Content-Type": ctype})
        err = await failure(openai_provider(cfg(base_url=srv.url), session, KEY))
    assert err.kind is FailureKind.PERMANENT
    assert what in err.message and f"{srv.url}/chat/completions" in err.message
    assert f"Content-Type: {ctype}" in err.message and "check base_url" in err.message
    first = body if isinstance(body, str) else orjson.dumps(body).decode()
    assert first[:40] in err.message


async def test_an_anthropic_2xx_without_content_blocks_is_permanent() -> None:
    err = await error_from(Reply(200, {"ok": True}), anthropic_provider)
    assert err.kind is FailureKind.PERMANENT and "/messages" in err.message


async def test_an_answer_over_max_response_bytes_fails_unread() -> None:
    big = chat("like me " * 200_000)  # 1.6 MB of JSON
    async with scripted() as srv, aiohttp.ClientSession() as session:
        srv.reply = Reply(body=big)
        provider = openai_provider(cfg(base_url=srv.url, max_response_bytes=100_000),
                                   session, KEY)
        err = await failure(provider)
        assert err.kind is FailureKind.PERMANENT
        assert "larger than max_response_bytes = 100,000 bytes" in err.message
        assert "Content-Length" in err.message
        srv.reply = Reply(body=chat("like me"))  # the session is still good afterwards
        assert (await provider.complete(PLAIN, PAPER)).text == "like me"


async def test_an_endless_body_without_length_stops_at_the_cap() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
    async with raw_server(head + b"x" * 300_000) as url, aiohttp.ClientSession() as session:
        err = await failure(openai_provider(cfg(base_url=url, max_response_bytes=50_000),
                                            session, KEY))
    assert err.kind is FailureKind.PERMANENT and "max_response_bytes" in err.message
    assert "Content-Length" not in err.message


async def test_a_read_timeout_is_transient() -> None:
    async with scripted() as srv, aiohttp.ClientSession() as session:
        srv.reply = Reply(hang=True)
        err = await failure(openai_provider(cfg(base_url=srv.url, timeout_read=0.2), session, KEY))
    assert err.kind is FailureKind.TRANSIENT and "timed out" in err.message


async def test_a_dropped_connection_is_transient() -> None:
    async with raw_server(b"") as url, aiohttp.ClientSession() as session:
        err = await failure(openai_provider(cfg(base_url=url), session, KEY))
    assert err.kind is FailureKind.TRANSIENT


async def test_a_truncated_body_is_transient() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    async with raw_server(head + b'{"choices": [') as url, aiohttp.ClientSession() as session:
        err = await failure(openai_provider(cfg(base_url=url), session, KEY))
    assert err.kind is FailureKind.TRANSIENT


async def test_a_refused_connection_is_transient() -> None:
    async with raw_server(b"") as url:
        pass  # the port is closed again: nothing listens there now
    async with aiohttp.ClientSession() as session:
        err = await failure(openai_provider(cfg(base_url=url), session, KEY))
    assert err.kind is FailureKind.TRANSIENT and "ClientConnectorError" in err.message


# -- the key never leaks ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 429, 500])
@pytest.mark.parametrize("cls", [openai_provider, anthropic_provider])
async def test_an_error_body_echoing_the_headers_never_leaks_the_key(
    status: int, cls: Maker
) -> None:
    async with scripted() as srv, aiohttp.ClientSession() as session:
        srv.reply = Reply(status)
        srv.echo = lambda h: orjson.dumps({"error": {"message": f"bad headers {h}"}}).decode()
        err = await failure(cls(cfg(base_url=srv.url, api_key_env="TEST_KEY"), session, KEY))
    assert KEY not in str(err) and KEY[:16] not in err.message and KEY[-12:] not in err.message


def test_redact_masks_the_key_its_fragments_and_key_shaped_tokens() -> None:
    text = f"key={KEY} start={KEY[:12]} end={KEY[-10:]} other=sk-ant-abcdefgh123 Bearer xyz"
    out = redact(text, KEY)
    assert KEY[:12] not in out and KEY[-10:] not in out and "sk-ant-abcdefgh123" not in out
    assert "xyz" not in out


def test_retry_after_reads_go_durations() -> None:
    assert retry_after({"x-ratelimit-reset-requests": "1m30.5s"}, NOW) == 90.5


# -- the registry ----------------------------------------------------------------------------


def test_make_provider_reads_the_key_from_the_named_variable() -> None:
    provider = make_provider(cfg(api_key_env="MY_KEY"), None, env={"MY_KEY": KEY})
    assert provider.build_request(PLAIN, PAPER).headers["Authorization"] == f"Bearer {KEY}"


def test_a_missing_key_names_the_variable_never_a_value() -> None:
    with pytest.raises(ConfigError) as info:
        make_provider(cfg(api_key_env="MY_KEY"), None, env={"OTHER": KEY})
    assert "MY_KEY" in str(info.value) and KEY not in str(info.value)


def test_the_official_endpoint_defaults_to_the_usual_variable() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        make_provider(cfg("anthropic"), None, env={})


def test_a_local_server_needs_no_key() -> None:
    provider = make_provider(cfg(base_url="http://127.0.0.1:18080/v1"), None, env={})
    assert "Authorization" not in provider.build_request(PLAIN, PAPER).headers


def test_a_remote_base_url_without_api_key_env_is_refused() -> None:
    # Defaulting to OPENAI_API_KEY here would send OpenAI's key to another company.
    with pytest.raises(ConfigError, match="api_key_env"):
        make_provider(
            cfg(base_url="https://api.together.xyz/v1"), None, env={"OPENAI_API_KEY": KEY}
        )


def test_an_unknown_provider_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown provider"):
        make_provider(cfg("cohere", api_key_env="K"), None, env={"K": KEY})


def test_openrouter_referer_comes_from_the_environment() -> None:
    env = {"OPENROUTER_API_KEY": KEY, "OPENROUTER_HTTP_REFERER": "https://lab.example"}
    provider = make_provider(cfg("openrouter"), None, env=env)
    assert provider.build_request(PLAIN, PAPER).headers["HTTP-Referer"] == "https://lab.example"


# -- the in-process simulator ----------------------------------------------------------------


def sim_chats(data_dir: Any) -> list[list[dict[str, str]]]:
    """Real benchmark prompts: vanilla, a persona and a steering message, two versions."""
    from vpbatch.benchmark.conditions import load_conditions
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.benchmark.prompts import item_prompt

    ds, conds = load_dataset(data_dir), load_conditions()
    systems = [None, conds.personas["gender=female"].text, conds.steering["Power"]]
    chats = []
    for version in ("v1", "v3_reversed"):
        for i in (0, 7, 311):
            for system in systems:
                user = {"role": "user", "content": item_prompt(ds, version, i)}
                chats.append([{"role": "system", "content": system}, user] if system else [user])
    return chats


@pytest.mark.parametrize("model", ["sim:default", "replay:claude-3.7-sonnet:thinking"])
async def test_sim_provider_answers_exactly_like_the_sim_server(
    data_dir: Any, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    server = pytest.importorskip("vpbatch.sim.server")
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))
    in_process = make_provider(cfg("sim", model=model), None, env={})
    running = await server.start_server(server.SimServerConfig(data=data_dir))
    try:
        async with aiohttp.ClientSession() as session:
            over_http = openai_provider(cfg(base_url=running.url, model=model), session, None)
            for messages in sim_chats(data_dir):
                want = await over_http.complete(messages, PAPER)
                assert await in_process.complete(messages, PAPER) == want
    finally:
        await running.close()


def test_the_sim_provider_needs_no_key_and_sends_nothing_over_the_network(
    data_dir: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))
    provider = make_provider(cfg("sim", model="sim:default", api_key_env="UNSET"), None, env={})
    req = provider.build_request(PERSONA, PAPER)
    assert req.url.startswith("sim://") and "Authorization" not in req.headers
