"""The API-key pre-flight of `plan --check-keys` and `run`: every missing variable at once."""

from __future__ import annotations

import os
from collections.abc import Mapping

from vpbatch.config.schema import Config, ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.spec import spec_of

__all__ = ["key_vars", "missing_keys", "check_keys", "keys_ok"]


def _credential(m: ModelConfig, env: Mapping[str, str]) -> tuple[str, bool] | None:
    """What the model's credential is called and whether it is there; None if it needs none."""
    spec = spec_of(m)
    if spec.credentials is not None:  # not one variable (bedrock: AWS keys, a profile, a token)
        return spec.credentials(m, env)
    if m.api_key_env is None:
        return None
    return m.api_key_env, bool(env.get(m.api_key_env))


def _by_credential(cfg: Config, env: Mapping[str, str]) -> dict[str, tuple[bool, list[str]]]:
    out: dict[str, tuple[bool, list[str]]] = {}
    for m in cfg.models:
        got = _credential(m, env)
        if got is not None:
            out.setdefault(got[0], (got[1], []))[1].append(m.name)
    return out


def key_vars(cfg: Config, env: Mapping[str, str] = os.environ) -> dict[str, list[str]]:
    """Each API-key variable (or credential) the models need, with those models, config order."""
    return {name: names for name, (_, names) in _by_credential(cfg, env).items()}


def missing_keys(cfg: Config, env: Mapping[str, str] = os.environ) -> dict[str, list[str]]:
    """The key variables (or credentials) that are unset or empty, with the models needing them."""
    return {name: names for name, (ok, names) in _by_credential(cfg, env).items() if not ok}


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


def keys_ok(cfg: Config, env: Mapping[str, str] = os.environ) -> str:
    """The line `plan --check-keys` prints when every key is there."""
    keys = key_vars(cfg, env)
    if not keys:
        return "keys OK: no model needs an API key"
    return f"keys OK: {', '.join(keys)} set for {sum(map(len, keys.values()))} model(s)"
