"""What every renderer reads: `ReportData`, gathered once from a run dir.

One read of the log for the cube and one for the run's health, so the three outputs (md, html,
CSV) always agree.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpbatch.errors import ConfigError, LogError
from vpbatch.log.records import OK, Record
from vpbatch.log.rundir import RunDir, open_run_dir
from vpbatch.log.runlog import iter_log
from vpbatch.scoring.analysis import Analysis, GroupComparison, analyse, human_comparison
from vpbatch.scoring.scorer import ScoreOptions

__all__ = ["ModelStats", "ReportData", "gather", "run_stats"]

@dataclass(slots=True)
class ModelStats:
    """A model's run health from the log: outcomes, retries, tokens and what they cost."""

    jobs: int = 0
    ok: int = 0
    unparseable: int = 0
    failed: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    lines: int = 0  # log lines incl. re-runs of failed jobs
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # None when the config gives no prices


@dataclass(slots=True)
class ReportData:
    """Everything a renderer needs; plain data, no I/O."""

    title: str
    run_dir: Path
    generated: str
    analysis: Analysis
    comparisons: dict[str, list[GroupComparison]]
    stats: dict[str, ModelStats]
    audit: dict[str, Any]  # model -> ModelAudit from vpbatch.scoring.audit
    n_items: int


def _record(row: dict[str, Any]) -> Record:
    # Lines the engine wrote carry exactly Record's fields: the direct call is 10x cheaper.
    try:
        return Record(**row)
    except TypeError:  # an older or foreign line: keep the fields Record knows
        return Record.from_dict(row)


class _Pass:
    """One streaming pass over a log: health counts as a side effect of feeding the audit.

    Dedupe as log.dedupe: a job's first ok row counts, else its latest failure; failures are
    held back until the end because a later line may still answer them.
    """

    __slots__ = ("stats", "answered", "failed_last")

    def __init__(self) -> None:
        self.stats: dict[str, ModelStats] = {}
        self.answered: set[str] = set()
        self.failed_last: dict[str, dict[str, Any]] = {}

    def records(self, log_path: Path) -> Iterator[Record]:
        stats, answered, failed_last = self.stats, self.answered, self.failed_last
        for row in iter_log(log_path):
            st = stats.get(row["model"])
            if st is None:
                st = stats[row["model"]] = ModelStats()
            st.lines += 1
            st.retries += max(int(row.get("attempts") or 1) - 1, 0)
            usage = row.get("usage")
            if usage:  # tokens were paid for on every line, re-runs included
                st.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                st.completion_tokens += int(usage.get("completion_tokens") or 0)
                st.reasoning_tokens += int(usage.get("reasoning_tokens") or 0)
            jid = row["job_id"]
            if row.get("status") == OK:
                if jid in answered:
                    continue
                answered.add(jid)
                failed_last.pop(jid, None)
                st.jobs += 1
                if row.get("rating") is None:
                    st.unparseable += 1
                else:
                    st.ok += 1
                yield _record(row)
            elif jid not in answered:
                failed_last[jid] = row
        for row in failed_last.values():
            st = stats[row["model"]]
            st.jobs += 1
            st.failed += 1
            st.failure_reasons[str(row.get("error_kind") or row.get("error") or "unknown")] += 1
            yield _record(row)


def run_stats(
    log_path: Path, prices: dict[str, tuple[float | None, float | None]] | None = None
) -> tuple[dict[str, ModelStats], dict[str, Any]]:
    """Per-model health and the parse audit, from one streaming pass over the log."""
    from vpbatch.scoring.audit import parse_audit

    scan = _Pass()
    audit: dict[str, Any] = dict(parse_audit(scan.records(log_path)))
    for name, st in scan.stats.items():
        p_in, p_out = (prices or {}).get(name, (None, None))
        if p_in is not None or p_out is not None:
            out_tokens = st.completion_tokens  # reasoning tokens are billed inside completion
            st.cost_usd = (st.prompt_tokens * (p_in or 0) + out_tokens * (p_out or 0)) / 1e6
    return scan.stats, audit


def _config_bits(rd: RunDir) -> tuple[str, dict[str, tuple[float | None, float | None]],
                                      dict[str, tuple[str, str]]]:
    """Run name, per-model prices and persona -> (paper_group, paper_value), if a config exists."""
    from vpbatch.benchmark.conditions import load_conditions

    name = rd.path.name
    prices: dict[str, tuple[float | None, float | None]] = {}
    meta: dict[str, tuple[str, str]] = {}
    try:
        cfg = rd.load_config() if rd.config_path.exists() else None
        conds = load_conditions(cfg.run.conditions_file if cfg else None)
    except ConfigError:  # an imported or hand-made run dir still gets its report
        return name, prices, meta
    if cfg is not None:
        name = cfg.run.name
        prices = {m.name: (m.price_in, m.price_out) for m in cfg.models}
    meta = {p.name: (p.paper_group or "", p.paper_value or "") for p in conds.personas.values()
            if p.paper_group and p.paper_value}
    return name, prices, meta


def gather(run_dir: Path, *, data: Path | None = None, options: ScoreOptions | None = None,
           n_boot: int = 1000, seed: int = 0, bootstrap: str = "cluster") -> ReportData:
    """Read a run dir and compute everything the report shows."""
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.scoring.cube import cube_from_log

    rd = open_run_dir(run_dir)
    if not rd.log_path.exists():
        raise LogError(f"{rd.path} has no log yet; run `vpbatch run` on it first")
    ds = load_dataset(data)
    cube = cube_from_log(rd.log_path, ds)
    if not cube.models:
        raise LogError(f"{rd.log_path} holds no finished jobs yet; run the sweep first")
    analysis = analyse(cube, ds, options, n_boot=n_boot, seed=seed, bootstrap=bootstrap)
    title, prices, meta = _config_bits(rd)
    stats, audit = run_stats(rd.log_path, prices)
    return ReportData(
        title=title,
        run_dir=rd.path,
        generated=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        analysis=analysis,
        comparisons={m: human_comparison(analysis, m, meta) for m in analysis.models},
        stats=stats,
        audit=audit,
        n_items=int(ds.n_items),
    )
