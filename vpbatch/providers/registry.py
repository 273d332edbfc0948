"""The config in, a provider out: `wire_for` (keyless, for ids) and `make_provider` (with key).

A provider name is looked up only in `spec` (the registered ProviderSpecs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.contract import Provider, Wire
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.sim import SimProvider
from vpbatch.providers.spec import spec_of

__all__ = ["make_provider", "wire_for", "Provider", "key_env_of", "is_local"]

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


def is_local(base_url: str | None) -> bool:
    """True for a server on this machine (a key is optional there)."""
    return bool(base_url) and (urlsplit(base_url).hostname or "") in _LOCAL_HOSTS


def key_env_of(cfg: ModelConfig) -> str | None:
    """The NAME of the variable that holds this model's key, or None if it needs none."""
    spec = spec_of(cfg)
    if spec.keyless:
        return None
    if cfg.api_key_env:
        return cfg.api_key_env
    if cfg.base_url is None:  # the default variable goes only to the provider's own endpoint
        return spec.key_env
    if is_local(cfg.base_url):
        return None  # a local vLLM/Ollama/llama.cpp server usually checks no key
    if cfg.settings.get("headers") or cfg.settings.get("query"):
        return None  # a proxy that takes its credential in a header or the query (secrets.py)
    raise ConfigError(
        f"model {cfg.name!r}: base_url {cfg.base_url} needs a key; set api_key_env to the "
        "name of the environment variable that holds it (or, for a proxy that takes another "
        'credential, headers = { "X-Token" = "${NAME}" })'
    )


def wire_for(cfg: ModelConfig, env: Mapping[str, str] | None = None) -> Wire:
    """The model's API format. Needs no key; `env` adds only headers (OpenRouter's referer)."""
    return spec_of(cfg).wire(cfg, env or {})


def make_provider(
    cfg: ModelConfig,
    session: aiohttp.ClientSession | None,
    env: Mapping[str, str] = os.environ,
) -> Provider:
    """The provider for `cfg`, its key read from `env[cfg.api_key_env]` (never from a file)."""
    wire = wire_for(cfg, env)
    if spec_of(cfg).keyless:
        return SimProvider(cfg)  # no key: a simulation never needs or holds one
    if (connect := spec_of(cfg).connect) is not None:
        return connect(cfg, wire, session, env)  # its own credentials (bedrock's AWS ones)
    var = key_env_of(cfg)
    key = env.get(var) if var else None
    if var and not key:
        raise ConfigError(
            f"model {cfg.name!r}: the environment variable {var} is not set; "
            f"export {var}=<your {cfg.provider} key> (keys never go in the config)"
        )
    # An auth failure names the variable actually read.
    return HttpProvider(cfg, wire, session, key, key_env=var, env=env)
