"""Reasoning models wherever they are served: the known-model table, the request shape per
model, adapting once on a 400 that refuses max_tokens or temperature, and headers/query with
secrets from the environment (docs/guides/reasoning-models.md)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web
from loopback import serve
from test_engine import log_rows, run, write_config

from vpbatch.cli import main as vpbatch
from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.log.adapted import load_adapted
from vpbatch.providers.adapt import Adapter, Form, refused_params
from vpbatch.providers.anthropic import anthropic_provider
from vpbatch.providers.reasoning import KNOWN_MODELS, known_model, table_markdown
from vpbatch.providers.registry import make_provider, wire_for
from vpbatch.transport.records import FailureKind, RequestParams

pytestmark = pytest.mark.timeout(120)

REASONING = RequestParams(temperature=0.0, max_tokens=4096, seed=42, reasoning=True)
PAPER = RequestParams(temperature=0.0, max_tokens=64, seed=42)
MSGS = [{"role": "user", "content": "hello"}]
# OpenAI's own error bodies, verbatim, as an o-series model behind a gateway returns them.
MAX_TOKENS_400 = {"error": {
    "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
               "'max_completion_tokens' instead.",
    "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}


def temperature_400(value: Any) -> dict[str, Any]:
    return {"error": {
        "message": f"Unsupported value: 'temperature' does not support {value} with this model. "
                   "Only the default (1) value is supported.",
        "type": "invalid_request_error", "param": "temperature", "code": "unsupported_value"}}


@pytest.fixture(autouse=True)
def _data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))


def model(model_id: str, provider: str = "openai", **kw: Any) -> ModelConfig:
    settings = kw.pop("settings", {})
    m = ModelConfig("m", provider, model_id, **kw)
    m.settings = settings
    return m


def body_of(m: ModelConfig, params: RequestParams = REASONING) -> dict[str, Any]:
    return wire_for(m).body(MSGS, params)


# -- the known-model table -------------------------------------------------------------------


@pytest.mark.parametrize("model_id", [
    "o1", "o1-mini", "o3", "o3-mini-2025-01-31", "o4-mini", "openai/o3", "gpt-5", "gpt-5-mini",
    "gpt-5-nano", "gpt-oss-120b", "openai/gpt-oss-20b", "deepseek-reasoner",
    "deepseek/deepseek-r1", "deepseek-r1:7b", "DeepSeek-R1-Distill-Qwen-7B", "Qwen/Qwen3-8B",
    "qwen3:30b", "qwq-32b", "gemini-2.5-pro", "models/gemini-2.5-flash", "grok-3-mini",
    "x-ai/grok-4", "magistral-medium-latest", "gemini-2.0-flash-thinking-exp",
])
def test_the_table_knows_every_current_reasoning_family_behind_any_prefix(model_id: str) -> None:
    row = known_model(model_id)
    assert row is not None and row.reasoning, model_id


@pytest.mark.parametrize("model_id", [
    "claude-sonnet-4-5", "claude-opus-4-1-20250805", "claude-3-7-sonnet-20250219",
    "anthropic/claude-3.7-sonnet", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
])
def test_claude_models_think_only_when_thinking_is_enabled(model_id: str) -> None:
    row = known_model(model_id)
    assert row is not None and row.thinks == "opt-in" and not row.reasoning


@pytest.mark.parametrize("model_id", ["gpt-4o", "gpt-4o-mini", "llama3.1:8b", "my-reasoner",
                                      "claude-3-5-sonnet", "qwen3-235b-a22b-instruct-2507",
                                      "gpt-5-chat-latest", "mistral-large-latest"])
def test_plain_chat_models_are_not_taken_for_reasoning_ones(model_id: str) -> None:
    row = known_model(model_id)
    assert row is None or not row.reasoning


def test_the_docs_page_carries_the_table_as_generated() -> None:
    assert table_markdown() in PAGE.read_text(encoding="utf-8")
    assert len(KNOWN_MODELS) == table_markdown().count("\n") - 1


# -- the request shape, per model ------------------------------------------------------------


def test_an_o_series_model_behind_a_gateway_gets_max_completion_tokens_and_no_temperature(
) -> None:
    body = body_of(model("o3", base_url="http://127.0.0.1:4000/v1"))
    assert body["max_completion_tokens"] == 4096
    assert "max_tokens" not in body and "temperature" not in body


def test_open_weight_reasoning_models_keep_max_tokens_and_temperature() -> None:
    body = body_of(model("deepseek-r1", base_url="http://127.0.0.1:8000/v1"))
    assert body["max_tokens"] == 4096 and body["temperature"] == 0.0


def test_existing_configs_send_the_bodies_they_sent_before() -> None:
    # Job ids digest the body: these are the bodies of the redesign (7e0feb8), unchanged.
    assert body_of(model("gpt-4o-mini"), PAPER) == {
        "model": "gpt-4o-mini", "messages": MSGS, "max_tokens": 64, "temperature": 0.0,
        "seed": 42}
    assert body_of(model("o3-mini")) == {
        "model": "o3-mini", "messages": MSGS, "max_completion_tokens": 4096, "seed": 42}
    assert body_of(model("deepseek/deepseek-r1", "openrouter")) == {
        "model": "deepseek/deepseek-r1", "messages": MSGS, "max_tokens": 4096,
        "temperature": 0.0, "seed": 42, "reasoning": {"enabled": True}}


def test_explicit_settings_override_the_table() -> None:
    m = model("my-deployment", base_url="http://127.0.0.1:4000/v1", settings={
        "token_field": "max_completion_tokens", "send_temperature": False,
        "reasoning_effort": "high"})
    body = body_of(m, PAPER)
    assert body["max_completion_tokens"] == 64 and body["reasoning_effort"] == "high"
    assert "temperature" not in body and "max_tokens" not in body


def test_openrouter_takes_the_effort_inside_its_reasoning_object() -> None:
    body = body_of(model("openai/o3", "openrouter", settings={"reasoning_effort": "low"}))
    assert body["reasoning"] == {"enabled": True, "effort": "low"}


def test_extra_body_remove_drops_a_key_toml_cannot_null() -> None:
    m = model("my-model", base_url="http://127.0.0.1:4000/v1",
              extra_body={"max_completion_tokens": 4096, "top_p": 1},
              extra_body_remove=["max_tokens", "temperature"])
    body = body_of(m, PAPER)
    assert "max_tokens" not in body and "temperature" not in body
    assert body["max_completion_tokens"] == 4096 and body["top_p"] == 1


def test_a_bad_setting_value_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="max_completion_tokens"):
        body_of(model("o3", settings={"token_field": "max_output_tokens"}))


def test_anthropic_thinking_budget_is_the_setting_when_given() -> None:
    m = model("claude-sonnet-4-5", "anthropic", settings={"thinking_budget": 2000})
    body = anthropic_provider(m, None, "k").build_request(MSGS, REASONING).body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert "temperature" not in body


# -- adapting on the server's word -----------------------------------------------------------


@pytest.mark.parametrize(("raw", "param"), [
    (orjson.dumps(MAX_TOKENS_400), "max_tokens"),
    (orjson.dumps(temperature_400(0.0)), "temperature"),
    (b'{"error": {"message": "litellm.UnsupportedParamsError: openai does not support '
     b"parameters: ['temperature'], for model=o3. To drop these, set `litellm.drop_params=True`"
     b'", "type": "None", "param": null, "code": "400"}}', "temperature"),
    (b'{"object": "error", "message": "max_completion_tokens is not supported", "code": 400}',
     "max_completion_tokens"),
])
def test_a_refusal_names_the_parameter_in_openai_litellm_and_vllm_words(
    raw: bytes, param: str
) -> None:
    assert refused_params(raw) == {param}


def test_a_400_about_a_value_too_large_is_not_a_refusal() -> None:
    raw = b'{"error": {"message": "max_tokens is too large: 100000. This model supports at ' \
          b'most 4096 completion tokens", "type": "invalid_request_error", "code": null}}'
    assert refused_params(raw) == set()


def test_each_switch_happens_once_and_a_second_refusal_is_not_adapted() -> None:
    adapter = Adapter()
    sent = {"model": "x", "max_tokens": 64}
    first = adapter.learn(sent, sent, orjson.dumps(MAX_TOKENS_400), "openai")
    assert first is not None and first.kind is FailureKind.ADAPTED
    assert adapter.apply(sent) == {"model": "x", "max_completion_tokens": 64}
    back = b'{"error": {"message": "max_completion_tokens is not supported", "code": null}}'
    assert adapter.learn(adapter.apply(sent), sent, back, "openai") is None


def test_a_switch_that_does_not_help_is_undone() -> None:
    adapter = Adapter()
    sent = {"model": "x", "max_tokens": 64, "temperature": 0.0}
    refusal = orjson.dumps(temperature_400(0.0))
    assert adapter.learn(sent, sent, refusal, "openai") is not None
    assert adapter.learn(adapter.apply(sent), sent, refusal, "openai") is None
    assert adapter.futile and adapter.apply(sent) == sent  # the temperature is sent again


@dataclass
class Gateway:
    """A loopback gateway in front of an o-series model: refuses as OpenAI does."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    queries: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0
    echo_auth: bool = False  # answer 400 with the Authorization header in the message


