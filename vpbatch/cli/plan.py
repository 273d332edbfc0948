"""`vpbatch plan CONFIG`: what a sweep will send and cost, before a single request is made."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
import orjson

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.cli.keys import check_keys as check_keys_set
from vpbatch.cli.keys import keys_ok
from vpbatch.config.schema import load_config
from vpbatch.sweep.explain import explain_json, render_explain
from vpbatch.sweep.grid import n_items
from vpbatch.sweep.plan import plan_config, render_groups, render_plan, render_reasoning
from vpbatch.sweep.shards import describe_limits, resolve_shard, shard_limits

__all__ = ["plan"]


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", "data", default=None, help="Value Portrait data dir (else run.data, "
              "VPBATCH_DATA or the fetched cache).")
@click.option("--shard", default=None, metavar="K/N|auto",
              help="Plan only this machine's share of the grid, at its share of the limits.")
@click.option("--check-keys", is_flag=True, help="Also check each model's API key variable "
              "is set (a pre-flight for `run`).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--explain", is_flag=True, help="Also list each model the config expands to, its "
              "settings and where each came from (as `vpbatch models`).")
def plan(config: Path, data: str | None, shard: str | None, check_keys: bool,
         as_json: bool, explain: bool) -> None:
    """Jobs, requests, estimated tokens, cost and time of a sweep; needs no API key."""
    # The keys are checked apart from the config: every missing one is named at once.
    cfg = load_config(config, check_env=False)
    if check_keys:
        check_keys_set(cfg)
    shard_t = resolve_shard(shard, os.environ)
    ds = load_dataset(data or cfg.run.data)
    limits = describe_limits(cfg, shard_t)
    written = cfg  # --explain shows the config as written, before a shard's share of limits
    cfg = shard_limits(cfg, shard_t)
    plans = plan_config(cfg, ds, load_conditions(cfg.run.conditions_file), shard=shard_t)
    where = f", shard {shard_t[0] + 1}/{shard_t[1]}" if shard_t else ""
    if as_json:
        doc: dict[str, Any] = {
            "run": cfg.run.name, "shard": where.removeprefix(", shard ") or None,
            "limits_per_shard": cfg.run.limits_per_shard,
            "models": [{**asdict(p), "rpm": m.rpm, "tpm": m.tpm, "limit_group": m.limit_group}
                       for p, m in zip(plans, cfg.models, strict=True)],
            "limit_groups": {name: asdict(g) for name, g in cfg.limits.items()}}
        if explain:
            doc["explain"] = explain_json(written)
        click.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        if check_keys:
            click.echo(keys_ok(cfg), err=True)  # stdout is the JSON document
        return
    click.echo(f"plan for run {cfg.run.name!r} ({config}{where}): "
               f"{len(cfg.run.versions)} versions × {n_items(cfg, ds)} items × "
               f"{cfg.run.repeats} repeat(s) per condition")
    for line in [*render_plan(plans), *render_groups(cfg, plans), *render_reasoning(plans)]:
        click.echo(line)
    if limits is not None:
        click.echo(limits)
    click.echo("tokens are estimates (characters/4 + message overhead); cost is an upper bound "
               "(every answer at max_tokens; batch mode at half price); time is the least the "
               "rpm/tpm limits allow.")
    if explain:
        click.echo("")
        for line in render_explain(written):
            click.echo(line)
    if check_keys:
        click.echo(keys_ok(cfg))
