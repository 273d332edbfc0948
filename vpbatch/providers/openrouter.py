"""`provider = "openrouter"`: OpenAI-compatible, plus its `reasoning` switch and attribution."""

from __future__ import annotations

import aiohttp

from vpbatch.config.schema import ModelConfig
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai_compat import OPENAI_REASONING, OPENAI_SETTINGS, OpenAIChat
from vpbatch.providers.spec import ProviderSpec, register

__all__ = ["openrouter_wire", "openrouter_provider", "OPENROUTER_BASE_URL", "SPEC"]

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"


def openrouter_wire(
    cfg: ModelConfig, *, referer: str | None = None, title: str | None = "vpbatch"
) -> OpenAIChat:
    """One key, hundreds of models; reasoning comes back in `message.reasoning`."""
    # OpenRouter's optional app attribution: headers only, so never part of a job's id.
    headers = {k: v for k, v in (("HTTP-Referer", referer), ("X-Title", title)) if v}
    # OpenRouter normalises every vendor's thinking switch into this one field; the
    # reasoning text comes back in `message.reasoning` (exclude=false is the default).
    # Without require_parameters OpenRouter may route a choice request to a provider that
    # drops response_format it cannot honour and answers free text; with it, only providers
    # that take every parameter sent are used. (A provider table in extra_body merges with it.)
    # OpenRouter maps max_tokens and temperature to each model's own form (normalises), and
    # takes reasoning_effort as `reasoning: {effort}`.
    return OpenAIChat(cfg, label="openrouter", default_base_url=OPENROUTER_BASE_URL,
                      reasoning_switch={"reasoning": {"enabled": True}},
                      choice_switch={"provider": {"require_parameters": True}},
                      extra_headers=headers, normalises=True, effort_switch="reasoning")


def openrouter_provider(
    cfg: ModelConfig,
    session: aiohttp.ClientSession | None,
    api_key: str | None,
    *,
    referer: str | None = None,
    title: str | None = "vpbatch",
) -> HttpProvider:
    """The openrouter provider: its wire over HTTP with this key."""
    return HttpProvider(cfg, openrouter_wire(cfg, referer=referer, title=title), session, api_key)


SPEC = register(ProviderSpec(
    name="openrouter", key_env="OPENROUTER_API_KEY", reasoning=OPENAI_REASONING,
    settings=OPENAI_SETTINGS,
    # OpenRouter's optional referer header comes from the environment (never a job's id).
    wire=lambda cfg, env: openrouter_wire(cfg, referer=env.get("OPENROUTER_HTTP_REFERER") or None),
))  # no batch API
