"""What one sweep shares (`SweepContext`) and what each model's runner offers it (`Runner`)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from vpbatch.benchmark.conditions import Conditions
from vpbatch.benchmark.dataset import Dataset
from vpbatch.config.schema import Config, ModelConfig
from vpbatch.log.runlog import RunLog
from vpbatch.sweep.grid import Job, count_model_jobs, iter_model_jobs
from vpbatch.sweep.progress import ModelProgress
from vpbatch.transport.retry import RetryPolicy

__all__ = ["SweepContext", "Runner"]


@dataclass(slots=True)
class SweepContext:
    """One sweep's inputs and shared resources: every model's runner is built from it."""

    config: Config
    dataset: Dataset
    conditions: Conditions
    shard: tuple[int, int] | None
    log: RunLog
    session: aiohttp.ClientSession
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)  # keys are read here
    policy: RetryPolicy | None = None  # None: each model's own from its config
    retry_failed: bool = False  # send the jobs the log records as failed again

    def jobs(self, m: ModelConfig) -> Iterator[Job]:
        """The model's job stream (its shard), lazily, afresh on every call."""
        return iter_model_jobs(self.config, m, self.dataset, self.conditions, shard=self.shard)

    def count(self, m: ModelConfig) -> int:
        return count_model_jobs(self.config, m, self.dataset, self.conditions, shard=self.shard)


class Runner(Protocol):
    """One model's way through a sweep: online requests (`Pipeline`) or batches (`BatchRunner`).

    `run` logs every job the log lacks; `stop` issues nothing more (in flight may finish);
    `abort` stops the model now and says why (a rejected key, a batch call failed for good).
    """

    @property
    def progress(self) -> ModelProgress: ...

    async def run(self, jobs: Iterable[Job]) -> None: ...

    def stop(self) -> None: ...

    def abort(self, reason: str) -> None: ...
