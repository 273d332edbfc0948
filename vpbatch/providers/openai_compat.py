"""The OpenAI Chat Completions wire format, a component the providers compose (not a base).

`OpenAIChat` builds the body (extra_body merged last) and reads an answer, reasoning kept
apart. OpenAI, OpenRouter, the simulator and every compatible server (vLLM, Ollama, llama.cpp,
Together) use it with their own options; nothing here sends or holds a key. A choice-mode
request carries the answer's JSON schema as `response_format` (`response_format_for`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from vpbatch.benchmark.choice import SCHEMA_NAME, choice_schema
from vpbatch.benchmark.parser import split_reasoning
from vpbatch.config.providers import Setting
from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.reasoning import (
    EFFORTS,
    MAX_COMPLETION_TOKENS,
    MAX_TOKENS,
    TOKEN_FIELDS,
    known_model,
    table_id,
)
from vpbatch.providers.spec import ReasoningRules
from vpbatch.transport.failures import Failures
from vpbatch.transport.records import Answer, RequestParams

__all__ = ["OpenAIChat", "OPENAI_BASE_URL", "OPENAI_REASONING", "OPENAI_SETTINGS",
           "merge_extra", "usage_of", "base_url_of", "response_format_for", "Shape", "shape_of"]

OPENAI_BASE_URL = "https://api.openai.com/v1"
AUTO = "auto"

# The request-shape settings of every OpenAI-compatible model (docs/guides/reasoning-models.md).
OPENAI_SETTINGS = (
    Setting("known_as", str, "",
            'the known-model table\'s id for this model when its own says nothing (an Azure '
            'deployment, a gateway alias): e.g. "o4-mini"; "" = the model id'),
    Setting("token_field", str, AUTO,
            'the output limit\'s field: "max_tokens", "max_completion_tokens", or "auto" '
            "(the known-model table, else max_tokens)"),
    Setting("send_temperature", bool | str, AUTO,
            'send the temperature: true, false, or "auto" (not to a reasoning model that '
            "refuses one, per the known-model table)"),
    Setting("reasoning_effort", str, "",
            'OpenAI\'s reasoning_effort ("minimal", "low", "medium", "high"); "" sends none'),
    Setting("headers", dict[str, str], {},
            'extra HTTP headers; "${NAME}" in a value is the environment variable NAME '
            "(secrets: never logged or shown)"),
    Setting("query", dict[str, str], {},
            'extra URL query parameters, "${NAME}" as in headers (e.g. a gateway\'s key)'),
)


def official_openai(cfg: ModelConfig) -> bool:
    """Only OpenAI's endpoint gets max_completion_tokens: vLLM, Ollama and llama.cpp all
    take max_tokens for their reasoning models, and some reject the newer name."""
    host = urlsplit(base_url_of(cfg, OPENAI_BASE_URL)).hostname or ""
    return host == "api.openai.com" or host.endswith(".openai.com")


# The openai family's reasoning rules: the known-model table; an unknown reasoning model gets
# OpenAI's reasoning shape only from OpenAI's own endpoint.
OPENAI_REASONING = ReasoningRules(completion_tokens=official_openai)
# A chat message carries at least one of these (content may be null beside tool calls or
# reasoning); a choice whose message has none is not a Chat Completions answer.
_MESSAGE_FIELDS = frozenset({"content", "reasoning_content", "reasoning", "refusal", "tool_calls"})


def base_url_of(cfg: ModelConfig, default: str) -> str:
    """The model's API root: its base_url, else the provider's; never a trailing slash."""
    return (cfg.base_url or default).rstrip("/")


def merge_extra(
    body: dict[str, Any], extra: Mapping[str, Any], remove: Sequence[str] = ()
) -> dict[str, Any]:
    """`extra_body` over `body` (nested dicts merge one level; a None value removes the key),
    then `remove` (`extra_body_remove`: TOML has no null) drops keys, "a.b" one level down."""
    for name, value in extra.items():
        if value is None:
            body.pop(name, None)
        elif isinstance(value, dict) and isinstance(body.get(name), dict):
            body[name] = {**body[name], **value}
        else:
            body[name] = value
    for path in remove:
        outer, _, inner = path.partition(".")
        if not inner:
            body.pop(outer, None)
        elif isinstance(body.get(outer), dict):
            body[outer] = {k: v for k, v in body[outer].items() if k != inner}
    return body


@dataclass(frozen=True, slots=True)
class Shape:
    """How one model's chat request says what the grid asks: decided per model, not host."""

    token_field: str = MAX_TOKENS
    temperature: bool = True  # send params.temperature (when there is one)
    effort: str | None = None  # reasoning_effort to send


