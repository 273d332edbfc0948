"""`vpbatch run CONFIG [--run-dir DIR] [--shard K/N]`: run or resume a sweep."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from vpbatch.cli.keys import check_keys, missing_keys
from vpbatch.config.schema import load_config
from vpbatch.errors import ExitCode
from vpbatch.log.rundir import RUNS_ROOT
from vpbatch.sweep.engine import DRAIN_S, resume_hint, run_sweep
from vpbatch.sweep.shards import resolve_shard

__all__ = ["run"]


@click.command(epilog="""\b
Exit status (docs/guides/overnight.md "Exit status"):
  0    every job answered, or failed within [run] fail_on_error (default 0.05
       of each model's jobs; a fraction, or an integer count)
  1    stopped by its environment: disk full, I/O error, data unreadable
  2    config or usage error; nothing was sent for it
  3    finished, but a model was stopped (its failures were systematic:
       [run] stop_after in a row, unrated answers included; a rejected key),
       failed beyond fail_on_error (unrated answers count), or ended with
       fewer rated answers than [run] min_rated (default 0.95)
  130  interrupted (Ctrl-C); 143 on SIGTERM. Run again to resume.""")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the log and results go (default: runs/<run.name>).")
@click.option("--shard", metavar="K/N|auto",
              help="Run only the K-th of N hash-split parts of the grid (merge the logs after); "
              "auto: K and N from a Slurm job array or a Kubernetes Indexed Job. Each shard "
              "paces itself at 1/N of rpm/tpm unless [run] limits_per_shard = true.")
@click.option("--force", is_flag=True,
              help="Continue a run dir made from a different config.")
@click.option("--retry-failed", is_flag=True,
              help="Send again the jobs the log records as failed.")
@click.option("--drain", type=float, default=DRAIN_S, show_default=True,
              help="Seconds a stopping run (Ctrl-C, SIGTERM) waits for in-flight answers.")
@click.option("--quiet", is_flag=True, help="No progress lines, only errors.")
def run(
    config: Path, run_dir: Path | None, shard: str | None, force: bool, retry_failed: bool,
    drain: float, quiet: bool,
) -> None:
    """Run or resume the sweep CONFIG: finished jobs are never sent again."""
    # Keys are checked per model when it starts: one missing key stops that model, not all.
    # With none of the models able to start, it is a usage error, found before the run dir.
    cfg = load_config(config, check_env=False)
    part = resolve_shard(shard, os.environ)
    missing = missing_keys(cfg)
    if missing:
        if all(any(m.name in names for names in missing.values()) for m in cfg.models):
            check_keys(cfg)  # raises: every key named, exit 2
        names = [n for ns in missing.values() for n in ns]
        click.echo(f"warning: {', '.join(missing)} not set: model(s) {', '.join(names)} will "
                   "be stopped at their start and the others run (exit 3); export the key(s) "
                   "and run again to resume them", err=True)
    try:
        summary = run_sweep(cfg, run_dir, shard=part, force=force, retry_failed=retry_failed,
                            drain=drain, progress=not quiet)
    except KeyboardInterrupt:
        # Ctrl-C outside the sweep's own handling (while loading data, or while closing):
        # nothing is in flight then, so every answer received is already in the log.
        where = run_dir if run_dir is not None else RUNS_ROOT / cfg.run.name
        click.echo(f"\ninterrupted; {resume_hint(cfg, where, part)}", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    if summary.interrupted is None:
        # One line per failing model, last on stderr: what a cron mail or CI log shows.
        for m in summary.models.values():
            if m.stopped is not None:
                left = m.total - m.done
                click.echo(f"error: model {m.name} stopped: {m.stopped} ({left} jobs not sent; "
                           "a resume sends them)", err=True)
            elif m.problem is not None:
                click.echo(f"error: model {m.name} failed: {m.problem} ({m.hint})", err=True)
    sys.exit(summary.exit_code)
