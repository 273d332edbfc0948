"""The config in, a provider out: `wire_for` (keyless, for ids) and `make_provider` (with key).

The only place a provider name is looked up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from vpbatch.config.schema import DEFAULT_KEY_ENV, ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.anthropic import AnthropicMessages
from vpbatch.providers.contract import Provider, Wire
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai import openai_wire
from vpbatch.providers.openrouter import openrouter_wire
from vpbatch.providers.sim import SimProvider, sim_wire

__all__ = ["make_provider", "wire_for", "Provider", "key_env_of", "is_local"]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def is_local(base_url: str | None) -> bool:
    """True for a server on this machine (a key is optional there)."""
    return bool(base_url) and (urlsplit(base_url).hostname or "") in _LOCAL_HOSTS


def key_env_of(cfg: ModelConfig) -> str | None:
    """The NAME of the variable that holds this model's key, or None if it needs none."""
    if cfg.provider == "sim":
        return None
    if cfg.api_key_env:
        return cfg.api_key_env
    if cfg.base_url is None:  # the default variable goes only to the provider's own endpoint
        return DEFAULT_KEY_ENV.get(cfg.provider)
    if is_local(cfg.base_url):
        return None  # a local vLLM/Ollama/llama.cpp server usually checks no key
    raise ConfigError(
        f"model {cfg.name!r}: base_url {cfg.base_url} needs a key; set api_key_env to the "
        "name of the environment variable that holds it"
    )


def wire_for(cfg: ModelConfig, env: Mapping[str, str] | None = None) -> Wire:
    """The model's API format. Needs no key; `env` adds only headers (OpenRouter's referer)."""
    if cfg.provider == "openai":
        return openai_wire(cfg)
    if cfg.provider == "anthropic":
        return AnthropicMessages(cfg)
    if cfg.provider == "openrouter":
        referer = (env or {}).get("OPENROUTER_HTTP_REFERER") or None
        return openrouter_wire(cfg, referer=referer)
    if cfg.provider == "sim":
        return sim_wire(cfg)
    raise ConfigError(
        f"model {cfg.name!r}: unknown provider {cfg.provider!r}; "
        "use one of openai, anthropic, openrouter, sim"
    )


def make_provider(
    cfg: ModelConfig,
    session: aiohttp.ClientSession | None,
    env: Mapping[str, str] = os.environ,
) -> Provider:
    """The provider for `cfg`, its key read from `env[cfg.api_key_env]` (never from a file)."""
    wire = wire_for(cfg, env)
    if cfg.provider == "sim":
        return SimProvider(cfg)  # no key: a simulation never needs or holds one
    var = key_env_of(cfg)
    key = env.get(var) if var else None
    if var and not key:
        raise ConfigError(
            f"model {cfg.name!r}: the environment variable {var} is not set; "
            f"export {var}=<your {cfg.provider} key> (keys never go in the config)"
        )
    # An auth failure names the variable actually read.
    return HttpProvider(cfg, wire, session, key, key_env=var)
