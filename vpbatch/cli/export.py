"""`vpbatch export RUN_DIR --format parquet|csv`: the run's tables as files, schema documented."""

from __future__ import annotations

from pathlib import Path

import click

from vpbatch.cli.options import analysis_options, trust_options
from vpbatch.report.export import FORMATS
from vpbatch.scoring.scorer import RULES

__all__ = ["export"]


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="parquet",
              show_default=True, help="parquet needs pyarrow: pip install 'vpbatch[parquet]'")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where the files go (default: RUN_DIR/export).")
@click.option("--rule", type=click.Choice(RULES), default="paper", show_default=True,
              help="which (item, dimension) pairs count (see `vpbatch score --help`)")
@click.option("--strict", is_flag=True, help="Score the strict parser's ratings.")
@analysis_options
@trust_options
def export(run_dir: Path, fmt: str, out_dir: Path | None, rule: str, strict: bool, n_boot: int,
           bootstrap: str, seed: int, data: Path | None, weak_min: float,
           replicate_min: float) -> None:
    """Write answers, scores, deltas, steering, versions, alpha and trust tables, and
    schema.json."""
    from vpbatch.api import export as export_run

    for path in export_run(run_dir, out_dir, format=fmt, rule=rule, strict=strict, boot=n_boot,
                           bootstrap=bootstrap, seed=seed, data=data,
                           weak_min=weak_min, replicate_min=replicate_min):
        click.echo(f"wrote {path}")
