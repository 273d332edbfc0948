"""`vpbatch report RUN_DIR`: report.md, a self-contained report.html and CSV exports."""

from __future__ import annotations

from pathlib import Path

import click

from vpbatch.cli.options import analysis_options, trust_options
from vpbatch.report import CSV_NAME, CSV_VERSIONS_NAME, write_report
from vpbatch.scoring.reference import REFERENCES
from vpbatch.scoring.scorer import RULES, ScoreOptions

__all__ = ["report"]


@click.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--rule", type=click.Choice(RULES), default="paper", show_default=True,
              help="which (item, dimension) pairs count (see `vpbatch score --help`)")
@analysis_options
@trust_options
@click.option("--reference", type=click.Choice(REFERENCES), default=None,
              help="add reference rows: paper = the paper's 33 recorded models, greyed (their "
              "scores from the recorded outputs, cached after the first report)")
def report(run_dir: Path, rule: str, n_boot: int, bootstrap: str, seed: int,
           data: Path | None, weak_min: float, replicate_min: float,
           reference: str | None) -> None:
    """Write RUN_DIR/report.md, report.html, scores_long.csv and scores_by_version.csv."""
    options = ScoreOptions(rule=rule, weak_min=weak_min, replicate_min=replicate_min)
    md, html = write_report(run_dir, data=data, options=options, n_boot=n_boot, seed=seed,
                            bootstrap=bootstrap, reference=reference)
    click.echo(f"wrote {md}")
    click.echo(f"wrote {html}")
    click.echo(f"wrote {md.parent / CSV_NAME} and {md.parent / CSV_VERSIONS_NAME}")
