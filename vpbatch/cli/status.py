"""`vpbatch status RUN_DIR`: per model and condition, what is done, failed and left."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import click
import orjson

from vpbatch.log.adapted import adapted_lines
from vpbatch.log.rundir import open_run_dir
from vpbatch.sweep.shards import resolve_shard
from vpbatch.sweep.status import collect_status, render_status

__all__ = ["status"]


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--shard", default=None, metavar="K/N|auto",
              help="Totals for this machine's share of the grid.")
@click.option("--data", default=None, help="Value Portrait data dir (needed with --shard).")
@click.option("--json", "as_json", is_flag=True, help="Print the cells as JSON.")
def status(run_dir: Path, shard: str | None, data: str | None, as_json: bool) -> None:
    """Per model and condition: done/failed/total, parse failures, tokens and cost so far."""
    rd = open_run_dir(run_dir)
    cfg = rd.load_config() if rd.config_path.exists() else None
    cells = collect_status(rd.log_path, cfg, shard=resolve_shard(shard, os.environ),
                           data=data)
    if as_json:
        click.echo(orjson.dumps([asdict(c) for c in cells], option=orjson.OPT_INDENT_2).decode())
        return
    name = cfg.run.name if cfg else rd.path.name
    click.echo(f"run {name!r} ({rd.path})" + ("" if cfg else ": no config.toml, totals unknown"))
    for line in render_status(cells):
        click.echo(line)
    for line in adapted_lines(rd.path):  # a model whose server refused max_tokens/temperature
        click.echo(line)
