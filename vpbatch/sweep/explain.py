"""What a config expands to: each model's effective settings and where each came from
(`vpbatch models`, `vpbatch plan --explain`).

A setting's source is one of: `model` (its own [[models]] table or inline table),
`providers.<p>` (the provider's defaults table), `run` ([run]), `grids` ([grids]), `default`
(built in), or how vpbatch worked it out (derived from the id, the known-model table).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from vpbatch.config.models import Origin
from vpbatch.config.schema import RUN_DEFAULTS, Config, ModelConfig
from vpbatch.sweep.grid import REASONING_MAX_TOKENS, is_reasoning_model, request_params

__all__ = ["Setting", "ModelView", "GroupView", "explain", "limit_groups", "render_explain",
           "explain_json"]

DEFAULT = "default"
# Shown even when built in: they shape requests, or decide when a model stops or fails.
_ALWAYS = ("provider", "model", *RUN_DEFAULTS)


@dataclass(slots=True)
class Setting:
    key: str
    value: Any
    source: str


@dataclass(slots=True)
class ModelView:
    name: str
    entry: int  # the index of the [[models]] table it was written in
    where: str  # that table, and the id in it: `models[0].model[3] (gpt-4o)`
    settings: list[Setting]

    def shown(self, every: bool) -> list[Setting]:
        """The settings worth a line: all of them, or those not left at the built-in default."""
        return [s for s in self.settings if every or s.source != DEFAULT or s.key in _ALWAYS
                or (s.key == "api_key_env" and s.value is not None)]


@dataclass(slots=True)
class GroupView:
    """A limit group: its shared limits and the models that draw on them."""

    name: str
    rpm: float | None
    tpm: float | None
    concurrency: int  # the shared AIMD cap's ceiling
    concurrency_source: str  # "limits.<name>", or "members' sum"
    members: list[str]  # online members: they share the limits
    batch: list[str]  # batch members: named, but a batch is not paced by client limits


def limit_groups(cfg: Config) -> list[GroupView]:
    """Every [limits.NAME] group with its members (the engine's `group_limits`, described)."""
    out = []
    for name, g in cfg.limits.items():
        members = [m for m in cfg.models if m.limit_group == name]
        online = [m for m in members if m.mode != "batch"]
        summed = sum(m.concurrency for m in online)
        out.append(GroupView(
            name, g.rpm, g.tpm, g.concurrency or summed,
            f"limits.{name}" if g.concurrency else "members' sum",
            [m.name for m in online], [m.name for m in members if m.mode == "batch"]))
    return out


def explain(cfg: Config) -> list[ModelView]:
    """Every model's settings with their sources."""
    origins = [_origin(cfg, i, m) for i, m in enumerate(cfg.models)]
    return [ModelView(m.name, o.entry, o.where, _settings(cfg, m, o))
            for m, o in zip(cfg.models, origins, strict=True)]


def _origin(cfg: Config, i: int, m: ModelConfig) -> Origin:
    # A config built in code has no origins: every key is then the model's own.
    return cfg.origins.get(m.name) or Origin(i, None, m.model, m.name)


def _settings(cfg: Config, m: ModelConfig, o: Origin) -> list[Setting]:
    params = request_params(cfg, m)
    out = []
    for f in fields(m):
        key, value = f.name, getattr(m, f.name)
        source = o.sources.get(key, DEFAULT)
        if key == "settings":  # the provider's own keys (ProviderSpec.settings), one row each
            out += [Setting(k, x, o.sources.get(k, DEFAULT)) for k, x in value.items()]
            continue
        if key == "name" and not o.named:
            source = "derived from the id"
        elif key in RUN_DEFAULTS and value is None:
            value = getattr(params, key, getattr(cfg.run, key))
            if key == "max_tokens" and params.reasoning and value == REASONING_MAX_TOKENS:
                source = f"reasoning model (at least {REASONING_MAX_TOKENS})"
        elif key == "reasoning" and value is None:
            value = is_reasoning_model(m)
            source = "known-model table" if value else DEFAULT
        elif key in ("personas", "steering") and value is None:
            value = getattr(cfg.grids, key)
            source = "grids" if value else DEFAULT
        out.append(Setting(key, value, source))
    return out


def _toml(value: Any) -> str:
    """A value as it would be written in the config."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) or abs(value) >= 1e16 else f"{value:.1f}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(x) for x in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_toml(x)}" for k, x in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return str(value)


def render_explain(cfg: Config, *, every: bool = False) -> list[str]:
    """The explanation as text lines: a block per model."""
    views = explain(cfg)
    entries = len({v.entry for v in views})
    tables = ", ".join(f"[providers.{p}]" for p in cfg.providers) or "no [providers.*] table"
    lines = [f"{len(views)} models from {entries} [[models]] table(s); defaults from {tables}",
             "source: model = its own table, providers.<p> = [providers.<p>], run = [run], "
             "grids = [grids], default = built in" + ("" if every else " (built-in defaults "
                                                       "not listed; --all lists them)")]
    # The name heads its block; its own row would only repeat it.
    shown = [(v, [s for s in v.shown(every) if s.key != "name"]) for v in views]
    kw = max(len(s.key) for _, ss in shown for s in ss)
    vw = min(40, max(len(_toml(s.value)) for _, ss in shown for s in ss))
    for v, ss in shown:
        derived = v.settings[0].source != "model"  # fields(ModelConfig) starts with name
        lines += ["", f"{v.name}  ← {v.where}" + ("; named after the id" if derived else "")]
        lines += [f"  {s.key.ljust(kw)}  {_toml(s.value).ljust(vw)}  {s.source}" for s in ss]
    return lines + _render_groups(limit_groups(cfg))


def _render_groups(groups: list[GroupView]) -> list[str]:
    """A block per limit group: what its members share, on top of their own limits."""
    if not groups:
        return []
    lines = ["", f"{len(groups)} limit group(s): members share these limits, and each keeps "
             "its own"]
    for g in groups:
        rpm = "no rpm" if g.rpm is None else f"rpm {g.rpm:,.6g}"
        tpm = "no tpm" if g.tpm is None else f"tpm {g.tpm:,.9g}"
        lines += ["", f"[limits.{g.name}]  {rpm}, {tpm}, concurrency {g.concurrency} "
                  f"({g.concurrency_source}, adaptive)",
                  f"  members ({len(g.members)}): " + (", ".join(g.members) or "none online")]
        if g.batch:
            lines.append(f"  batch mode, not paced by the group ({len(g.batch)}): "
                         + ", ".join(g.batch))
    return lines


def explain_json(cfg: Config) -> dict[str, Any]:
    """The explanation as plain data: every setting of every model."""
    return {
        "models": [{"name": v.name, "entry": v.entry, "where": v.where,
                    "settings": {s.key: {"value": s.value, "source": s.source}
                                 for s in v.settings}} for v in explain(cfg)],
        "limit_groups": [asdict(g) for g in limit_groups(cfg)],
    }