@contextlib.asynccontextmanager
async def gateway(**kw: Any) -> AsyncIterator[Gateway]:
    gw = Gateway(**kw)

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        gw.bodies.append(body)
        gw.headers.append(dict(request.headers))
        gw.queries.append(dict(request.query))
        await anyio.sleep(0.002)  # in flight long enough for the others to be sent too
        if gw.echo_auth:
            msg = f"bad token {request.headers.get('Authorization')} / {request.query_string}"
            return web.json_response({"error": {"message": msg, "code": None}}, status=400)
        if "max_tokens" in body:
            gw.refused += 1
            return web.json_response(MAX_TOKENS_400, status=400)
        if body.get("temperature", 1) != 1:
            gw.refused += 1
            return web.json_response(temperature_400(body["temperature"]), status=400)
        return web.json_response({
            "id": "c", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "like me"}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 30,
                      "completion_tokens_details": {"reasoning_tokens": 25}}})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    async with serve(app) as root:
        gw.url = f"{root}/v1"
        yield gw


def reasoner(gw: Gateway, **kw: Any) -> dict[str, Any]:
    """A name no table knows, behind a localhost gateway, as a new user would write it."""
    return {"name": "my-reasoner", "provider": "openai", "model": "my-reasoner",
            "base_url": gw.url, "concurrency": 8, **kw}


