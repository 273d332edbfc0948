"""Whether a model's run counts as a success: its failures against `fail_on_error`.

Like Inspect AI's `fail_on_error`: a number below 1 is a fraction of the model's jobs, an
integer a count. A model fails the run (exit 3) when more of its jobs are logged as failed
than that allows, counting the log as it stands (earlier runs' failures too), so a resume that
sends nothing still says whether the sweep is good.
"""

from __future__ import annotations

import math

from vpbatch.config.schema import ModelConfig, RunConfig

__all__ = ["fail_on_error", "allowed_failures", "beyond_tolerance"]


def fail_on_error(run: RunConfig, m: ModelConfig) -> float | int:
    """The model's tolerance: its own, else the run's."""
    return m.fail_on_error if m.fail_on_error is not None else run.fail_on_error


def allowed_failures(limit: float | int, total: int) -> int:
    """How many of `total` jobs may fail: a count as is, a fraction of the total (floored)."""
    if isinstance(limit, float):
        return math.floor(limit * total + 1e-9)  # 0.07 * 100 is 7.000000000000001
    return limit


def beyond_tolerance(failed: int, total: int, limit: float | int) -> str | None:
    """Why `failed` of `total` is too many under `limit`, or None when it is within."""
    allowed = allowed_failures(limit, total)
    if failed <= allowed:
        return None
    return (f"{failed} of {total} jobs failed, more than fail_on_error = {limit:g} allows "
            f"({allowed})")
