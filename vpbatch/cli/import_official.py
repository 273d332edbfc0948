"""`vpbatch import-official OUTPUTS_DIR --run-dir RUN`: the authors' recorded answers as a run."""

from __future__ import annotations

from pathlib import Path

import click

from vpbatch.log.importer import import_official as run_import

__all__ = ["import_official"]


@click.command("import-official")
@click.argument("outputs_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--run-dir", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run dir to create or extend; records already in its log are not repeated.")
@click.option("--skip-bad", is_flag=True,
              help="Report unreadable files and import the rest (default: import nothing).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Processes decoding files in parallel (default: min(2, CPUs)).")
def import_official(outputs_dir: Path, run_dir: Path, skip_bad: bool, workers: int | None) -> None:
    """Import the authors' recorded answers into a run dir.

    Reads every <provider>/<model>_<version>_results.json[.xz] under OUTPUTS_DIR (the data's
    lm_evaluation/outputs/final: 33 models) into RUN_DIR's log, to score or report like a run.
    """
    s = run_import(outputs_dir, run_dir, skip_bad=skip_bad, workers=workers)
    for path, problem in s.bad:
        click.echo(f"skipped bad file {path}: {problem}", err=True)
    click.echo(
        f"imported {s.files} files, {s.records} records of {len(s.models)} models into "
        f"{run_dir} in {s.seconds:.1f} s: {s.written} new, {s.already} already in the log; "
        f"{s.failed} without an answer, {s.unparsed} answers the official parser could not score"
    )