def _setting(cfg: ModelConfig, name: str, default: Any) -> Any:
    return cfg.settings.get(name, default)


def shape_of(
    cfg: ModelConfig, reasoning: bool, unknown_completion: bool, *, table: bool = True
) -> Shape:
    """The model's request shape: its explicit settings, else the known-model table (unless
    `table` is false), else `unknown_completion` says OpenAI's form for a reasoning model."""
    row = known_model(table_id(cfg)) if table else None
    # An opt-in model (Claude, Flash-Lite) takes the reasoning shape only when asked to reason.
    applies = row is not None and (row.thinks != "opt-in" or reasoning)
    if row is not None and applies:
        field_, temp = row.token_field, row.temperature or not (reasoning or row.reasoning)
    elif reasoning and unknown_completion:
        field_, temp = MAX_COMPLETION_TOKENS, False
    else:
        field_, temp = MAX_TOKENS, True
    token_field = _setting(cfg, "token_field", AUTO)
    if token_field not in (AUTO, *TOKEN_FIELDS):
        raise ConfigError(f"model {cfg.name!r}: token_field = {token_field!r}; use one of "
                          + ", ".join(repr(x) for x in (AUTO, *TOKEN_FIELDS)))
    send_temp = _setting(cfg, "send_temperature", AUTO)
    if send_temp not in (AUTO, True, False):
        raise ConfigError(f"model {cfg.name!r}: send_temperature = {send_temp!r}; use true, "
                          'false or "auto"')
    effort = _setting(cfg, "reasoning_effort", "") or None
    if effort is not None and effort not in EFFORTS:
        raise ConfigError(f"model {cfg.name!r}: reasoning_effort = {effort!r}; use one of "
                          + ", ".join(repr(x) for x in EFFORTS) + ' (or leave it out)')
    return Shape(field_ if token_field == AUTO else token_field,
                 temp if send_temp == AUTO else bool(send_temp), effort)


