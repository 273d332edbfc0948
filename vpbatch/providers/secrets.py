"""The `headers` and `query` settings of an OpenAI-compatible endpoint, secrets from the env.

A value may name environment variables as `${NAME}` (anywhere in it: "Bearer ${TOKEN}"); they
are read when the provider is made, never written back: the config, the run dir, the log and
`models --explain` keep the `${NAME}` spelling, and every message masks the values read (as it
masks the key). Neither table is part of a job's id: like the key, they say how the endpoint is
reached, not what the model is asked, so adding a gateway token to a config resends nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError

__all__ = ["Extras", "endpoint_extras", "expand", "ENV_REF"]

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Header names whose value is a credential: a literal one in a config file is refused.
_SECRET_NAME = re.compile(r"auth|key|token|secret|password|cookie", re.I)


@dataclass(frozen=True, slots=True)
class Extras:
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # the values read from the environment, to be masked


def expand(value: str, env: Mapping[str, str], where: str) -> tuple[str, list[str]]:
    """`value` with each `${NAME}` replaced by env[NAME]; the values read; ConfigError if unset."""
    read: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        got = env.get(name)
        if not got:
            raise ConfigError(f"{where} names ${{{name}}}, but the environment variable {name} "
                              f"is not set; export {name}=<the value> (secrets never go in the "
                              "config)")
        read.append(got)
        return got

    return ENV_REF.sub(sub, value), read


def _table(cfg: ModelConfig, name: str, env: Mapping[str, str]) -> tuple[dict[str, str],
                                                                            list[str]]:
    out: dict[str, str] = {}
    secrets: list[str] = []
    for k, v in (cfg.settings.get(name) or {}).items():
        where = f"model {cfg.name!r}: {name}.{k}"
        if not isinstance(v, str):
            raise ConfigError(f"{where} = {v!r}: use a string (\"${{NAME}}\" for a secret)")
        if _SECRET_NAME.search(k) and not ENV_REF.search(v):
            raise ConfigError(f"{where} looks like a credential written into the config; put "
                              f'it in an environment variable and write {name}.{k} = '
                              '"${NAME}" (or "Bearer ${NAME}")')
        out[str(k)], read = expand(v, env, where)
        if read:
            secrets += [out[str(k)], *read]
    return out, secrets


def endpoint_extras(cfg: ModelConfig, env: Mapping[str, str]) -> Extras:
    """The model's extra headers and query parameters, `${NAME}`s read from `env`."""
    headers, hs = _table(cfg, "headers", env)
    query, qs = _table(cfg, "query", env)
    return Extras(headers, query, tuple(hs + qs))
