"""`provider = "openai"`: api.openai.com, or any OpenAI-compatible server via base_url."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp

from vpbatch.config.schema import ModelConfig
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai_compat import OPENAI_BASE_URL, OpenAIChat, base_url_of

__all__ = ["openai_wire", "openai_provider"]


def openai_wire(cfg: ModelConfig) -> OpenAIChat:
    """Chat Completions, with what OpenAI's own reasoning (o-series) models require."""
    # Only OpenAI's endpoint gets max_completion_tokens: vLLM, Ollama and llama.cpp all
    # take max_tokens for their reasoning models, and some reject the newer name.
    host = urlsplit(base_url_of(cfg, OPENAI_BASE_URL)).hostname or ""
    official = host == "api.openai.com" or host.endswith(".openai.com")
    return OpenAIChat(cfg, label="openai", completion_tokens=official)


def openai_provider(
    cfg: ModelConfig, session: aiohttp.ClientSession | None, api_key: str | None
) -> HttpProvider:
    """The openai provider: its wire over HTTP with this key."""
    return HttpProvider(cfg, openai_wire(cfg), session, api_key)
