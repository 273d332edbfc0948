"""Options several commands share: how the analysis resamples, and where the data is."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from vpbatch.scoring.analysis import BOOTSTRAPS, CLUSTER

__all__ = ["analysis_options", "trust_options"]

F = TypeVar("F", bound=Callable[..., object])


def analysis_options(command: F) -> F:
    """--boot (as n_boot), --bootstrap, --seed and --data, as score, report and export take them."""
    for option in reversed((
        click.option("--boot", "n_boot", type=click.IntRange(min=0), default=1000,
                     show_default=True, help="bootstrap resamples for the 95% intervals "
                     "(0 = none)"),
        click.option("--bootstrap", type=click.Choice(BOOTSTRAPS), default=CLUSTER,
                     show_default=True,
                     help="cluster: resample whole queries (5 responses each); item: single items"),
        click.option("--seed", type=int, default=0, show_default=True, help="bootstrap seed"),
        click.option("--data", type=click.Path(path_type=Path), default=None,
                     help="dataset dir (default: VPBATCH_DATA or the cache)"),
    )):
        command = option(command)
    return command


def trust_options(command: F) -> F:
    """--weak-min and --replicate-min: the trust verdict's cut-offs (score, report, export)."""
    for option in reversed((
        click.option("--weak-min", type=click.FloatRange(-1, 1), default=0.4, show_default=True,
                     help="trust verdict: a profile rho below this (or undefined) does not "
                     "replicate"),
        click.option("--replicate-min", type=click.FloatRange(-1, 1), default=0.7,
                     show_default=True,
                     help="trust verdict: both profile rhos at least this replicate; else weak"),
    )):
        command = option(command)
    return command
