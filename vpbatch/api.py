"""The Python API, for notebooks and scripts: run a sweep, load a run as typed tables.

`run` / `run_async` are thin wrappers over the engine (`vpbatch.sweep.engine.sweep`): they take
what `vpbatch run` takes and return its `SweepSummary`. `load` reads a run dir the way
`vpbatch report` does and hands back a `Run` whose tables convert to pandas, polars or pyarrow.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpbatch.config.schema import Config
    from vpbatch.log.rundir import RunDir
    from vpbatch.report.tables import Table
    from vpbatch.scoring.analysis import Analysis
    from vpbatch.sweep.engine import SweepSummary

__all__ = ["run", "run_async", "load", "Run", "export"]

Shard = str | tuple[int, int] | None


def _prepare(config: str | os.PathLike[str] | Config, shard: Shard,
             env: Mapping[str, str]) -> tuple[Config, tuple[int, int] | None]:
    import vpbatch.providers  # noqa: F401 (registers the builtin providers)
    from vpbatch.config.schema import Config, load_config
    from vpbatch.sweep.shards import resolve_shard

    cfg = config if isinstance(config, Config) else load_config(Path(config), check_env=False)
    part = resolve_shard(shard, env) if isinstance(shard, str) else shard
    return cfg, part


async def run_async(
    config: str | os.PathLike[str] | Config,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    shard: Shard = None,
    force: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    drain: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> SweepSummary:
    """Run or resume a sweep inside a running event loop (`await` it in a notebook cell).

    Takes what `vpbatch run` takes: `shard` is "K/N", (K-1, N) zero-based, or "auto".
    """
    from vpbatch.sweep.engine import sweep

    env = os.environ if env is None else env
    cfg, part = _prepare(config, shard, env)
    # Signal handlers belong to whoever owns the loop (the notebook's kernel), not to us.
    return await sweep(cfg, Path(run_dir) if run_dir is not None else None, shard=part,
                       force=force, retry_failed=retry_failed, progress=progress, drain=drain,
                       env=env, handle_signals=False)


def run(
    config: str | os.PathLike[str] | Config,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    shard: Shard = None,
    force: bool = False,
    retry_failed: bool = False,
    progress: bool = True,
    drain: float = 30.0,
    env: Mapping[str, str] | None = None,
) -> SweepSummary:
    """Run or resume a sweep and return its summary, as `vpbatch run CONFIG` does.

    Re-running resumes: finished jobs are never sent again. Works inside a notebook too.
    """
    import anyio

    from vpbatch.sweep.engine import sweep

    env = os.environ if env is None else env
    cfg, part = _prepare(config, shard, env)
    rd = Path(run_dir) if run_dir is not None else None
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # a plain script: our own loop, and Ctrl-C drains like the CLI's
        call = functools.partial(sweep, cfg, rd, shard=part, force=force,
                                 retry_failed=retry_failed, progress=progress, drain=drain,
                                 env=env)
        return anyio.run(call, backend="asyncio")
    # A loop already runs in this thread (Jupyter): run the sweep on a loop of its own.
    call = functools.partial(sweep, cfg, rd, shard=part, force=force,
                             retry_failed=retry_failed, progress=progress, drain=drain,
                             env=env, handle_signals=False)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="vpbatch") as pool:
        return pool.submit(anyio.run, call, backend="asyncio").result()


def _answers(log_path: Path) -> Table:
    import gc

    from vpbatch.log.runlog import read_log
    from vpbatch.report.tables import answers_table

    # Holding 150,000 records makes the cyclic GC rescan them again and again (seconds of CPU
    # for the demo's log); none of them can form a cycle.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return answers_table(read_log(log_path))
    finally:
        if was_enabled:
            gc.enable()


class Run:
    """A run read from its run dir: scores, the analysis, and the answers, as tables.

    `scores`, `deltas`, `steering`, `versions`, `alpha` and `trust` come from the analysis at
    `load`; `answers` reads the log the first time it is asked for.
    """

    def __init__(self, run_dir: Path, analysis: Analysis, log_path: Path) -> None:
        self.run_dir = run_dir
        self.analysis = analysis  # the arrays themselves, indexed [model, condition, dim]
        self._log_path = log_path
        self._tables: dict[str, Table] = {}

    def __repr__(self) -> str:
        return (f"<vpbatch.Run {self.run_dir}: {len(self.models)} models, "
                f"{len(self.conditions)} conditions>")

    @property
    def models(self) -> list[str]:
        """The models in the log, in the order they first appear."""
        return self.analysis.models

    @property
    def conditions(self) -> list[str]:
        """`vanilla`, `persona:<group>=<value>` and `steer:<Dimension>` conditions that ran."""
        return self.analysis.conditions

    def _table(self, name: str) -> Table:
        if name not in self._tables:
            from vpbatch.report import tables

            if name == "answers":
                self._tables[name] = _answers(self._log_path)
            else:
                self._tables[name] = getattr(tables, f"{name}_table")(self.analysis)
        return self._tables[name]

    @property
    def scores(self) -> Table:
        """model x condition x family x dimension: score, raw, n_items, 95% interval (and
        human_percentile when the analysis has the survey's raters)."""
        return self._table("scores")

    @property
    def answers(self) -> Table:
        """The per-answer log as columns: one row per job (the line that counts)."""
        return self._table("answers")

    @property
    def deltas(self) -> Table:
        """Each persona or steering condition minus vanilla, with its 95% interval."""
        return self._table("deltas")

    @property
    def steering(self) -> Table:
        """The 10x10 steering matrices, long form: steered, measured, delta."""
        return self._table("steering")

    @property
    def versions(self) -> Table:
        """Scores from each prompt version alone (prompt-version sensitivity)."""
        return self._table("versions")

    @property
    def trust(self) -> Table:
        """The trust panel: does each model x condition's profile replicate across answer
        order and wording (order_bias, ..., verdict; see docs/guides/trust.md)."""
        return self._table("trust")

    @property
    def alpha(self) -> Table:
        """Cronbach's alpha per dimension over the run's models x versions."""
        return self._table("alpha")

    def profile(self, model: str, condition: str = "vanilla", family: str = "pvq"
                ) -> dict[str, float]:
        """One model's centred scores by dimension, e.g. its 10 Schwartz values."""
        from vpbatch.benchmark.dims import FAMILY_DIMS

        if model not in self.models:
            raise KeyError(f"{model!r} is not in this run; it has {', '.join(self.models)}")
        s = self.analysis.scores
        mi = self.models.index(model)
        ran = [c for ci, c in enumerate(self.conditions) if s.n_items["pvq"][mi, ci].sum() > 0]
        if condition not in ran:
            raise KeyError(f"{model!r} has no condition {condition!r} here; it ran "
                           f"{', '.join(ran)}")
        row = s.score[family][mi, self.conditions.index(condition)]
        return {d: float(x) for d, x in zip(FAMILY_DIMS[family], row, strict=True)}


def _config_data(rd: RunDir) -> Path | None:
    import vpbatch.providers  # noqa: F401 (registers the builtin providers)
    from vpbatch.errors import ConfigError

    try:
        data = rd.load_config().run.data if rd.config_path.exists() else None
        return Path(data) if data else None
    except ConfigError:  # an imported or hand-made run dir: no config to ask
        return None


def load(
    run_dir: str | os.PathLike[str],
    *,
    rule: str = "paper",
    threshold: float = 0.3,
    p_max: float = 0.05,
    strict: bool = False,
    boot: int = 1000,
    bootstrap: str = "cluster",
    seed: int = 0,
    data: str | os.PathLike[str] | None = None,
    weak_min: float = 0.4,
    replicate_min: float = 0.7,
) -> Run:
    """Read a run dir into a `Run`, scored as `vpbatch report` scores it (same options).

    `strict` scores the strict parser's ratings; `boot` is the number of bootstrap resamples
    behind the intervals (0: none), `bootstrap` "cluster" (whole queries) or "item"; `data`
    the Value Portrait data root (else as the CLI); `weak_min` / `replicate_min` the trust
    panel's verdict cut-offs.
    """
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.benchmark.ensure import ensure_data
    from vpbatch.errors import LogError
    from vpbatch.log.rundir import open_run_dir
    from vpbatch.scoring.analysis import analyse
    from vpbatch.scoring.cube import cube_from_log
    from vpbatch.scoring.scorer import ScoreOptions

    rd = open_run_dir(Path(run_dir))
    if not rd.log_path.exists():
        raise LogError(f"{rd.path} has no log yet; run the sweep first (vpbatch.run)")
    # The data root: given, else the run's own config's, else $VPBATCH_DATA or the cache
    # (fetched on first use, as `make run` does).
    root = Path(data) if data is not None else _config_data(rd)
    ds = load_dataset(ensure_data(root))
    cube = cube_from_log(rd.log_path, ds, strict=strict)
    if not cube.models:
        raise LogError(f"{rd.log_path} holds no finished jobs yet; run the sweep first")
    options = ScoreOptions(rule=rule, threshold=threshold, p_max=p_max, weak_min=weak_min,
                           replicate_min=replicate_min)
    analysis = analyse(cube, ds, options, n_boot=boot, seed=seed, bootstrap=bootstrap)
    return Run(rd.path, analysis, rd.log_path)


def export(run: str | os.PathLike[str] | Run, out_dir: str | os.PathLike[str] | None = None,
           *, format: str = "parquet", **load_options: Any) -> list[Path]:
    """Write a run's tables as Parquet or CSV files (`vpbatch export`); returns their paths.

    `run` is a run dir (read with `load(**load_options)`) or a loaded `Run`; the files go to
    `out_dir`, default RUN_DIR/export/.
    """
    from vpbatch.report.export import write_tables

    r = run if isinstance(run, Run) else load(run, **load_options)
    target = Path(out_dir) if out_dir is not None else r.run_dir / "export"
    return write_tables({n: getattr(r, n) for n in EXPORTED}, target, format)


EXPORTED = ("answers", "scores", "deltas", "steering", "versions", "alpha", "trust")
