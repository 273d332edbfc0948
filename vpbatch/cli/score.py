"""`vpbatch score RUN_DIR`: value scores of every model × condition into RUN/scores.json."""

from __future__ import annotations

import math
from pathlib import Path

import click

from vpbatch.cli.options import analysis_options, trust_options
from vpbatch.scoring.scorer import RULES, ScoreOptions
from vpbatch.scoring.scores_file import format_table, score_run
from vpbatch.scoring.trust import format_trust, trust_of

__all__ = ["score"]


@click.command("score")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--rule", type=click.Choice(RULES), default="paper", show_default=True,
              help="paper: r>0.3 & p<0.05; authors: their score.py; absolute: |r| with reversal")
@click.option("--threshold", type=float, default=0.3, show_default=True,
              help="correlation an item needs to count for a dimension")
@click.option("--p-max", type=float, default=0.05, show_default=True,
              help="p-value cut (paper and absolute rules); 1 turns it off")
@click.option("--strict", is_flag=True, help="score the strict parser's ratings")
@analysis_options
@trust_options
def score(
    run_dir: Path, rule: str, threshold: float, p_max: float, strict: bool, n_boot: int,
    bootstrap: str, seed: int, data: Path | None, weak_min: float, replicate_min: float
) -> None:
    """Score RUN_DIR: writes RUN_DIR/scores.json and prints the values table and whether
    each profile replicates."""
    options = ScoreOptions(rule=rule, threshold=threshold, p_max=p_max, weak_min=weak_min,
                           replicate_min=replicate_min)
    doc, scores, cube = score_run(run_dir, options, strict=strict, data=data, n_boot=n_boot,
                                  seed=seed, bootstrap=bootstrap)
    alpha = {k: (math.nan if v is None else v) for k, v in doc["alpha"]["pvq"].items()}
    click.echo(format_table(scores, alpha, cube.answer_modes))
    failed = ", ".join(f"{m}: {n}" for m, n in cube.failures.items()) or "none"
    click.echo("\n" + format_trust(trust_of(doc), weak_min, replicate_min))
    click.echo(f"\n{cube.n_ok} answers scored, {cube.n_failed} failed or unparsed ({failed})")
    note = doc["human_percentile"]["note"]
    if note:
        click.echo(f"human percentiles are null: {note}")
    click.echo(f"rule {rule}; wrote {Path(run_dir) / 'scores.json'}")
