"""The grid: a lazy, stable stream of jobs (model × condition × version × item × repeat).

Nothing here builds a list of jobs: a 10M-job sweep costs the memory of the jobs in flight.
Each job carries its request body, built once by the model's wire (no key needed), and its id
digests that whole body plus what the body does not say (model label, provider, endpoint,
repeat): change anything sent and the jobs are new; change nothing and a resume sends nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import click

from vpbatch.benchmark.choice import CHOICE
from vpbatch.benchmark.conditions import Conditions, select_conditions, system_message
from vpbatch.benchmark.dataset import Dataset
from vpbatch.config.schema import Config, ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.log.records import job_ids
from vpbatch.providers.reasoning import table_id
from vpbatch.providers.registry import wire_for
from vpbatch.providers.spec import spec_of
from vpbatch.transport.records import ProviderError, RequestParams

__all__ = [
    "Job",
    "REASONING_MAX_TOKENS",
    "iter_model_jobs",
    "count_model_jobs",
    "parse_shard",
    "shard_of",
    "request_params",
    "is_reasoning_model",
    "n_items",
    "model_conditions",
]

# The paper's 64 tokens leave a reasoning model no room to answer after it thinks; when the
# config sets no per-model max_tokens, such a model gets this much instead. 4096 covers the
# thinking of a low/medium effort on a six-point rating (and Anthropic's 1024-token thinking
# floor with room to answer); it stays 4096 because it is in every reasoning job's body, so in
# its id: a larger default would resend every logged o-series job.
REASONING_MAX_TOKENS = 4096


@dataclass(slots=True)
class Job:
    job_id: str
    model: str  # the config's label
    condition: str  # "vanilla" | "persona:<group>=<value>" | "steer:<Dimension>"
    version: str
    item: int  # row in the dataset
    portrait_id: int
    option_id: int
    repeat: int
    messages: list[dict[str, str]]
    params: RequestParams
    body: dict[str, Any]  # the request body exactly as sent (no key): what the id digests


def model_conditions(cfg: Config, m: ModelConfig, conds: Conditions) -> list[str]:
    """The conditions one model runs: its own grids, else [grids]; vanilla always first."""
    personas = m.personas if m.personas is not None else cfg.grids.personas
    steering = m.steering if m.steering is not None else cfg.grids.steering
    return select_conditions(personas, steering, conds)


def is_reasoning_model(m: ModelConfig) -> bool:
    """Whether the model reasons unasked: the known-model table (ProviderSpec.reasoning)."""
    return spec_of(m).reasoning.is_reasoning(table_id(m))


def request_params(cfg: Config, m: ModelConfig) -> RequestParams:
    """The model's request settings: its own overrides, else the [run] defaults."""
    reasoning = m.reasoning if m.reasoning is not None else is_reasoning_model(m)
    max_tokens = m.max_tokens if m.max_tokens is not None else cfg.run.max_tokens
    if reasoning and m.max_tokens is None:
        max_tokens = max(max_tokens, REASONING_MAX_TOKENS)
    return RequestParams(
        temperature=m.temperature if m.temperature is not None else cfg.run.temperature,
        max_tokens=max_tokens,
        seed=m.seed if m.seed is not None else cfg.run.seed,
        reasoning=reasoning,
    )


def n_items(cfg: Config, ds: Dataset) -> int:
    """How many items the sweep covers: run.items (the first N) capped by the dataset."""
    return ds.n_items if cfg.run.items is None else min(cfg.run.items, ds.n_items)


def shard_of(jid: str, n: int) -> int:
    """The zero-based shard of a job: its id is a sha256 prefix, so this is a uniform split."""
    return int(jid[:12], 16) % n


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" (1-based, as users count machines) -> (K-1, N)."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if m is None or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise click.BadParameter(
            f"{text!r} is not K/N with 1 <= K <= N; e.g. --shard 2/4 runs the second quarter",
            param_hint="--shard",
        )
    return int(m.group(1)) - 1, int(m.group(2))


def iter_model_jobs(
    cfg: Config,
    m: ModelConfig,
    ds: Dataset,
    conds: Conditions,
    *,
    shard: tuple[int, int] | None = None,
) -> Iterator[Job]:
    """One model's jobs, item-major so the first minutes cover every condition and version."""
    # Imported late: the prompt module reads template files; the grid module stays cheap.
    from vpbatch.benchmark.prompts import item_options, item_prompt

    params = request_params(cfg, m)
    # Choice mode: each prompt's own phrase order is its answer's enum (reversed versions differ).
    choice: dict[tuple[str, ...], RequestParams] = {}
    conditions = model_conditions(cfg, m, conds)
    systems = [system_message(c, conds) for c in conditions]
    versions = list(cfg.run.versions)
    wire = wire_for(m)
    where = {"model": m.name, "provider": m.provider, "url": wire.url}
    for i in range(n_items(cfg, ds)):
        pid, oid = int(ds.portrait_id[i]), int(ds.option_id[i])
        prompts = [item_prompt(ds, v, i) for v in versions]
        asks = [params] * len(versions)
        if m.answer == CHOICE:
            asks = [choice.setdefault(o, replace(params, choice=o))
                    for o in (item_options(ds, v, i) for v in versions)]
        for cond, system in zip(conditions, systems, strict=True):
            sys_msg = [] if system is None else [{"role": "system", "content": system}]
            for version, prompt, ask in zip(versions, prompts, asks, strict=True):
                messages = [*sys_msg, {"role": "user", "content": prompt}]
                try:
                    body = wire.body(messages, ask)
                except ProviderError as exc:  # the config asks for a request no API takes
                    raise ConfigError(f"model {m.name!r}: {exc.message}") from None
                ids = job_ids({**where, "body": body}, cfg.run.repeats)
                for r, jid in enumerate(ids):
                    if shard is not None and shard_of(jid, shard[1]) != shard[0]:
                        continue
                    yield Job(jid, m.name, cond, version, i, pid, oid, r, messages, ask, body)


def count_model_jobs(
    cfg: Config,
    m: ModelConfig,
    ds: Dataset,
    conds: Conditions,
    *,
    shard: tuple[int, int] | None = None,
) -> int:
    """How many jobs `iter_model_jobs` yields: arithmetic, or one pass over the ids if sharded."""
    if shard is None or shard[1] == 1:
        per_item = len(model_conditions(cfg, m, conds)) * len(cfg.run.versions)
        return n_items(cfg, ds) * per_item * cfg.run.repeats
    return sum(1 for _ in iter_model_jobs(cfg, m, ds, conds, shard=shard))
