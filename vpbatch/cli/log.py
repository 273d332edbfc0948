"""`vpbatch log check RUN_DIR`: the log's health, without changing anything."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from vpbatch.errors import ExitCode
from vpbatch.log.health import check_log, render_health
from vpbatch.log.rundir import open_run_dir

__all__ = ["log"]

# A damaged log is trouble from the surroundings (a disk, an edit), as errors.ExitCode has it.
CORRUPT_EXIT = ExitCode.ENVIRONMENT


@click.group()
def log() -> None:
    """Inspect a run's log."""


@log.command()
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def check(run_dir: Path) -> None:
    """Lines, valid lines, duplicated jobs, corrupt lines and a torn tail of RUN_DIR's log.

    Changes nothing and takes no lock: safe while a sweep runs. Exit status: 0 healthy
    (duplicates and a torn tail are normal after retries and crashes), 1 corrupt lines found
    (`vpbatch run` moves them aside and sends their jobs again), 2 not a run dir.
    """
    health = check_log(open_run_dir(run_dir).log_path)
    for line in render_health(health):
        click.echo(line)
    if not health.healthy:
        sys.exit(CORRUPT_EXIT)
