"""The API-key pre-flight of `plan --check-keys` and `run`: every missing variable at once."""

from __future__ import annotations

import os
from collections.abc import Mapping

from vpbatch.config.schema import Config
from vpbatch.errors import ConfigError

__all__ = ["key_vars", "missing_keys", "check_keys", "keys_ok"]


def key_vars(cfg: Config) -> dict[str, list[str]]:
    """Each API-key variable the config names, with the models that read it (config order)."""
    out: dict[str, list[str]] = {}
    for m in cfg.models:
        if m.api_key_env is not None:
            out.setdefault(m.api_key_env, []).append(m.name)
    return out


def missing_keys(cfg: Config, env: Mapping[str, str] = os.environ) -> dict[str, list[str]]:
    """The key variables that are unset or empty, with the models that need them."""
    return {var: names for var, names in key_vars(cfg).items() if not env.get(var)}


def _listed(missing: Mapping[str, list[str]]) -> str:
    return "; ".join(f"{var} (for {', '.join(names)})" for var, names in missing.items())


def check_keys(cfg: Config, env: Mapping[str, str] = os.environ) -> None:
    """Raise one ConfigError naming every unset key variable and the models that need it."""
    missing = missing_keys(cfg, env)
    if missing:
        raise ConfigError(
            f"{len(missing)} API key variable(s) not set: {_listed(missing)}; export each "
            "(e.g. export " + next(iter(missing)) + "=<your key>; keys live only in the "
            "environment), or use `vpbatch plan` without --check-keys, which needs no key"
        )


def keys_ok(cfg: Config) -> str:
    """The line `plan --check-keys` prints when every key is there."""
    keys = key_vars(cfg)
    if not keys:
        return "keys OK: no model needs an API key"
    return f"keys OK: {', '.join(keys)} set for {sum(map(len, keys.values()))} model(s)"
