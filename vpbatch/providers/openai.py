"""`provider = "openai"`: api.openai.com, or any OpenAI-compatible server via base_url."""

from __future__ import annotations

import aiohttp

from vpbatch.config.schema import ModelConfig
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai_batch import OpenAIBatchAPI
from vpbatch.providers.openai_compat import OPENAI_REASONING, OPENAI_SETTINGS, OpenAIChat
from vpbatch.providers.spec import ProviderSpec, register

__all__ = ["openai_wire", "openai_provider", "SPEC"]


def openai_wire(cfg: ModelConfig) -> OpenAIChat:
    """Chat Completions, each model in its own shape (providers.reasoning's table)."""
    rules = SPEC.reasoning.completion_tokens
    return OpenAIChat(cfg, label="openai", completion_tokens=bool(rules and rules(cfg)))


def openai_provider(
    cfg: ModelConfig, session: aiohttp.ClientSession | None, api_key: str | None
) -> HttpProvider:
    """The openai provider: its wire over HTTP with this key."""
    return HttpProvider(cfg, openai_wire(cfg), session, api_key)


SPEC = register(ProviderSpec(
    name="openai", wire=lambda cfg, env: openai_wire(cfg), key_env="OPENAI_API_KEY",
    reasoning=OPENAI_REASONING, batch=OpenAIBatchAPI, settings=OPENAI_SETTINGS,
    # json_object: llama-cpp-python's server ({"type": "json_object", "schema"})
    choice_formats=("json_schema", "json_object"),
))
