"""A provider's facts in one declaration (`ProviderSpec`), and the registry of them by name.

A provider module builds one `ProviderSpec` and calls `register(spec)` at import; the package
`vpbatch.providers` imports every builtin module, so the registry is full once it is imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vpbatch.config.providers import ProviderFacts, Setting, register_facts, unregister_facts
from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.contract import Wire
from vpbatch.providers.reasoning import KnownModel, known_model

if TYPE_CHECKING:
    import aiohttp

    from vpbatch.providers.batchapi import BatchAPI
    from vpbatch.providers.contract import Provider
    from vpbatch.providers.http import HttpProvider
    from vpbatch.transport.retry import RetryPolicy

__all__ = ["ReasoningRules", "ProviderSpec", "register", "unregister", "spec_of", "specs",
           "Setting"]


@dataclass(frozen=True, slots=True)
class ReasoningRules:
    """How a provider treats reasoning models: the known-model table (providers.reasoning),
    more ids it takes as reasoning, and the token field of a reasoning model the table lacks."""

    guess: re.Pattern[str] | None = None  # more ids taken as reasoning (beside the table)
    # True: a reasoning model the table does not know gets max_completion_tokens, no temperature
    completion_tokens: Callable[[ModelConfig], bool] | None = None
    known: Callable[[str], KnownModel | None] = known_model  # the per-model table

    def is_reasoning(self, model_id: str) -> bool:
        """Reasoning unasked: the table says it always thinks, or the provider's guess."""
        row = self.known(model_id)
        if row is not None:
            return row.reasoning
        return bool(self.guess and self.guess.search(model_id.lower()))


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything vpbatch knows of one provider; `provider = name` in a config selects it."""

    name: str
    wire: Callable[[ModelConfig, Mapping[str, str]], Wire]  # wire format (keyless; env: headers)
    key_env: str | None = None  # default key variable (only for the provider's own endpoint)
    settings: tuple[Setting, ...] = ()  # provider-specific model keys, validated by config
    reasoning: ReasoningRules = ReasoningRules()
    batch: Callable[[HttpProvider, RetryPolicy], BatchAPI] | None = None  # its BatchAPI class
    choice_formats: tuple[str, ...] = ("json_schema",)
    keyless: bool = False  # answers in-process (the simulator): no key, no HTTP
    model_default: str | None = None
    # Optional: how the model's provider is made, for credentials that are not one key in
    # key_env (bedrock: AWS credentials, each request signed). None: an HttpProvider with it.
    connect: Callable[
        [ModelConfig, Wire, aiohttp.ClientSession | None, Mapping[str, str]], Provider
    ] | None = None
    no_batch_why: str = ""  # why mode = "batch" is refused, said at config load (batch None)
    # The key variable from the model's settings, base_url or not (config.providers)
    key_env_for: Callable[[Mapping[str, Any]], str] | None = None
    # Its rules for a model's settings, checked at load: None or (key, problem, fix)
    check: Callable[[ModelConfig], tuple[str, str, str] | None] | None = None
    # For credentials that are not one key variable (bedrock): (what they are, all there?),
    # so `plan --check-keys` and `run` name them before anything starts. None: key_env alone.
    credentials: Callable[[ModelConfig, Mapping[str, str]], tuple[str, bool]] | None = None

    def facts(self) -> ProviderFacts:
        extra = {"no_batch_why": self.no_batch_why} if self.no_batch_why else {}
        return ProviderFacts(self.name, self.key_env, self.settings, self.batch is not None,
                             self.choice_formats, self.keyless, self.model_default, extra,
                             key_env_for=self.key_env_for, check=self.check)


_SPECS: dict[str, ProviderSpec] = {}


def register(spec: ProviderSpec) -> ProviderSpec:
    """Register `spec` by name (for the config loader too); a second one by that name is a bug."""
    if spec.name in _SPECS and _SPECS[spec.name] is not spec:
        raise RuntimeError(f"provider {spec.name!r} is registered twice; rename one")
    _SPECS[spec.name] = spec
    register_facts(spec.facts())
    return spec


def unregister(name: str) -> None:
    """Forget a provider (a test's, once the test is done); the builtins stay registered."""
    _SPECS.pop(name, None)
    unregister_facts(name)


def spec_of(cfg: ModelConfig) -> ProviderSpec:
    """The registered spec of `cfg.provider`; ConfigError names the known ones."""
    spec = _SPECS.get(cfg.provider)
    if spec is None:
        raise ConfigError(f"model {cfg.name!r}: unknown provider {cfg.provider!r}; "
                          "use one of " + ", ".join(_SPECS))
    return spec


def specs() -> tuple[ProviderSpec, ...]:
    return tuple(_SPECS.values())