ONE = ["v1"]  # one version, vanilla only: items = jobs


def test_an_unknown_reasoner_behind_a_gateway_completes_520_jobs_with_few_extra_requests(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with gateway() as gw:
            cfg = write_config(tmp_path / "c.toml", [reasoner(gw)], items=520, versions=ONE)
            summary = await run(cfg, tmp_path / "run")
            s = summary.models["my-reasoner"]
            assert summary.complete and s.ok == 520 and s.failed == 0 and s.retries == 0
            extra = len(gw.bodies) - 520
            # One re-send for each request in flight at the first 400 (concurrency 8), and one
            # more for the probe, which alone meets the second switch (the others wait for it).
            assert extra == gw.refused and extra <= 8 + 1, extra
            assert s.adapted == ("max_tokens sent as max_completion_tokens",
                                 "temperature not sent")
            rows = log_rows(tmp_path / "run")
            assert len({r["job_id"] for r in rows}) == 520 and all(r["attempts"] == 1 for r in rows)
            assert rows[-1]["extra"]["adapted"] == list(s.adapted)
            assert rows[-1]["request"]["max_tokens"] == 64  # the body its id digests
            print(f"\n520 jobs: {len(gw.bodies)} requests, {extra} extra")  # the measured number

    anyio.run(main)


def test_the_switch_is_recorded_in_the_run_dir_and_shown_by_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> None:
        async with gateway() as gw:
            cfg = write_config(tmp_path / "c.toml", [reasoner(gw)], items=30, versions=ONE)
            await run(cfg, tmp_path / "run")

    anyio.run(main)
    entry = load_adapted(tmp_path / "run")["my-reasoner"]
    assert Form.from_json(entry["form"]) == Form("max_completion_tokens", True)
    vpbatch(["status", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "my-reasoner: adapted to its server: max_tokens sent as max_completion_tokens; " \
           "temperature not sent" in out


def test_the_run_summary_names_the_switch(tmp_path: Path) -> None:
    out = io.StringIO()

    async def main() -> None:
        async with gateway() as gw:
            cfg = write_config(tmp_path / "c.toml", [reasoner(gw)], items=10, versions=ONE)
            await run(cfg, tmp_path / "run", progress=True, stream=out)

    anyio.run(main)
    assert "my-reasoner: adapted to its server: max_tokens sent as max_completion_tokens; " \
           "temperature not sent" in out.getvalue()


def test_a_resume_after_the_switch_sends_nothing_twice_and_starts_adapted(tmp_path: Path) -> None:
    async def main() -> None:
        async with gateway() as gw:
            cfg = write_config(tmp_path / "c.toml", [reasoner(gw)], items=60, versions=ONE)
            await run(cfg, tmp_path / "run")
            log = tmp_path / "run" / "log.jsonl"
            lines = log.read_bytes().splitlines(keepends=True)
            log.write_bytes(b"".join(lines[:40]))  # as if the run had stopped after 40 jobs
            gw.bodies.clear()
            gw.refused = 0
            again = await run(cfg, tmp_path / "run")
            assert again.models["my-reasoner"].skipped == 40
            assert len(gw.bodies) == 20 and gw.refused == 0  # adapted from its first request
            ids = [r["job_id"] for r in log_rows(tmp_path / "run")]
            assert len(ids) == len(set(ids)) == 60

    anyio.run(main)


# -- headers and query, secrets from the environment -----------------------------------------

TOKEN = "gw-0123456789abcdefSECRET"


def test_headers_and_query_carry_env_secrets_and_leave_job_ids_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MY_GATEWAY_TOKEN", TOKEN)
    tables = {"headers": {"Authorization": "Bearer ${MY_GATEWAY_TOKEN}", "X-Team": "lab"},
              "query": {"key": "${MY_GATEWAY_TOKEN}"}}

    async def main() -> None:
        async with gateway() as gw:
            plain = write_config(tmp_path / "a.toml", [reasoner(gw)], items=3, versions=ONE)
            cfg = write_config(tmp_path / "c.toml", [reasoner(gw, **tables)], items=3,
                               versions=ONE)
            await run(cfg, tmp_path / "run")
            assert gw.headers[-1]["Authorization"] == f"Bearer {TOKEN}"
            assert gw.headers[-1]["X-Team"] == "lab" and gw.queries[-1] == {"key": TOKEN}
            a, b = (wire_for(c.models[0]) for c in (plain, cfg))
            assert a.url == b.url and a.body(MSGS, PAPER) == b.body(MSGS, PAPER)  # same ids

    anyio.run(main)
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert TOKEN not in path.read_text(encoding="utf-8", errors="replace"), path
    vpbatch(["models", str(tmp_path / "c.toml")])
    explained = capsys.readouterr().out
    assert "${MY_GATEWAY_TOKEN}" in explained and TOKEN not in explained


def test_a_secret_echoed_in_an_error_is_masked(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_GATEWAY_TOKEN", TOKEN)

    async def main() -> None:
        async with gateway(echo_auth=True) as gw:
            m = model("gpt-4o", base_url=gw.url, settings={
                "headers": {"Authorization": "Bearer ${MY_GATEWAY_TOKEN}"},
                "query": {"token": "${MY_GATEWAY_TOKEN}"}})
            provider = make_provider(m, None)
            with pytest.raises(Exception) as info:
                await provider.complete(MSGS, PAPER)
            assert TOKEN not in str(info.value) and "***" in str(info.value)

    anyio.run(main)


def test_an_unset_variable_is_named_and_a_literal_credential_refused() -> None:
    unset = model("gpt-4o", base_url="http://127.0.0.1:1/v1",
                  settings={"headers": {"X-Token": "${NOT_SET_ANYWHERE}"}})
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        make_provider(unset, None, env={})
    literal = model("gpt-4o", base_url="http://127.0.0.1:1/v1",
                    settings={"headers": {"Authorization": "Bearer sk-literal"}})
    with pytest.raises(ConfigError, match="environment variable"):
        make_provider(literal, None, env={})


def test_known_as_gives_a_deployment_name_its_family() -> None:
    m = model("prod-reasoner-eu", base_url="http://127.0.0.1:4000/v1",
              settings={"known_as": "o4-mini"})
    body = body_of(m, PAPER)
    assert "max_completion_tokens" in body and "temperature" not in body


# -- the docs page ---------------------------------------------------------------------------

PAGE = Path(__file__).parents[1] / "docs/guides/reasoning-models.md"
EXAMPLES = re.findall(r"```toml\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("text", EXAMPLES, ids=[f"example-{i}" for i in range(len(EXAMPLES))])
def test_each_docs_example_is_a_config_vpbatch_plan_loads(
    text: str, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    vpbatch(["plan", str(path), "--data", str(data_dir)])
    assert "total" in capsys.readouterr().out


def test_the_docs_page_has_the_two_gateway_examples() -> None:
    assert len(EXAMPLES) >= 5
    assert any("my-reasoner" in t and "127.0.0.1" in t for t in EXAMPLES)
    assert any("headers" in t and "${UNI_PROXY_TOKEN}" in t for t in EXAMPLES)


def test_plan_refuses_a_setting_no_api_takes_with_exit_2(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(EXAMPLES[0].replace('"low"', '"extreme"'), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        vpbatch(["plan", str(path), "--data", str(data_dir)])
    assert info.value.code == 2
    assert "reasoning_effort = 'extreme'" in capsys.readouterr().err


def test_an_azure_deployment_said_to_reason_gets_openais_reasoning_shape_and_adapts() -> None:
    m = model("prod-eu", "azure", base_url="https://r.openai.azure.com",
              settings={"deployment": "prod-eu", "api_version": "2024-10-21",
                        "reasoning_effort": "low"})
    body = body_of(m)  # reasoning = true: the deployment name says nothing, the user does
    assert body["max_completion_tokens"] == 4096 and body["reasoning_effort"] == "low"
    assert "temperature" not in body
    provider = make_provider(m, None, env={"AZURE_OPENAI_API_KEY": "k"})
    assert getattr(provider, "adapter", None) is not None
