"""What the config must know of each provider, registered by the provider's own module.

config sits below providers, so it never imports them: `vpbatch.providers.spec.register`
puts each provider's `ProviderFacts` here when its module is imported (vpbatch.providers
imports every builtin one), and the loader validates model tables against them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Setting", "ProviderFacts", "register_facts", "unregister_facts", "facts_of",
           "provider_names"]


@dataclass(frozen=True, slots=True)
class Setting:
    """A provider-specific model key (e.g. azure's `deployment`): its type, default, meaning."""

    name: str
    type: Any  # a type hint config.tomlvalues understands: str, int, float, bool, dict[...]
    default: Any
    meaning: str


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    """The config-level facts of one provider (`provider = NAME`)."""

    name: str
    key_env: str | None = None  # the key's variable when the config names none (own endpoint)
    settings: tuple[Setting, ...] = ()  # extra [[models]] / [providers.NAME] keys
    batch: bool = False  # has a batch API (mode = "batch")
    choice_formats: tuple[str, ...] = ("json_schema",)
    keyless: bool = False  # answers in-process: no key, no base_url (the simulator)
    model_default: str | None = None  # the model id when a table gives none
    extra: dict[str, Any] = field(default_factory=dict)  # room for what a later check needs
    # The key's variable from the model's settings, with a base_url too (Azure's resource URL
    # is always its own service): overrides key_env when the config names no api_key_env.
    key_env_for: Callable[[Mapping[str, Any]], str] | None = None
    # The provider's own rules for a loaded model (a ModelConfig): None, or the (key, problem,
    # fix) the loader reports as every config error is (exit 2, before anything is sent).
    check: Callable[[Any], tuple[str, str, str] | None] | None = None


_FACTS: dict[str, ProviderFacts] = {}


def register_facts(facts: ProviderFacts) -> None:
    """Make `provider = facts.name` known to the loader (called by providers.spec.register)."""
    _FACTS[facts.name] = facts


def unregister_facts(name: str) -> None:
    """Forget `provider = name` (a test's provider, once the test is done)."""
    _FACTS.pop(name, None)


def facts_of(name: str) -> ProviderFacts | None:
    return _FACTS.get(name)


def provider_names() -> tuple[str, ...]:
    """The registered names, in registration order (the builtins first)."""
    if not _FACTS:
        raise RuntimeError("no provider is registered: import vpbatch.providers before "
                           "loading a config (it registers the builtin providers)")
    return tuple(_FACTS)