def response_format_for(options: tuple[str, ...], form: str = "json_schema") -> dict[str, Any]:
    """The `response_format` asking for a choice answer, in the server's form (CHOICE_FORMATS)."""
    schema = choice_schema(options)
    if form == "json_object":  # llama-cpp-python's server: its type is json_object or text
        return {"type": "json_object", "schema": schema}
    # OpenAI's structured outputs; strict makes the server decode only what the schema allows.
    return {"type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema}}


def _text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def usage_of(raw: Any) -> dict[str, int]:
    """Token counts under our names (prompt, completion, reasoning); missing ones left out."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, int] = {}
    for ours, theirs in (
        ("prompt_tokens", ("prompt_tokens", "input_tokens")),
        ("completion_tokens", ("completion_tokens", "output_tokens")),
    ):
        for name in theirs:
            if isinstance(raw.get(name), int):
                out[ours] = raw[name]
                break
    details = raw.get("completion_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out["reasoning_tokens"] = details["reasoning_tokens"]
    return out


class OpenAIChat:
    """Chat Completions for one model; the options say what a given server does differently."""

    __slots__ = ("cfg", "label", "base_url", "url", "completion_tokens", "reasoning_switch",
                 "choice_switch", "extra_headers", "normalises", "effort_switch")

    path = "/chat/completions"
    adapts = True  # HttpProvider may switch the token field / temperature on a 400 (adapt.py)

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        label: str = "openai-compatible",
        default_base_url: str = OPENAI_BASE_URL,
        completion_tokens: bool = False,
        reasoning_switch: Mapping[str, Any] | None = None,
        choice_switch: Mapping[str, Any] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        normalises: bool = False,
        effort_switch: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.label = label
        self.base_url = base_url_of(cfg, default_base_url)
        self.url = self.base_url + self.path
        # OpenAI's reasoning models refuse max_tokens and any non-default temperature.
        self.completion_tokens = completion_tokens
        self.reasoning_switch = dict(reasoning_switch or {})  # body fields that turn it on
        self.choice_switch = dict(choice_switch or {})  # fields a choice request also needs
        self.extra_headers = dict(extra_headers or {})
        # The endpoint maps max_tokens/temperature per model itself (OpenRouter): the table's
        # shape is not applied, only explicit settings.
        self.normalises = normalises
        # Where reasoning_effort goes: top-level (None) or under this object (OpenRouter's
        # `reasoning: {effort}`).
        self.effort_switch = effort_switch

    def shape(self, reasoning: bool) -> Shape:
        """This model's request shape when it reasons (or not)."""
        if self.normalises:
            return shape_of(self.cfg, reasoning, False, table=False)
        return shape_of(self.cfg, reasoning, self.completion_tokens)

    def body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.cfg.model, "messages": messages}
        shape = self.shape(params.reasoning)
        body[shape.token_field] = params.max_tokens
        if shape.temperature and params.temperature is not None:
            body["temperature"] = params.temperature
        if params.seed is not None:
            body["seed"] = params.seed
        if params.reasoning and self.reasoning_switch:
            body.update(self.reasoning_switch)
        if shape.effort is not None:
            if self.effort_switch is None:
                body["reasoning_effort"] = shape.effort
            else:
                inner = body.get(self.effort_switch)
                body[self.effort_switch] = {**(inner if isinstance(inner, dict) else {}),
                                            "effort": shape.effort}
        if params.choice is not None:
            body["response_format"] = response_format_for(params.choice, self.cfg.choice_format)
            body.update(self.choice_switch)
        return merge_extra(body, self.cfg.extra_body, self.cfg.extra_body_remove)

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return {**headers, **self.extra_headers}

    def answer(
        self, payload: dict[str, Any], headers: Mapping[str, str], failures: Failures
    ) -> Answer:
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            err = payload.get("error")
            if isinstance(err, dict) and isinstance(err.get("code"), int):
                # OpenRouter reports upstream failures inside a 200 body with an HTTP code.
                raise failures.status(err["code"], headers, orjson.dumps(payload))
            if choices == [] and payload.get("object") == "chat.completion":
                raise failures.transient("the chat completion has no choices")
            raise failures.not_an_answer(self.url, headers, orjson.dumps(payload),
                                         "JSON without choices")
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict) or not _MESSAGE_FIELDS.intersection(message):
            # e.g. the legacy /completions answer (choices[0].text): another API entirely.
            raise failures.not_an_answer(self.url, headers, orjson.dumps(payload),
                                         "JSON whose first choice has no message content")
        finish = choice.get("finish_reason")
        if finish == "error" or isinstance(choice.get("error"), dict):
            # OpenRouter: the upstream model failed after the response had begun.
            raise failures.transient(f"the upstream model failed: {choice.get('error')}")
        if finish == "content_filter":
            raise failures.permanent("the content filter stopped the answer")
        content = _text_of(message.get("content"))
        refusal = message.get("refusal")
        if not content.strip() and isinstance(refusal, str) and refusal.strip():
            # Kept as the answer text (it was paid for, and says why), but never rated: a
            # refusal that happens to name a phrase ("... like me ...") is not an answer.
            return Answer(refusal, _split(message)[1], finish,
                          usage_of(payload.get("usage")), refusal=True)
        text, reasoning = _split(message)
        return Answer(text, reasoning, finish, usage_of(payload.get("usage")))


def _split(message: dict[str, Any]) -> tuple[str, str | None]:
    """Answer text apart from reasoning: separate fields first, then `<think>` in content."""
    content = _text_of(message.get("content"))
    text, inline = split_reasoning(content)
    field = message.get("reasoning_content") or message.get("reasoning")
    parts = [p for p in (field if isinstance(field, str) else None, inline) if p]
    return text, "\n".join(parts) or None
