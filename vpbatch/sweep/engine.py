"""`run_sweep`: one sweep from config to log, one runner per model in one anyio task group.

A `SweepContext` holds what the sweep shares (config, data, conditions, shard, log, session);
each model gets a `Runner` from it: a `Pipeline` online, a `BatchRunner` in batch mode. Each
model streams its own jobs under its own limits, so a slow or dead model never stalls the
others. SIGINT/SIGTERM stop issuing, drain what is in flight (bounded), close the log and say
how to resume; a second signal abandons the drain. The summary judges the run: its exit code.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp
import anyio
from anyio.abc import TaskStatus

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.config.schema import Config, ModelConfig
from vpbatch.errors import ConfigError, ExitCode, VPBatchError
from vpbatch.log.adapted import load_adapted
from vpbatch.log.lock import run_dir_lock
from vpbatch.log.rundir import RUNS_ROOT, prepare_run_dir
from vpbatch.log.runlog import RunLog
from vpbatch.providers.adapt import Form
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.registry import make_provider
from vpbatch.sweep.batch import BatchOptions, BatchRunner, batch_api_for
from vpbatch.sweep.breaker import Breaker, BreakerPolicy
from vpbatch.sweep.context import Runner, SweepContext
from vpbatch.sweep.grid import Job
from vpbatch.sweep.idcheck import check_log_ids
from vpbatch.sweep.pipeline import Limits, Pipeline, group_limits, policy_for
from vpbatch.sweep.progress import ModelProgress, Progress
from vpbatch.sweep.shards import shard_limits
from vpbatch.sweep.unrated import UNRATED_PREFIX, advice_for
from vpbatch.sweep.verdict import below_min_rated, beyond_tolerance, fail_on_error, min_rated
from vpbatch.transport.retry import RetryPolicy
from vpbatch.transport.session import client_session

__all__ = ["SweepSummary", "ModelSummary", "sweep", "run_sweep", "resume_hint", "DRAIN_S"]

DRAIN_S = 30.0  # how long a stopping sweep waits for answers already asked for


@dataclass(slots=True)
class ModelSummary:
    name: str
    total: int
    done: int
    ok: int  # answered this run
    failed: int  # logged as failed this run
    skipped: int  # already in the log
    retries: int
    sent: int  # requests sent, retries included
    tokens: int
    stopped: str | None  # why the model stopped early (breaker, rejected key, config), else None
    failed_before: int = 0  # of the skipped, logged as failed by an earlier run
    fail_on_error: float | int = 0.05  # its tolerance (sweep.verdict)
    commonest: str | None = None  # this run's commonest failure, as the server put it
    unrated: int = 0  # answers neither parser can rate, this run's and earlier runs'
    rated: int = 0  # jobs of the grid with a rated answer, this run's and earlier runs'
    min_rated: float = 0.95  # the rated share it must reach (sweep.verdict)
    adapted: tuple[str, ...] = ()  # the request form learnt from its server (providers.adapt)

    @classmethod
    def of(cls, p: ModelProgress, tolerance: float | int, least: float = 0.95) -> ModelSummary:
        unrated = Counter({UNRATED_PREFIX + c: n for c, n in p.unrated_reasons.items()})
        top = (p.reasons + unrated).most_common(1)
        commonest = f"{top[0][0]} ({top[0][1]} jobs)" if top else None
        if commonest is not None and top[0][0] in unrated:  # what the model did, the fix
            cause = top[0][0].removeprefix(UNRATED_PREFIX)
            commonest += f": {advice_for(p.unrated_examples[cause])}"
        return cls(p.name, p.total, p.done, p.ok, p.failed, p.skipped, p.retries, p.sent,
                   p.tokens, p.stopped, p.failed_before, tolerance, commonest,
                   p.unrated + p.unrated_before, p.rated(), least, p.adapted)

    @property
    def problem(self) -> str | None:
        """Why this model fails the run (exit 3): it was stopped, too many jobs failed or came
        back unrated, or too few of its jobs are rated."""
        if self.stopped is not None:
            return self.stopped
        why = beyond_tolerance(self.failed + self.failed_before, self.total,
                               self.fail_on_error, self.unrated)
        if why is not None and self.commonest is not None:
            why += f"; the commonest this run: {self.commonest}"
        if why is None and self.done >= self.total:
            why = below_min_rated(self.rated, self.total, self.min_rated)
            if why is not None and self.commonest is not None:
                why += f"; the commonest this run: {self.commonest}"
        return why

    @property
    def hint(self) -> str:
        """What a resume can do about `problem` (the CLI's closing line ends with it)."""
        if self.failed + self.failed_before and not self.unrated:
            return "add --retry-failed to a resume to send them again"
        return ("an unrated answer is not asked again for the same request: change what the "
                "cause names (max_tokens, answer, the model), then run again with --force, "
                "which sends the changed requests (docs/guides/measurement-failures.md)")

    @property
    def rated_share(self) -> float | None:
        """Rated answers ÷ jobs of the grid; None for an empty grid."""
        return self.rated / self.total if self.total else None


@dataclass(slots=True)
class SweepSummary:
    run_dir: Path
    models: dict[str, ModelSummary] = field(default_factory=dict)
    interrupted: str | None = None  # "SIGINT" / "SIGTERM" when a signal stopped the sweep
    seconds: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        """130/143 if a signal stopped it, 3 if a model has a `problem`, else 0."""
        if self.interrupted is not None:
            return ExitCode.TERMINATED if self.interrupted == "SIGTERM" else ExitCode.INTERRUPTED
        if any(m.problem is not None for m in self.models.values()):
            return ExitCode.MODEL_FAILED
        return ExitCode.OK

    @property
    def complete(self) -> bool:
        """Every job of every model is in the log (answered or failed for good)."""
        return self.interrupted is None and all(
            m.stopped is None and m.done >= m.total for m in self.models.values()
        )


def resume_hint(config: Config, run_dir: Path, shard: tuple[int, int] | None) -> str:
    """The command that picks this sweep up where it stopped."""
    cfg = str(config.source) if config.source is not None else "CONFIG"
    extra = f" --shard {shard[0] + 1}/{shard[1]}" if shard else ""
    return f"resume with: vpbatch run {cfg} --run-dir {run_dir}{extra}"


class _Stop:
    """What the signal watcher shares with the sweep: the work scope and why it stopped."""

    __slots__ = ("work", "signal", "runners", "drain", "out")

    def __init__(self, runners: list[Runner], drain: float, out: TextIO | None) -> None:
        self.work = anyio.CancelScope()
        self.signal: str | None = None
        self.runners = runners
        self.drain = drain
        self.out = out


async def _watch_signals(stop: _Stop, *, task_status: TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for sig in signals:
            if stop.signal is not None:  # the second signal: abandon the drain
                stop.work.cancel()
                continue
            stop.signal = signal.Signals(sig).name
            for r in stop.runners:
                r.stop()
            # The deadline bounds the drain: what has not answered by then is abandoned,
            # unlogged, and asked again on resume.
            stop.work.deadline = anyio.current_time() + stop.drain
            if stop.out is not None:
                n = sum(r.progress.in_flight for r in stop.runners)
                stop.out.write(f"\n{stop.signal}: stopping; draining {n} in-flight requests "
                               f"(at most {stop.drain:g} s; signal again to abandon them)\n")
                stop.out.flush()


def _connector(config: Config) -> aiohttp.TCPConnector:
    # One pool for the sweep, as large as the sum of the models' caps: a model never waits
    # for a socket another model holds.
    total = sum(m.concurrency for m in config.models)
    return aiohttp.TCPConnector(limit=total + 8, limit_per_host=0, ttl_dns_cache=300)


async def sweep(
    config: Config,
    run_dir: Path | None = None,
    *,
    shard: tuple[int, int] | None = None,
    force: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    env: Mapping[str, str] = os.environ,
    drain: float = DRAIN_S,
    handle_signals: bool = True,
    policy: RetryPolicy | None = None,
    stream: TextIO | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep; returns when every job is logged, or a signal stopped it."""
    path = run_dir if run_dir is not None else RUNS_ROOT / config.run.name
    with run_dir_lock(path, "run"):  # one sweep per run dir, until this one ends
        return await _sweep(config, path, shard=shard, force=force, retry_failed=retry_failed,
                            progress=progress, env=env, drain=drain,
                            handle_signals=handle_signals, policy=policy, stream=stream)


async def _sweep(
    config: Config, run_dir: Path, *, shard: tuple[int, int] | None, force: bool,
    retry_failed: bool, progress: bool, env: Mapping[str, str], drain: float,
    handle_signals: bool, policy: RetryPolicy | None, stream: TextIO | None,
) -> SweepSummary:
    t0 = time.monotonic()
    rd = prepare_run_dir(config, run_dir, force=force)
    config = shard_limits(config, shard)  # N shards together keep to the stated limits
    out = (stream or sys.stderr) if progress else None
    ds = load_dataset(config.run.data)
    conds = load_conditions(config.run.conditions_file)
    if rd.resumes:
        check_log_ids(config, ds, conds, rd.log_path)  # an older vpbatch's log would mix
    with RunLog(rd.log_path) as log:
        async with client_session(connector=_connector(config)) as session:
            ctx = SweepContext(config, ds, conds, shard, log, session, env, policy, retry_failed)
            started, bars = _start(ctx)
            stop = _Stop([r for r, _ in started], drain, out)
            board = Progress(bars, out) if out is not None else None
            for bar in bars:
                if bar.stopped and out is not None:
                    out.write(f"{bar.name}: not started: {bar.stopped}\n")
            try:
                await _run(started, stop, board, handle_signals)
            except BaseExceptionGroup as group:
                raise _unwrap(group) from None
    judged = {b.name: ModelSummary.of(b, fail_on_error(config.run, m), min_rated(config.run, m))
              for b, m in zip(bars, config.models, strict=True)}
    summary = SweepSummary(rd.path, judged, stop.signal, time.monotonic() - t0)
    if out is not None:
        _report(summary, bars, out, resume_hint(config, rd.path, shard))
    return summary


def _start(ctx: SweepContext) -> tuple[list[tuple[Runner, Iterator[Job]]], list[ModelProgress]]:
    """A runner and its job stream per model that can start, and every model's progress."""
    started: list[tuple[Runner, Iterator[Job]]] = []
    bars: list[ModelProgress] = []
    groups = group_limits(ctx.config)  # built once: every member's pipeline shares its group's
    for m in ctx.config.models:
        bar = ModelProgress(m.name, 0)
        bars.append(bar)
        try:
            bar.total = ctx.count(m)
            runner = _runner(ctx, m, bar, groups)
            jobs = _first_built(ctx.jobs(m))
        except VPBatchError as exc:  # a missing key, a request no API takes: this model only
            bar.stopped = str(exc)
            continue
        started.append((runner, jobs))
    return started, bars


def _runner(
    ctx: SweepContext, m: ModelConfig, bar: ModelProgress, groups: dict[str, Limits]
) -> Runner:
    """The model's runner: online requests, or its provider's batch API at half the price.

    A batch runner ignores the model's limit group, as it ignores its rpm/tpm: the provider
    queues a batch whole, so client-side pacing has nothing to pace.
    """
    provider = make_provider(m, ctx.session, ctx.env)
    _restore_form(provider, ctx.log.path.parent, bar)
    if m.mode != "batch":
        group = groups.get(m.limit_group) if m.limit_group else None
        breaker = Breaker(BreakerPolicy.for_model(ctx.config.run, m))
        return Pipeline(m, provider, ctx.log, bar, limits=Limits.for_model(m, group),
                        policy=ctx.policy, retry_failed=ctx.retry_failed, breaker=breaker)
    api = batch_api_for(provider, ctx.policy or policy_for(m))
    if api is None:
        # Sending online what was asked for as a batch would double its price.
        raise ConfigError(f"provider {m.provider!r} has no batch API; set mode = \"online\" "
                          "for this model (or use openai/anthropic)")
    return BatchRunner(m, provider, api, ctx.log, bar, opts=BatchOptions.for_model(m, ctx.env),
                       retry_failed=ctx.retry_failed, regrid=lambda: ctx.jobs(m))


def _restore_form(provider: object, run_dir: Path, bar: ModelProgress) -> None:
    """A resumed model starts in the request form it learnt from its server (adapted.json)."""
    adapter = provider.adapter if isinstance(provider, HttpProvider) else None
    entry = load_adapted(run_dir).get(bar.name) if adapter is not None else None
    if adapter is not None and entry and isinstance(entry.get("form"), dict):
        adapter.restore(Form.from_json(entry["form"]))
        bar.adapted = adapter.form.changes()


def _first_built(jobs: Iterator[Job]) -> Iterator[Job]:
    """The stream, its first job built already: a config whose request no API takes fails
    here (a ConfigError for this model), before anything is sent."""
    first = next(jobs, None)
    return jobs if first is None else itertools.chain([first], jobs)


async def _run(
    started: list[tuple[Runner, Iterator[Job]]], stop: _Stop, board: Progress | None,
    signals: bool,
) -> None:
    async with anyio.create_task_group() as outer:
        if signals:
            await outer.start(_watch_signals, stop)
        if board is not None:
            outer.start_soon(board.run)
        with stop.work:
            async with anyio.create_task_group() as tg:
                for runner, jobs in started:
                    tg.start_soon(runner.run, jobs)
        outer.cancel_scope.cancel()  # the watcher and the progress board end with the work


def _unwrap(group: BaseExceptionGroup) -> BaseException:
    """A user-facing error out of a task group, so the CLI prints one line, not a tree."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        e = stack.pop()
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        else:
            flat.append(e)
    for e in flat:
        if isinstance(e, VPBatchError):
            return e
    return group


def _report(summary: SweepSummary, bars: list[ModelProgress], out: TextIO, hint: str) -> None:
    board = Progress(bars, out, tty=False)
    out.write("\n".join(board.summary()) + "\n")
    for m in summary.models.values():
        if m.adapted:  # (also in the run dir's adapted.json, and in `vpbatch status`)
            out.write(f"{m.name}: adapted to its server: {'; '.join(m.adapted)}\n")
    failing = [m for m in summary.models.values() if m.problem is not None]
    for m in failing:
        if m.stopped is None:  # a stopped model's reason is in its lines above
            out.write(f"FAILED {m.name}: {m.problem}\n")
    if summary.interrupted:
        out.write(f"stopped by {summary.interrupted}; {hint}\n")
    elif any(m.unrated for m in failing):
        out.write(f"fix the cause, then {hint} (add --force if the fix changed the config: "
                  "the changed requests are new jobs, and are all sent; an unrated answer "
                  "is never asked again for the same request)\n")
    elif failing:
        out.write(f"fix the cause, then {hint} (it sends the jobs not sent; add --retry-failed "
                  "to send the failed ones again)\n")
    out.write(f"log: {summary.run_dir / 'log.jsonl'} ({summary.seconds:.1f} s)\n")
    out.flush()


def run_sweep(config: Config, run_dir: Path | None = None, **kwargs: object) -> SweepSummary:
    """`sweep` for synchronous callers (the CLI, the demo): runs its own event loop."""
    return anyio.run(functools.partial(sweep, config, run_dir, **kwargs),  # type: ignore[arg-type]
                     backend="asyncio")
