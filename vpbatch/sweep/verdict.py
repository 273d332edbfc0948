"""Whether a model's run counts as a success: its failures against `fail_on_error`, its rated
share against `min_rated`.

Like Inspect AI's `fail_on_error`: a number below 1 is a fraction of the model's jobs, an
integer a count. A model fails the run (exit 3) when more of its jobs are logged as failed
than that allows, counting the log as it stands (earlier runs' failures too), so a resume that
sends nothing still says whether the sweep is good. An answer neither parser can rate counts
as a failure here: it measured nothing. `min_rated` then asks the same from the other side:
the share of the model's jobs that ended with a rated answer.
"""

from __future__ import annotations

import math

from vpbatch.config.schema import ModelConfig, RunConfig

__all__ = ["fail_on_error", "min_rated", "allowed_failures", "beyond_tolerance",
           "below_min_rated"]


def fail_on_error(run: RunConfig, m: ModelConfig) -> float | int:
    """The model's tolerance: its own, else the run's."""
    return m.fail_on_error if m.fail_on_error is not None else run.fail_on_error


def min_rated(run: RunConfig, m: ModelConfig) -> float:
    """The share of rated answers the model must reach: its own, else the run's."""
    return m.min_rated if m.min_rated is not None else run.min_rated


def allowed_failures(limit: float | int, total: int) -> int:
    """How many of `total` jobs may fail: a count as is, a fraction of the total (floored)."""
    if isinstance(limit, float):
        return math.floor(limit * total + 1e-9)  # 0.07 * 100 is 7.000000000000001
    return limit


def beyond_tolerance(
    failed: int, total: int, limit: float | int, unrated: int = 0
) -> str | None:
    """Why `failed` (plus `unrated` answers) of `total` is too many under `limit`, or None."""
    allowed = allowed_failures(limit, total)
    if failed + unrated <= allowed:
        return None
    if not unrated:
        return (f"{failed} of {total} jobs failed, more than fail_on_error = {limit:g} allows "
                f"({allowed})")
    return (f"{failed + unrated} of {total} jobs failed or came back unrated ({failed} failed, "
            f"{unrated} unrated), more than fail_on_error = {limit:g} allows ({allowed})")


def below_min_rated(rated: int, total: int, limit: float) -> str | None:
    """Why a finished model's rated share is too low under `limit`, or None when it is not."""
    if total <= 0 or rated >= limit * total - 1e-9:
        return None
    return (f"rated share {rated / total:.1%} ({rated} of {total} jobs have a rated answer) "
            f"is below min_rated = {limit:g}")
