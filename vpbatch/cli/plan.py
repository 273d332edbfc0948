"""`vpbatch plan CONFIG`: what a sweep will send and cost, before a single request is made."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
import orjson

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.sweep.config import load_config
from vpbatch.sweep.grid import n_items, parse_shard
from vpbatch.sweep.plan import plan_config, render_plan

__all__ = ["plan"]


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data", "data", default=None, help="Value Portrait data dir (else run.data, "
              "VPBATCH_DATA or the fetched cache).")
@click.option("--shard", default=None, help="K/N: plan only this machine's share of the grid.")
@click.option("--check-keys", is_flag=True, help="Also check each model's API key variable "
              "is set (a pre-flight for `run`).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(config: Path, data: str | None, shard: str | None, check_keys: bool,
         as_json: bool) -> None:
    """Jobs, requests, estimated tokens, cost and time of a sweep; needs no API key."""
    cfg = load_config(config, check_env=check_keys)
    shard_t = parse_shard(shard) if shard else None
    ds = load_dataset(data or cfg.run.data)
    plans = plan_config(cfg, ds, load_conditions(cfg.run.conditions_file), shard=shard_t)
    if as_json:
        click.echo(orjson.dumps({"run": cfg.run.name, "shard": shard,
                                 "models": [asdict(p) for p in plans]},
                                option=orjson.OPT_INDENT_2).decode())
        return
    where = f", shard {shard}" if shard else ""
    click.echo(f"plan for run {cfg.run.name!r} ({config}{where}): "
               f"{len(cfg.run.versions)} versions × {n_items(cfg, ds)} items × "
               f"{cfg.run.repeats} repeat(s) per condition")
    for line in render_plan(plans):
        click.echo(line)
    click.echo("tokens are estimates (characters/4 + message overhead); cost is an upper bound "
               "(every answer at max_tokens; batch mode at half price); time is the least the "
               "rpm/tpm limits allow.")
