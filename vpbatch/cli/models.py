"""`vpbatch models CONFIG`: the models a config expands to, each setting with its source."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from vpbatch.config.schema import load_config
from vpbatch.sweep.explain import explain_json, render_explain

__all__ = ["models"]


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--all", "every", is_flag=True, help="Also list settings left at their built-in "
              "default.")
@click.option("--json", "as_json", is_flag=True, help="Print every setting of every model, "
              "with its source, as JSON.")
def models(config: Path, every: bool, as_json: bool) -> None:
    """Each model CONFIG expands to, its effective settings and where each came from
    (its own table, [providers.<p>], [run] or the default)."""
    cfg = load_config(config, check_env=False, check_data=False, check_urls=False)
    if as_json:
        click.echo(orjson.dumps(explain_json(cfg), option=orjson.OPT_INDENT_2).decode())
        return
    for line in render_explain(cfg, every=every):
        click.echo(line)
