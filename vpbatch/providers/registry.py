"""`make_provider`: a model's config and the environment in, a ready provider out."""

from __future__ import annotations

import os
from collections.abc import Mapping

import aiohttp

from vpbatch.errors import ConfigError
from vpbatch.providers.anthropic import AnthropicProvider
from vpbatch.providers.openai import OpenAIProvider
from vpbatch.providers.openai_compat import Provider, is_local
from vpbatch.providers.openrouter import OpenRouterProvider
from vpbatch.sweep.config import ModelConfig

__all__ = ["make_provider", "Provider", "DEFAULT_KEY_ENV", "key_env_of"]

# Used only against the provider's own endpoint: sending OPENAI_API_KEY to a third-party
# base_url by default would hand the key to someone else.
DEFAULT_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
}


def key_env_of(cfg: ModelConfig) -> str | None:
    """The NAME of the variable that holds this model's key, or None if it needs none."""
    if cfg.provider == "sim":
        return None
    if cfg.api_key_env:
        return cfg.api_key_env
    if cfg.base_url is None:
        return DEFAULT_KEY_ENV.get(cfg.provider)
    if is_local(cfg.base_url):
        return None  # a local vLLM/Ollama/llama.cpp server usually checks no key
    raise ConfigError(
        f"model {cfg.name!r}: base_url {cfg.base_url} needs a key; set api_key_env to the "
        "name of the environment variable that holds it"
    )


def make_provider(
    cfg: ModelConfig,
    session: aiohttp.ClientSession | None,
    env: Mapping[str, str] = os.environ,
) -> Provider:
    """The provider for `cfg`, its key read from `env[cfg.api_key_env]` (never from a file)."""
    if cfg.provider == "sim":
        from vpbatch.providers.sim import SimProvider  # the respondent loads only when used

        return SimProvider(cfg, session, None)
    var = key_env_of(cfg)
    key = env.get(var) if var else None
    if var and not key:
        raise ConfigError(
            f"model {cfg.name!r}: the environment variable {var} is not set; "
            f"export {var}=<your {cfg.provider} key> (keys never go in the config)"
        )
    provider = _construct(cfg, session, key, env)
    provider.key_env = var  # an auth failure names the variable actually read
    return provider


def _construct(
    cfg: ModelConfig, session: aiohttp.ClientSession | None, key: str | None, env: Mapping[str, str]
) -> Provider:
    if cfg.provider == "openai":
        return OpenAIProvider(cfg, session, key)
    if cfg.provider == "anthropic":
        return AnthropicProvider(cfg, session, key)
    if cfg.provider == "openrouter":
        referer = env.get("OPENROUTER_HTTP_REFERER") or None
        return OpenRouterProvider(cfg, session, key, referer=referer)
    raise ConfigError(
        f"model {cfg.name!r}: unknown provider {cfg.provider!r}; "
        "use one of openai, anthropic, openrouter, sim"
    )
