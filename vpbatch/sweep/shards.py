"""Shards: which part of the grid this process runs, and at what share of the rate limits.

`--shard K/N` names the part; `--shard auto` reads it from the scheduler that started the
process: a Slurm job array or a Kubernetes Indexed Job. Each of N shards paces itself at 1/N
of every model's and every limit group's `rpm` and `tpm`, so N machines together keep to the
limits the config states, unless `[run] limits_per_shard = true` says each shard has limits of
its own (its own key).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TypeVar

from vpbatch.config.schema import Config, LimitGroup, ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.sweep.grid import parse_shard

__all__ = ["AUTO", "K8S_COUNT", "resolve_shard", "shard_from_env", "shard_limits",
           "describe_limits"]

_T = TypeVar("_T", ModelConfig, LimitGroup)

AUTO = "auto"
# Kubernetes sets JOB_COMPLETION_INDEX but no variable for spec.completions: the manifest sets
# this one to the same number (configs/cluster/indexed-job.yaml).
K8S_COUNT = "JOB_COMPLETIONS"


def _int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"--shard auto: ${name} is {raw!r}, not a whole number") from None


def _slurm(env: Mapping[str, str]) -> tuple[int, int]:
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    count = _int(env, "SLURM_ARRAY_TASK_COUNT")
    assert task is not None
    if count is None:
        raise ConfigError("--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT "
                          "is not (Slurm sets both for a job array); pass --shard K/N instead")
    low = _int(env, "SLURM_ARRAY_TASK_MIN")
    step = _int(env, "SLURM_ARRAY_TASK_STEP") or 1
    high = _int(env, "SLURM_ARRAY_TASK_MAX")
    low = task if low is None and count == 1 else low
    if low is None:
        raise ConfigError("--shard auto: SLURM_ARRAY_TASK_MIN is not set; an array that "
                          "starts at 1 cannot be told from one that starts at 0 without it")
    k, off = divmod(task - low, step)
    # --array=1,3,7 holds no arithmetic range: its tasks cannot know their rank from the ids.
    if off or not 0 <= k < count or (high is not None and low + (count - 1) * step != high):
        raise ConfigError(
            f"--shard auto: the Slurm array (tasks {low}..{high} step {step}, {count} tasks) is "
            "not one range; submit it as --array=0-N (or 1-N, or with a :step) so each task "
            "knows its part"
        )
    return k, count


def _kubernetes(env: Mapping[str, str]) -> tuple[int, int]:
    index = _int(env, "JOB_COMPLETION_INDEX")
    count = _int(env, K8S_COUNT)
    assert index is not None
    if count is None:
        raise ConfigError(
            f"--shard auto: JOB_COMPLETION_INDEX is set but {K8S_COUNT} is not; Kubernetes "
            f"has no variable for the count, so set {K8S_COUNT} in the Job's env to the same "
            "number as spec.completions (see configs/cluster/indexed-job.yaml)"
        )
    if not 0 <= index < count:
        raise ConfigError(f"--shard auto: JOB_COMPLETION_INDEX={index} is outside 0..{count - 1}"
                          f" ({K8S_COUNT}={count}); make {K8S_COUNT} equal spec.completions")
    return index, count


def shard_from_env(env: Mapping[str, str]) -> tuple[int, int]:
    """(zero-based index, count) from a Slurm job array or a Kubernetes Indexed Job."""
    if env.get("SLURM_ARRAY_TASK_ID"):
        return _slurm(env)
    if env.get("JOB_COMPLETION_INDEX"):
        return _kubernetes(env)
    raise ConfigError(
        "--shard auto found no scheduler: neither SLURM_ARRAY_TASK_ID (a Slurm job array, "
        "sbatch --array) nor JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) is set; run it "
        "under one of them (configs/cluster/), or pass --shard K/N"
    )


def resolve_shard(text: str | None, env: Mapping[str, str]) -> tuple[int, int] | None:
    """`--shard`'s value: None, "K/N" (1-based) or "auto" -> (zero-based index, count)."""
    if text is None or text == "":
        return None
    if text.strip().lower() == AUTO:
        return shard_from_env(env)
    return parse_shard(text)


def shard_limits(cfg: Config, shard: tuple[int, int] | None) -> Config:
    """The config this shard runs: each model's and limit group's rpm and tpm divided by the
    shard count.

    Unchanged when unsharded, or when `[run] limits_per_shard` says the limits are per shard.
    """
    if shard is None or shard[1] == 1 or cfg.run.limits_per_shard:
        return cfg
    n = shard[1]
    models = [_share(m, n) for m in cfg.models]
    groups = {name: _share(g, n) for name, g in cfg.limits.items()}
    return dataclasses.replace(cfg, models=models, limits=groups)


def _share(limited: _T, n: int) -> _T:
    """A model or limit group at 1/n of its rpm and tpm."""
    rpm, tpm = limited.rpm, limited.tpm
    return dataclasses.replace(limited, rpm=rpm / n if rpm else rpm, tpm=tpm / n if tpm else tpm)


def describe_limits(cfg: Config, shard: tuple[int, int] | None) -> str | None:
    """One line for `plan`: how this shard paces itself, or None when unsharded."""
    if shard is None:
        return None
    n = shard[1]
    every: list[ModelConfig | LimitGroup] = [*cfg.models, *cfg.limits.values()]
    limited = [x for x in every if x.rpm or x.tpm]
    if not limited:
        return f"shard {shard[0] + 1}/{n}: no rpm/tpm limit set, nothing to divide"
    if cfg.run.limits_per_shard or n == 1:
        return (f"shard {shard[0] + 1}/{n}: limits are per shard ([run] limits_per_shard = "
                "true): each shard uses the full rpm/tpm")
    return (f"shard {shard[0] + 1}/{n}: each shard paces itself at 1/{n} of every rpm/tpm "
            f"(limit groups' too), so {n} shards together keep to the config's limits (set "
            "[run] limits_per_shard = true if each shard has its own key and limits)")
