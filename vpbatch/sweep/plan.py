"""A sweep's plan: what it will send and cost, before a single request is made."""

from __future__ import annotations

import math
from dataclasses import dataclass

import orjson

from vpbatch.benchmark.choice import CHOICE, TEXT, choice_schema
from vpbatch.benchmark.conditions import Conditions, system_message
from vpbatch.benchmark.dataset import Dataset
from vpbatch.benchmark.dims import PHRASES
from vpbatch.benchmark.tokens import PER_MESSAGE, PER_REQUEST, text_tokens
from vpbatch.config.schema import Config, ModelConfig
from vpbatch.sweep.cost import Prices
from vpbatch.sweep.grid import (
    REASONING_MAX_TOKENS,
    count_model_jobs,
    iter_model_jobs,
    model_conditions,
    n_items,
    request_params,
)

__all__ = ["ModelPlan", "plan_model", "plan_config", "render_plan", "render_groups",
           "render_reasoning"]

@dataclass(slots=True)
class ModelPlan:
    model: str
    provider: str
    mode: str
    answer: str  # "text" (the paper's free text) or "choice" (a JSON answer, one of six)
    conditions: int
    jobs: int
    requests: int
    prompt_tokens: int  # estimate (characters / 4)
    max_completion_tokens: int  # jobs × max_tokens: an upper bound
    max_tokens: int
    cost_usd: float | None  # upper bound at max completion tokens; None without prices
    minutes_rpm: float | None  # the least time the rpm limit allows (own, or its group's)
    minutes_tpm: float | None  # the least time the tpm limit allows (prompt + max_tokens)
    reasoning: bool = False  # a reasoning model: max_tokens leaves room to think
    reasoning_default: bool = False  # its max_tokens is REASONING_MAX_TOKENS (none was set)


def plan_model(
    cfg: Config, m: ModelConfig, ds: Dataset, conds: Conditions,
    *, shard: tuple[int, int] | None = None,
) -> ModelPlan:
    """Counts and estimates for one model, without building the grid."""
    from vpbatch.benchmark.prompts import item_prompt  # late: see grid.iter_model_jobs

    # The first request built: one no API takes (a bad token_field, reasoning_effort, a
    # thinking budget over max_tokens) is a ConfigError here, as it would be in `run`.
    next(iter_model_jobs(cfg, m, ds, conds), None)
    conditions = model_conditions(cfg, m, conds)
    n = n_items(cfg, ds)
    full = n * len(conditions) * len(cfg.run.versions) * cfg.run.repeats
    jobs = count_model_jobs(cfg, m, ds, conds, shard=shard)
    # tokens.prompt_tokens summed over the full grid without building it: per-item user parts ×
    # conditions + system parts × (item, version) pairs; a shard (a uniform hash split) gets its
    # share.
    user = sum(text_tokens(item_prompt(ds, v, i)) for i in range(n) for v in cfg.run.versions)
    system = 0.0
    for c in conditions:
        text = system_message(c, conds)
        system += 0.0 if text is None else text_tokens(text) + PER_MESSAGE
    per_pair = n * len(cfg.run.versions)
    # A choice request also carries its schema, which a server may show to the model.
    schema = text_tokens(orjson.dumps(choice_schema(tuple(PHRASES))).decode()) \
        if m.answer == CHOICE else 0.0
    per_repeat = (user * len(conditions) + system * per_pair
                  + per_pair * len(conditions) * (PER_MESSAGE + PER_REQUEST + schema))
    prompt_tokens = math.ceil(per_repeat * cfg.run.repeats * jobs / full) if full else 0
    params = request_params(cfg, m)
    completion = jobs * params.max_tokens
    cost = Prices.of(m).cost(prompt_tokens, completion)
    # Alone, a limit group's member goes no faster than the group allows either.
    group = cfg.limits.get(m.limit_group) if m.limit_group else None
    rpm = _tighter(m.rpm, group.rpm if group else None)
    tpm = _tighter(m.tpm, group.tpm if group else None)
    return ModelPlan(
        model=m.name, provider=m.provider, mode=m.mode, answer=m.answer or TEXT,
        conditions=len(conditions), jobs=jobs,
        requests=jobs, prompt_tokens=prompt_tokens, max_completion_tokens=completion,
        max_tokens=params.max_tokens, cost_usd=cost,
        # A batch API queues everything at once: the client limits do not pace it.
        minutes_rpm=jobs / rpm if rpm and m.mode != "batch" else None,
        minutes_tpm=(prompt_tokens + completion) / tpm if tpm and m.mode != "batch" else None,
        reasoning=params.reasoning,
        reasoning_default=params.reasoning and m.max_tokens is None
        and params.max_tokens == REASONING_MAX_TOKENS,
    )


