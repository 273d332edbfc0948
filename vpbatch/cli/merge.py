"""`vpbatch merge OUT_DIR IN_DIR...`: shard run dirs of one config become one run dir."""

from __future__ import annotations

from pathlib import Path

import click

from vpbatch.log.merge import merge_run_dirs

__all__ = ["merge"]


@click.command()
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("in_dirs", nargs=-1, required=True,
                type=click.Path(file_okay=False, path_type=Path))
def merge(out_dir: Path, in_dirs: tuple[Path, ...]) -> None:
    """Merge shard run dirs (same config) into OUT_DIR: one log row per job id."""
    res = merge_run_dirs(out_dir, list(in_dirs))
    click.echo(f"merged {res.inputs} run dirs: {res.rows:,} log rows -> {res.jobs:,} jobs "
               f"({res.rows - res.jobs:,} duplicates dropped) in {out_dir}")
