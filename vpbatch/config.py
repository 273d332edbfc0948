"""Sweep configuration: the TOML file of SPEC §2 as plain dataclasses, validated on load.

The dataclasses are the contract the grid, scheduler and providers read. `load_config` parses
and validates a TOML file before any request is made; every error names the field and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunConfig", "ModelConfig", "GridConfig", "Config", "PROVIDERS"]

PROVIDERS = ("openai", "anthropic", "openrouter", "sim")


@dataclass(slots=True)
class RunConfig:
    name: str = "run"
    versions: list[str] = field(
        default_factory=lambda: ["v1", "v1_reversed", "v2", "v2_reversed", "v3", "v3_reversed"]
    )
    repeats: int = 1
    temperature: float = 0.0
    max_tokens: int = 64
    seed: int | None = 42
    items: int | None = None  # the first N items only (slices, smoke tests); None = all 520
    conditions_file: str | None = None  # personas/steering texts; default configs/personas.toml


@dataclass(slots=True)
class ModelConfig:
    name: str  # label in logs and scores
    provider: str  # one of PROVIDERS
    model: str  # the provider's model id
    base_url: str | None = None
    api_key_env: str | None = None  # NAME of the env var holding the key; never the key
    rpm: float | None = None
    tpm: float | None = None
    concurrency: int = 8
    max_tokens: int | None = None  # overrides run.max_tokens (reasoning models need more)
    temperature: float | None = None  # overrides run.temperature
    seed: int | None = None  # overrides run.seed
    reasoning: bool | None = None  # None = guess from the model id (o1/o3/o4, r1, thinking)
    timeout_connect: float = 10.0
    timeout_read: float = 120.0
    max_attempts: int = 8
    max_retry_seconds: float = 600.0
    price_in: float | None = None  # USD per million prompt tokens, for `plan`
    price_out: float | None = None  # USD per million completion tokens
    mode: str = "online"  # "online" | "batch"
    extra_body: dict[str, Any] = field(default_factory=dict)  # passed through to the body
    sim: dict[str, Any] = field(default_factory=dict)  # simulated respondent settings
    personas: list[str] | str | None = None  # per-model override of [grids]
    steering: list[str] | str | None = None


@dataclass(slots=True)
class GridConfig:
    personas: list[str] | str = field(default_factory=list)  # names or "all"
    steering: list[str] | str = field(default_factory=list)  # dimensions or "all"


@dataclass(slots=True)
class Config:
    run: RunConfig
    models: list[ModelConfig]
    grids: GridConfig = field(default_factory=GridConfig)
    source: Path | None = None  # the file it came from
    text: str = ""  # the TOML as read: copied into the run dir and hashed
