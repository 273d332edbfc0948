"""Sweep configuration: the TOML file of SPEC §2 as plain dataclasses, validated on load.

The dataclasses are the contract the grid, scheduler and providers read. `load_config` parses
and validates a TOML file before any request is made; every error names the field and the fix.
Compact spellings (model lists, `[providers.<p>]` defaults) are expanded by `config.models`
first, so everything after sees one plain `ModelConfig` per model.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vpbatch.benchmark import layout
from vpbatch.benchmark.choice import ANSWER_MODES
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.config.digest import digest, normal_form
from vpbatch.config.models import LIST_KEYS, Origin, expand_models
from vpbatch.config.providers import ProviderFacts, facts_of, provider_names
from vpbatch.config.tomlvalues import coerce, describe, example, fits, kind
from vpbatch.errors import ConfigError

__all__ = [
    "RunConfig",
    "ModelConfig",
    "GridConfig",
    "LimitGroup",
    "Config",
    "MODES",
    "CHOICE_FORMATS",
    "DATASET_FILE",
    "load_config",
    "parse_config",
    "config_digest",
    "config_meaning",
    "TOP_KEYS",
    "RUN_DEFAULTS",
]

MODES = ("online", "batch")
TOP_KEYS = ("run", "models", "grids", "providers", "limits")
# How a choice-mode request asks an OpenAI-compatible server for the JSON answer:
# "json_schema" is OpenAI's structured outputs (OpenAI, OpenRouter, vLLM, Ollama, llama.cpp's
# llama-server); "json_object" is llama-cpp-python's server ({"type": "json_object", "schema"}).
CHOICE_FORMATS = ("json_schema", "json_object")

# The one file every use of a dataset dir reads first; if it is unreadable nothing else works.
DATASET_FILE = Path(layout.TAGGED)


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
    data: str | None = None  # the valueportrait dataset dir; default --data/VPBATCH_DATA/cache
    # Sharded runs: False = the models' rpm/tpm are for all shards together (each of N shards
    # paces itself at 1/N); True = each shard has limits of its own (its own key).
    limits_per_shard: bool = False
    answer: str = "text"  # "text" (the paper's free text) | "choice" (JSON, one of six phrases)
    # When a run counts as failed (exit 3), per model (README "Exit status"):
    fail_on_error: float | int = 0.05  # failed jobs tolerated: a fraction in [0, 1), or a count
    stop_after: int = 20  # failures in a row that stop a model (sweep.breaker); 0 = never
    min_rated: float = 0.95  # the share of a model's jobs that must end with a rated answer


@dataclass(slots=True)
class ModelConfig:
    name: str  # label in logs and scores
    provider: str  # a registered provider (config.providers.provider_names)
    model: str  # the provider's model id
    base_url: str | None = None
    api_key_env: str | None = None  # NAME of the env var holding the key; never the key
    rpm: float | None = None
    tpm: float | None = None
    concurrency: int = 8
    max_tokens: int | None = None  # overrides run.max_tokens (reasoning models need more)
    temperature: float | None = None  # overrides run.temperature
    seed: int | None = None  # overrides run.seed
    reasoning: bool | None = None  # None = the known-model table (providers/reasoning.py)
    timeout_connect: float = 10.0
    timeout_read: float = 120.0
    max_attempts: int = 8
    max_retry_seconds: float = 600.0
    # A 429 job is retried, attempts regardless, until refused this long (a gateway's counting
    # window, e.g. LiteLLM's calendar minute); also the window AIMD on rpm measures in.
    rate_limit_window: float = 60.0
    price_in: float | None = None  # USD per million prompt tokens, for `plan`
    price_out: float | None = None  # USD per million completion tokens
    mode: str = "online"  # "online" | "batch"
    batch_size: int | None = None  # requests per provider batch (default: the provider's cap)
    batch_poll_s: float | None = None  # seconds between polls of an open batch (default 60)
    answer: str | None = None  # "text" | "choice"; None = [run]'s (set when the config loads)
    choice_format: str = "json_schema"  # openai provider, choice mode: see CHOICE_FORMATS
    extra_body: dict[str, Any] = field(default_factory=dict)  # passed through to the body
    extra_body_remove: list[str] = field(default_factory=list)  # body keys to drop ("a.b")
    sim: dict[str, Any] = field(default_factory=dict)  # simulated respondent settings
    personas: list[str] | str | None = None  # per-model override of [grids]
    steering: list[str] | str | None = None
    limit_group: str | None = None  # the [limits.NAME] this model shares with others
    # What a misbehaving server may cost (README "When things go wrong"):
    max_response_bytes: int = 1 << 20  # a longer answer fails unread ("response too large")
    fail_on_error: float | int | None = None  # overrides run.fail_on_error
    stop_after: int | None = None  # overrides run.stop_after
    # The provider's own keys (ProviderFacts.settings), defaults filled in: never written as
    # `settings = ...`, but as top-level keys of the model table (e.g. deployment = "...").
    settings: dict[str, Any] = field(default_factory=dict)
    min_rated: float | None = None  # overrides run.min_rated


@dataclass(slots=True)
class LimitGroup:
    """`[limits.NAME]`: one budget its member models share (one account, one server)."""

    rpm: float | None = None
    tpm: float | None = None
    concurrency: int | None = None  # None: the members' concurrency summed (AIMD still shared)


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
    text: str = ""  # the TOML as read: copied into the run dir
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)  # [providers.<p>]
    origins: dict[str, Origin] = field(default_factory=dict)  # model name -> where written
    limits: dict[str, LimitGroup] = field(default_factory=dict)  # [limits.NAME]


# Numeric bounds: (field, lower bound, inclusive?). Zero rpm or concurrency would hang a sweep.
_POSITIVE = ("rpm", "tpm", "concurrency", "max_tokens", "max_attempts", "repeats", "items",
             "timeout_connect", "timeout_read", "batch_size", "batch_poll_s",
             "max_response_bytes", "rate_limit_window")
_NON_NEGATIVE = ("temperature", "price_in", "price_out", "max_retry_seconds", "seed",
                 "fail_on_error", "stop_after", "min_rated")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_config(
    path: str | Path,
    *,
    env: Mapping[str, str] = os.environ,
    check_env: bool = True,
    base_dir: Path | None = None,
    check_data: bool = True,
    check_urls: bool = True,
) -> Config:
    """Read and validate a sweep config; ConfigError (exit 2) names the field and the fix.

    `check_env=False` skips the API-key variables (`plan` needs no keys), `check_data=False`
    the dataset (`status` reads none), `check_urls=False` the base_urls (for callers that
    send nothing, or fill them in: the demo's "${SIM_URL}"). Relative paths resolve against
    `base_dir`, else the config's own directory.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{p}: cannot read the config ({exc.strerror or exc}); check the path"
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text ({exc.reason}); save the config as UTF-8") from exc
    return parse_config(
        text, source=p, env=env, check_env=check_env, base_dir=base_dir or p.parent,
        check_data=check_data, check_urls=check_urls,
    )


def parse_config(
    text: str,
    *,
    source: Path | None = None,
    env: Mapping[str, str] = os.environ,
    check_env: bool = True,
    base_dir: Path | None = None,
    check_data: bool = True,
    check_urls: bool = True,
) -> Config:
    """Validate TOML text (see `load_config`); `source` only labels the messages."""
    v = _Validator(str(source) if source is not None else "<config>")
    cfg = _build(v, text, source)
    _check_run(v, cfg.run, base_dir, env if check_data else None)
    _check_models(v, cfg, env, check_env, check_urls)
    _check_grids(v, cfg)
    return cfg


def config_meaning(text: str, *, source: Path | None = None) -> dict[str, Any]:
    """What a config means, as plain data: its expanded models and settings, normalised.

    Spelling, comments, key order, model order and keys set to their default do not change it;
    neither does where files are (no path is resolved, no environment read).
    """
    v = _Validator(str(source) if source is not None else "<config>")
    return normal_form(_build(v, text, source))


def config_digest(text: str, *, source: Path | None = None) -> str:
    """The sha256 of `config_meaning`: equal for two spellings of one sweep."""
    return digest(config_meaning(text, source=source))


def _build(v: _Validator, text: str, source: Path | None) -> Config:
    """Parse, expand and type-check into dataclasses; no files or environment are read."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{v.label}: invalid TOML ({exc}); fix the syntax there") from exc
    v.keys(doc, TOP_KEYS, "the top level")
    run_table = v.table(doc, "run")
    _misplaced_in_run(v, run_table)
    run = v.build(RunConfig, run_table, "run")
    if "models" not in doc:
        v.fail("models", "no [[models]] table", 'add one: [[models]] name = "..." provider = ...')
    raw_models = doc["models"]
    if not isinstance(raw_models, list) or not all(isinstance(t, dict) for t in raw_models):
        v.fail("models", "must be an array of tables", "write each model as a [[models]] table")
    if not raw_models:
        v.fail("models", "is empty", "add at least one [[models]] table")
    providers = _providers(v, v.table(doc, "providers"))
    models, origins = _models(v, raw_models, providers, run_table)
    for m in models:
        m.answer = run.answer if m.answer is None else m.answer
    grids = v.build(GridConfig, v.table(doc, "grids"), "grids")
    limits = _limit_groups(v, v.table(doc, "limits"))
    _check_groups(v, models, origins, limits)
    return Config(run=run, models=models, grids=grids, source=source, text=text,
                  providers=providers, origins=origins, limits=limits)


class _Validator:
    """Builds dataclasses from TOML tables; every failure is one line with field and fix."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def fail(self, where: str, problem: str, fix: str) -> typing.NoReturn:
        raise ConfigError(f"{self.label}: {where}: {problem}; {fix}")

    def table(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        t = doc.get(key, {})
        if not isinstance(t, dict):
            self.fail(key, f"must be a table, got {kind(t)}", f"write it as [{key}]")
        return t

    def keys(self, table: dict[str, Any], allowed: typing.Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for key in table:
            if key not in allowed:
                near = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {near[0]!r}?" if near else "allowed: " + ", ".join(allowed)
                # Only the key is named, never its value: a stray `api_key = "sk-..."` must not
                # be echoed into a terminal or CI log.
                self.fail(f"{where}", f"unknown key {key!r}", f"remove it ({hint})")

    def types(self, hints: dict[str, Any], table: dict[str, Any], where: str) -> None:
        for key, value in table.items():
            if not fits(value, hints[key]):
                self.fail(
                    f"{where}.{key}",
                    f"expected {describe(hints[key])}, got {kind(value)}",
                    f"write e.g. {key} = {example(hints[key])}",
                )

    def build(self, cls: type, table: dict[str, Any], where: str) -> Any:
        hints = typing.get_type_hints(cls)
        self.keys(table, hints, where)
        self.types(hints, table, where)
        missing = [f.name for f in fields(cls) if _required(f) and f.name not in table]
        if missing:
            self.fail(f"{where}.{missing[0]}", "is required", f"add {missing[0]} = ...")
        return cls(**{k: coerce(v, hints[k]) for k, v in table.items()})


def _misplaced_in_run(v: _Validator, run_table: dict[str, Any]) -> None:
    """A key [run] does not take but another table does: say which (the key, never its value)."""
    run_keys = {f.name for f in fields(RunConfig)}
    for key in run_table:
        if key in run_keys:
            continue
        if key in {f.name for f in fields(GridConfig)}:
            v.fail("run", f"{key!r} belongs in [grids], not [run]", f"move {key} under [grids]")
        if key in {f.name for f in fields(ModelConfig)}:
            v.fail("run", f"{key!r} is a model setting, not a [run] one",
                   f"put {key} in each [[models]] table, or in [providers.<provider>] to share "
                   "it among that provider's models")


# The keys a model may leave to [run]: the fields both tables have (temperature, max_tokens, ...).
RUN_DEFAULTS = tuple(f.name for f in fields(ModelConfig) if f.name in
                     {g.name for g in fields(RunConfig)})
_IDENTITY = ("name", "provider", "model")  # each model says these itself


def _providers(v: _Validator, table: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The `[providers.<p>]` tables: defaults for that provider's models, checked as written."""
    hints = typing.get_type_hints(ModelConfig)
    shared = [k for k in hints if k not in _IDENTITY]
    for p, t in table.items():
        where = f"providers.{p}"
        facts = facts_of(p)
        if facts is None:
            names = provider_names()
            near = difflib.get_close_matches(p, names, n=1)
            hint = f"did you mean [providers.{near[0]}]?" if near else "use one of " + \
                ", ".join(names)
            v.fail(where, f"unknown provider {p!r}", hint)
        if not isinstance(t, dict):
            v.fail(where, f"must be a table, got {kind(t)}", f"write it as [{where}]")
        for key in _IDENTITY:
            if key in t:
                v.fail(where, f"cannot set {key!r}", f"set {key} in each [[models]] table (a "
                       "provider table holds the defaults its models share)")
        own = {x.name: x.type for x in facts.settings}
        v.keys(t, [*shared, *own], where)
        v.types({**hints, **own}, t, where)
        _check_bounds(v, t, lambda k: f"{where}.{k}")  # noqa: B023 (called right here)
    return table


def _limit_groups(v: _Validator, table: dict[str, Any]) -> dict[str, LimitGroup]:
    """The `[limits.NAME]` tables, each checked as written."""
    groups = {}
    for name, t in table.items():
        where = f"limits.{name}"
        if not isinstance(t, dict):
            v.fail(where, f"must be a table, got {kind(t)}",
                   f"write it as [{where}] with rpm, tpm and/or concurrency")
        group: LimitGroup = v.build(LimitGroup, t, where)
        if not t:
            v.fail(where, "sets no limit", "give it rpm, tpm and/or concurrency")
        _check_bounds(v, t, lambda k: f"{where}.{k}")  # noqa: B023 (called right here)
        groups[name] = group
    return groups


def _check_groups(
    v: _Validator, models: list[ModelConfig], origins: dict[str, Origin],
    groups: dict[str, LimitGroup],
) -> None:
    """Every limit_group names a [limits.NAME] table, and every such table has a member."""
    used = set()
    for m in models:
        name = m.limit_group
        if name is None:
            continue
        at = origins[m.name].at("limit_group")
        if not name:
            v.fail(at, "is empty", 'name a [limits.NAME] table, e.g. limit_group = "openrouter"')
        if name not in groups:
            near = difflib.get_close_matches(name, list(groups), n=1)
            hint = f" (or did you mean {near[0]!r}?)" if near else ""
            v.fail(at, f"names the limit group {name!r}, which has no [limits.{name}] table",
                   f"add [limits.{name}] with its rpm, tpm and/or concurrency{hint}")
        used.add(name)
    # An unused group is an error, not a warning: it is almost always a limit_group misspelt
    # or forgotten, and then the account's limit goes unenforced until the provider's 429s.
    for name in groups:
        if name not in used:
            v.fail(f"limits.{name}", "is used by no model",
                   f'set limit_group = "{name}" on the models that share it (in [[models]] or '
                   f"[providers.<p>]), or remove [limits.{name}]")


def _models(
    v: _Validator, raw: list[dict[str, Any]], providers: dict[str, dict[str, Any]],
    run_table: dict[str, Any],
) -> tuple[list[ModelConfig], dict[str, Origin]]:
    """Expand the [[models]] entries, then build one ModelConfig per model."""
    hints = _MODEL_KEYS
    for i, entry in enumerate(raw):
        where = _entry_label(i, entry)
        own = _own_keys(entry.get("provider"))
        v.keys(entry, [*hints, *LIST_KEYS, *own], where)
        v.types({**hints, **own},
                {k: x for k, x in entry.items() if k not in ("model", *LIST_KEYS)}, where)
    models: list[ModelConfig] = []
    origins: dict[str, Origin] = {}
    for table, origin in expand_models(raw, providers, v.fail):
        m = _model(v, table, origin)
        for key in RUN_DEFAULTS:
            origin.sources.setdefault(key, "run" if key in run_table else "default")
        models.append(m)
        origins[m.name] = origin
    return models, origins


_MODEL_KEYS = {k: t for k, t in typing.get_type_hints(ModelConfig).items() if k != "settings"}


def _own_keys(provider: Any) -> dict[str, Any]:
    """A provider's extra model keys and their types ({} for an unknown provider)."""
    facts = facts_of(provider) if isinstance(provider, str) else None
    return {x.name: x.type for x in facts.settings} if facts else {}


def _entry_label(i: int, entry: dict[str, Any]) -> str:
    """`models[3] (gpt-4o)`, or `models[3] (a/x and 4 more)` for a list entry."""
    ids = entry.get("model")
    if isinstance(ids, list) and ids:
        first = ids[0].get("id") if isinstance(ids[0], dict) else ids[0]
        more = f" and {len(ids) - 1} more" if len(ids) > 1 else ""
        return f"models[{i}] ({first}{more})"
    name = entry.get("name", ids)
    return f"models[{i}]" + (f" ({name})" if isinstance(name, str) else "")


def _model(v: _Validator, table: dict[str, Any], origin: Origin) -> ModelConfig:
    facts = facts_of(table.get("provider", ""))
    if facts and facts.model_default and "model" not in table:
        table = {**table, "model": facts.model_default}  # e.g. the simulator needs no id
    own = {x.name: x for x in facts.settings} if facts else {}
    settings = {k: x.default for k, x in own.items()}
    settings.update({k: table[k] for k in own if k in table})
    table = {k: x for k, x in table.items() if k not in own and k != "settings"}
    m: ModelConfig = v.build(ModelConfig, table, origin.where)
    m.settings = settings
    if m.api_key_env is None and facts and facts.key_env_for:
        m.api_key_env = facts.key_env_for(settings)
    if m.api_key_env is None and m.base_url is None and facts:
        m.api_key_env = facts.key_env
    return m


def _check_run(
    v: _Validator, run: RunConfig, base: Path | None, env: Mapping[str, str] | None
) -> None:
    if not run.name or "/" in run.name or run.name in (".", ".."):
        v.fail("run.name", f"{run.name!r} cannot name a run dir", 'use e.g. name = "overnight"')
    _check_bounds(v, _values(run), lambda k: f"run.{k}")
    if not run.versions:
        v.fail("run.versions", "is empty", 'list at least one, e.g. versions = ["v1"]')
    for ver in run.versions:
        if ver not in VERSIONS:
            v.fail("run.versions", f"unknown version {ver!r}", "use some of " + ", ".join(VERSIONS))
    if len(set(run.versions)) != len(run.versions):
        v.fail("run.versions", "lists a version twice", "list each version once")
    if run.answer not in ANSWER_MODES:
        v.fail("run.answer", f"unknown answer mode {run.answer!r}", 'use "text" or "choice"')
    if run.conditions_file is not None:
        run.conditions_file = str(_resolve(run.conditions_file, base))
        if not Path(run.conditions_file).is_file():
            v.fail("run.conditions_file", f"{run.conditions_file} does not exist",
                   "point it at a personas.toml, or remove it to use configs/personas.toml")
    if run.data is not None:
        run.data = str(_resolve(run.data, base))
    if env is None:
        return  # the caller reads no dataset
    if run.data is not None:
        _check_dataset(v, "run.data", Path(run.data))
    elif env.get("VPBATCH_DATA"):
        _check_dataset(v, "VPBATCH_DATA", Path(env["VPBATCH_DATA"]))


def _check_dataset(v: _Validator, where: str, root: Path) -> None:
    target = root / DATASET_FILE
    try:
        with open(target, "rb") as f:
            f.read(1)
    except OSError as exc:
        v.fail(where, f"cannot read the dataset at {target} ({exc.strerror or exc})",
               "point it at a valueportrait checkout, or run `vpbatch data fetch` and remove it")


def _check_models(
    v: _Validator, cfg: Config, env: Mapping[str, str], check_env: bool, check_urls: bool,
) -> None:
    # Names are unique already: the expansion checks them across entries (config.models).
    for m in cfg.models:
        o = cfg.origins[m.name]
        if not m.name:
            v.fail(o.at("name"), "is empty", 'give each model a label, e.g. name = "gpt-4o"')
        facts = _facts(v, m, o)
        if m.mode not in MODES:
            v.fail(o.at("mode"), f"unknown mode {m.mode!r}", 'use "online" or "batch"')
        # (The simulator's batch mode is stopped at run time instead, as a test of that stop.)
        if m.mode == "batch" and not facts.batch and not facts.keyless:
            why = facts.extra.get("no_batch_why", "")
            v.fail(o.at("mode"), f"{m.provider} has no batch API{why}", 'use mode = "online"')
        _check_answer(v, m, o, facts)
        if facts.check is not None and (bad := facts.check(m)) is not None:
            v.fail(o.at(bad[0]), bad[1], bad[2])
        _check_bounds(v, _values(m), o.at)
        if m.rate_limit_window > m.max_retry_seconds:
            v.fail(o.at("rate_limit_window"), f"{m.rate_limit_window:g} s is longer than "
                   f"max_retry_seconds = {m.max_retry_seconds:g}",
                   "raise max_retry_seconds to at least the window, or shorten the window")
        if m.base_url is not None and check_urls and not facts.keyless:
            # (The simulated respondent answers in-process: its base_url is never used.)
            _check_base_url(v, m.base_url, o.at("base_url"))
        _check_key_env(v, m, o, env, check_env)


def _facts(v: _Validator, m: ModelConfig, o: Origin) -> ProviderFacts:
    facts = facts_of(m.provider)
    if facts is None:
        v.fail(o.at("provider"), f"unknown provider {m.provider!r}",
               "use one of " + ", ".join(provider_names()) + " (any OpenAI-compatible "
               'server: provider = "openai" with base_url)')
    return facts


def _check_answer(v: _Validator, m: ModelConfig, o: Origin, facts: ProviderFacts) -> None:
    if m.answer not in ANSWER_MODES:
        v.fail(o.at("answer"), f"unknown answer mode {m.answer!r}", 'use "text" or "choice"')
    if m.choice_format not in CHOICE_FORMATS:
        v.fail(o.at("choice_format"), f"unknown choice format {m.choice_format!r}",
               "use " + " or ".join(f'"{f}"' for f in CHOICE_FORMATS))
    if m.choice_format not in facts.choice_formats:
        v.fail(o.at("choice_format"), f"provider {m.provider!r} takes only json_schema",
               "remove choice_format (json_object is for llama-cpp-python's server, "
               'provider = "openai" with base_url)')


def _check_base_url(v: _Validator, url: str, where: str) -> None:
    """A URL a request can go to: http(s), a host, a port in 1-65535 when one is written.

    Caught here, before the sweep: aiohttp would take "http://127.0.0.1:/v1" and fail each
    request as a connection error, retried for nothing.
    """
    fix = 'write it as http(s)://host[:port]/path, e.g. "http://127.0.0.1:8000/v1"'
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        v.fail(where, f"{url!r} is not a valid URL ({exc})", fix)
    if parts.username is not None or parts.password is not None:
        # Not echoed: the part before "@" is a credential, and credentials live in env vars.
        v.fail(where, "holds a user name or password before '@'",
               "remove it and give the key through api_key_env (keys never go in the config)")
    if parts.scheme not in ("http", "https"):
        got = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        v.fail(where, f"{url!r} has {got}", fix)
    if not parts.hostname:
        v.fail(where, f"{url!r} has no host", fix)
    if parts.netloc.endswith(":") or port == 0:
        v.fail(where, f"{url!r} has an empty or zero port", fix + ", or leave the port out")
    if parts.query or parts.fragment or any(c.isspace() for c in url):
        v.fail(where, f"{url!r} has a query, a fragment or a space",
               "give only the API root; vpbatch appends the endpoint path to it")


def _check_key_env(
    v: _Validator, m: ModelConfig, o: Origin, env: Mapping[str, str], check_env: bool
) -> None:
    name = m.api_key_env
    if name is None:
        return
    if not _ENV_NAME.match(name):
        # Never echo the value: if it is not a variable name it may well be the key itself.
        v.fail(o.at("api_key_env"), "is not an environment variable name",
               'give the NAME of the variable holding the key, e.g. "OPENAI_API_KEY", '
               "never the key itself")
    if check_env and not env.get(name):
        v.fail(o.at("api_key_env"), f"environment variable {name} is not set",
               f"export {name}=<your key> (keys live only in the environment), "
               "or use `vpbatch plan`, which needs no key")


def _values(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def _check_bounds(v: _Validator, values: Mapping[str, Any], at: Callable[[str], str]) -> None:
    """Numbers finite and in range; `at(key)` says where the value was written."""
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            v.fail(at(key), f"must be a finite number, got {value}",
                   f"write a number, or remove {key} for the default")
        if key in _POSITIVE and value <= 0:
            v.fail(at(key), f"must be positive, got {value}", f"set {key} above 0")
        if key in _NON_NEGATIVE and value < 0:
            v.fail(at(key), f"must not be negative, got {value}", f"set {key} >= 0")
        if key == "fail_on_error" and isinstance(value, float) and value >= 1:
            # 1.0 would read as "all may fail" or "one may fail": make the writer say which.
            v.fail(at(key), f"a fraction must be below 1, got {value}",
                   "write a fraction of the jobs (0.05) or a count as an integer (50)")
        if key == "min_rated" and value > 1:
            v.fail(at(key), f"is a share of the jobs, at most 1, got {value}",
                   "write a fraction such as 0.95 (0 turns the check off)")


def _check_grids(v: _Validator, cfg: Config) -> None:
    # Imported here: conditions imports this module for the Config types.
    from vpbatch.benchmark.conditions import load_conditions

    tables: list[tuple[str, Any, Any]] = [("grids", cfg.grids.personas, cfg.grids.steering)]
    tables += [(cfg.origins[m.name].where, m.personas, m.steering) for m in cfg.models]
    if all(not p and not s for _, p, s in tables):
        return  # vanilla only: no need to read the conditions file
    conds = load_conditions(cfg.run.conditions_file)
    for where, personas, steering in tables:
        _check_names(v, f"{where}.personas", personas, list(conds.personas), "persona")
        _check_names(v, f"{where}.steering", steering, list(conds.steering), "steering value")


def _check_names(v: _Validator, where: str, names: Any, known: list[str], what: str) -> None:
    if names is None or names == "all":
        return
    if isinstance(names, str):
        v.fail(where, f"expected a list of names or \"all\", got {names!r}",
               f'write {where.rsplit(".", 1)[-1]} = ["{names}"] or "all"')
    for name in names:
        if name not in known:
            near = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(known[:12])}…"
            v.fail(where, f"unknown {what} {name!r}", f"use a name from the conditions file "
                   f"({hint})")
    if len(set(names)) != len(names):
        v.fail(where, "lists a name twice", "list each name once")


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() or base is None else (base / p).resolve()


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING
