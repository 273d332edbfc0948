"""`provider = "anthropic"`: the Messages API over HTTP (no SDK).

Its own wire: a top-level `system`, `x-api-key`, thinking blocks kept as reasoning, no seed.
The Messages API has no `response_format`: a choice-mode request forces one tool whose
`input_schema` is the answer's schema, and the tool call's input is the answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from vpbatch.benchmark.choice import SCHEMA_NAME, choice_schema
from vpbatch.config.providers import Setting
from vpbatch.config.schema import ModelConfig
from vpbatch.providers.anthropic_batch import AnthropicBatchAPI
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai_compat import base_url_of, merge_extra, usage_of
from vpbatch.providers.spec import ProviderSpec, ReasoningRules, register
from vpbatch.transport.failures import Failures
from vpbatch.transport.records import Answer, FailureKind, ProviderError, RequestParams

__all__ = ["AnthropicMessages", "anthropic_provider", "ANTHROPIC_VERSION", "thinking_budget",
           "SPEC"]

ANTHROPIC_VERSION = "2023-06-01"  # the Messages API version; newer features come as betas
ANTHROPIC_BASE_URL = "https://api.anthropic.com/v1"
_MIN_BUDGET = 1024  # the API's floor for thinking.budget_tokens
# Their stop reasons under the names the log and the scorer use ("length" = cut off).
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
           "tool_use": "stop"}


def thinking_budget(max_tokens: int, asked: int = 0) -> int | None:
    """Tokens for thinking within `max_tokens` (`asked`, else all but a quarter of it left
    for the answer); None if that leaves no room for the answer or is under the API's floor."""
    budget = asked or max(_MIN_BUDGET, max_tokens - max(64, max_tokens // 4))
    return budget if _MIN_BUDGET <= budget < max_tokens else None


class AnthropicMessages:
    """The Messages format for one model (the `Wire` contract)."""

    __slots__ = ("cfg", "base_url", "url")

    label = "anthropic"
    path = "/messages"

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.base_url = base_url_of(cfg, ANTHROPIC_BASE_URL)
        self.url = self.base_url + self.path

    def body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        body: dict[str, Any] = {
            "model": self.cfg.model,
            "max_tokens": params.max_tokens,
            "messages": turns,
        }
        if system:
            body["system"] = system
        # No seed: the Messages API has none and refuses unknown fields.
        if params.reasoning:
            asked = int(self.cfg.settings.get("thinking_budget", 0))
            budget = thinking_budget(params.max_tokens, asked)
            if budget is None:
                need = f"{_MIN_BUDGET} <= thinking_budget < max_tokens" if asked else \
                    f"max_tokens > {_MIN_BUDGET}"
                raise ProviderError(
                    FailureKind.PERMANENT,
                    f"anthropic thinking needs {need} (got max_tokens = {params.max_tokens}"
                    f"{f', thinking_budget = {asked}' if asked else ''}); raise this model's "
                    "max_tokens, change thinking_budget, or set reasoning = false",
                )
            # Thinking accepts only the default temperature, so none is sent.
            body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        elif params.temperature is not None:
            body["temperature"] = params.temperature
        if params.choice is not None:
            if params.reasoning:
                raise ProviderError(
                    FailureKind.PERMANENT,
                    "anthropic thinking cannot be combined with a forced tool, its route to a "
                    'choice answer; set reasoning = false for this model, or answer = "text"',
                )
            body.update(_forced_tool(params.choice))
        return merge_extra(body, self.cfg.extra_body, self.cfg.extra_body_remove)

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def answer(
        self, payload: dict[str, Any], headers: Mapping[str, str], failures: Failures
    ) -> Answer:
        blocks = payload.get("content")
        if not isinstance(blocks, list):
            raise failures.not_an_answer(self.url, headers, orjson.dumps(payload),
                                         "JSON without content blocks")
        stop = payload.get("stop_reason")
        if stop == "refusal":
            raise failures.permanent("the safety classifier refused the answer")
        text, thoughts = [], []
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text":
                text.append(str(block.get("text", "")))
            elif kind == "thinking":
                thoughts.append(str(block.get("thinking", "")))
            elif kind == "redacted_thinking":
                thoughts.append("[redacted thinking]")
            elif kind == "tool_use":  # a choice answer: the forced tool's input, as JSON text
                text.append(orjson.dumps(block.get("input")).decode())
        finish = _FINISH.get(stop, stop) if isinstance(stop, str) else None
        reasoning = "\n".join(thoughts).strip() or None
        return Answer("".join(text), reasoning, finish, usage_of(payload.get("usage")))


def _forced_tool(options: tuple[str, ...]) -> dict[str, Any]:
    """The tool that carries a choice answer, and the tool_choice that forces one call of it."""
    # No description: it would be words the paper's prompt does not have.
    return {
        "tools": [{"name": SCHEMA_NAME, "input_schema": choice_schema(options)}],
        "tool_choice": {"type": "tool", "name": SCHEMA_NAME, "disable_parallel_tool_use": True},
    }


def anthropic_provider(
    cfg: ModelConfig, session: aiohttp.ClientSession | None, api_key: str | None
) -> HttpProvider:
    """The anthropic provider: its wire over HTTP with this key."""
    return HttpProvider(cfg, AnthropicMessages(cfg), session, api_key)


SPEC = register(ProviderSpec(
    name="anthropic", wire=lambda cfg, env: AnthropicMessages(cfg), key_env="ANTHROPIC_API_KEY",
    # The known-model table: Claude thinks only when `reasoning = true` enables thinking.
    reasoning=ReasoningRules(), batch=AnthropicBatchAPI,
    settings=(Setting("thinking_budget", int, 0,
                      "extended thinking's budget_tokens when reasoning = true (at least 1024, "
                      "under max_tokens); 0 = max_tokens less a quarter for the answer"),),
))