def _tighter(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def plan_config(
    cfg: Config, ds: Dataset, conds: Conditions, *, shard: tuple[int, int] | None = None
) -> list[ModelPlan]:
    return [plan_model(cfg, m, ds, conds, shard=shard) for m in cfg.models]


def _num(x: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.1f}{suffix}"
    return f"{x:.0f}"


def _minutes(p: ModelPlan) -> str:
    if p.mode == "batch":
        return "provider's batch window (<= 24 h)"
    return _least(p.minutes_rpm, p.minutes_tpm)


def _least(minutes_rpm: float | None, minutes_tpm: float | None) -> str:
    """The longer of the two bounds, and which limit sets it."""
    limits = [(v, k) for v, k in ((minutes_rpm, "rpm"), (minutes_tpm, "tpm")) if v]
    if not limits:
        return "no limit set"
    v, k = max(limits)
    return f"{v / 60:.1f} h ({k})" if v >= 90 else f"{v:.1f} min ({k})"


def render_plan(plans: list[ModelPlan]) -> list[str]:
    """The plan as table lines, one per model and a total."""
    head = ("model", "provider", "answers", "conds", "jobs", "requests", "prompt tok",
            "max out tok", "cost ≤ USD", "time ≥ (limit)")
    rows = [head]
    for p in plans:
        cost = "no price" if p.cost_usd is None else f"{p.cost_usd:,.2f}"
        rows.append((p.model, p.provider + (" batch" if p.mode == "batch" else ""), p.answer,
                     str(p.conditions), f"{p.jobs:,}", f"{p.requests:,}", _num(p.prompt_tokens),
                     _num(p.max_completion_tokens), cost, _minutes(p)))
    costs = [p.cost_usd for p in plans if p.cost_usd is not None]
    rows.append(("total", "", "", "", f"{sum(p.jobs for p in plans):,}",
                 f"{sum(p.requests for p in plans):,}",
                 _num(sum(p.prompt_tokens for p in plans)),
                 _num(sum(p.max_completion_tokens for p in plans)),
                 f"{sum(costs):,.2f}" if costs else "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_reasoning(plans: list[ModelPlan]) -> list[str]:
    """A line per reasoning model: its output budget per request and what that costs at most."""
    lines = []
    for p in plans:
        if not p.reasoning:
            continue
        why = (f"the reasoning default ({REASONING_MAX_TOKENS}; set max_tokens to change it)"
               if p.reasoning_default else "its max_tokens")
        cost = "no price set" if p.cost_usd is None else f"≤ USD {p.cost_usd:,.2f} in all"
        lines.append(f"{p.model}: reasoning model, up to {p.max_tokens:,} output tokens per "
                     f"request, {why}: ≤ {_num(p.max_completion_tokens)} output tokens, {cost} "
                     "(thinking tokens are billed as output)")
    return lines


def render_groups(cfg: Config, plans: list[ModelPlan]) -> list[str]:
    """A line per limit group: its online members' requests together, at the group's limits."""
    by_name = {p.model: p for p in plans}
    lines = []
    for name, g in cfg.limits.items():
        members = [by_name[m.name] for m in cfg.models
                   if m.limit_group == name and m.mode != "batch"]
        requests = sum(p.requests for p in members)
        tokens = sum(p.prompt_tokens + p.max_completion_tokens for p in members)
        least = _least(requests / g.rpm if g.rpm else None, tokens / g.tpm if g.tpm else None)
        lines.append(f"limit group {name!r} ({len(members)} models online): {requests:,} "
                     f"requests together, time ≥ {least}")
    return lines
