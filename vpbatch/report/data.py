"""What every renderer reads: `ReportData`, gathered once from a run dir.

One read of the log for the cube and one for the run's health, so the three outputs (md, html,
CSV) always agree.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from vpbatch.errors import ConfigError, LogError
from vpbatch.log.counts import Counted
from vpbatch.log.reader import LogReader
from vpbatch.log.records import OK
from vpbatch.log.rundir import RunDir, open_run_dir
from vpbatch.scoring.analysis import Analysis, GroupComparison, analyse, human_comparison
from vpbatch.scoring.scorer import ScoreOptions
from vpbatch.sweep.cost import Prices

__all__ = ["ModelStats", "ReportData", "gather", "run_stats", "failure_reason"]

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
    # Reference rows (`--reference paper`): model -> family -> (D,) vanilla centred scores.
    reference: dict[str, dict[str, Any]] = field(default_factory=dict)
    answer_modes: dict[str, str] = field(default_factory=dict)  # model -> text|choice|mixed

    def label(self, model: str) -> str:
        """The model's name, marked when its answers were not the paper's free text."""
        mode = self.answer_modes.get(model, "text")
        return model if mode == "text" else f"{model} ({mode})"


class _Answer:
    """The fields of a log line the audit reads: building a whole Record for each of 150,000
    lines cost the report a second (the audit only needs these seven)."""

    __slots__ = ("model", "status", "raw", "condition", "version", "portrait_id", "option_id")

    def __init__(self, row: dict[str, Any]) -> None:
        self.model = row["model"]
        self.status = row.get("status", OK)
        self.raw = row.get("raw")
        self.condition = row["condition"]
        self.version = row["version"]
        self.portrait_id = row["portrait_id"]
        self.option_id = row["option_id"]


class _Pass:
    """One streaming pass over a log: health counts as a side effect of feeding the audit.

    Each job counts once, by vpbatch.log.counts: an answer is yielded as its line is read;
    failures wait for the end, since a later line may still answer them.
    """

    __slots__ = ("stats", "counted")

    def __init__(self) -> None:
        self.stats: dict[str, ModelStats] = {}
        # Only failures are kept (answers are yielded at once): memory follows the failures.
        self.counted: Counted[dict[str, Any] | None] = Counted()

    def records(self, log_path: Path) -> Iterator[_Answer]:
        stats, counted = self.stats, self.counted
        for row in LogReader(log_path).rows():
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
            ok = row.get("status") == OK
            if counted.add(row["job_id"], ok, None if ok else row) and ok:
                st.jobs += 1
                if row.get("rating") is None:
                    st.unparseable += 1
                else:
                    st.ok += 1
                yield _Answer(row)
        for failed in counted.failed.values():
            assert failed is not None  # failures are kept whole
            st = stats[failed["model"]]
            st.jobs += 1
            st.failed += 1
            st.failure_reasons[failure_reason(failed)] += 1
            yield _Answer(failed)


_HTTP = re.compile(r"\bHTTP (\d{3})\b")
_REASON_CHARS = 60


def failure_reason(row: Mapping[str, Any]) -> str:
    """Why a job failed, short enough to count alike: "HTTP 402 Payment Required" for an HTTP
    error, else the error's first line (cut), else its kind ("permanent")."""
    error = str(row.get("error") or "").strip()
    m = _HTTP.search(error)
    if m is not None:
        code = int(m.group(1))
        try:
            out = f"HTTP {code} {HTTPStatus(code).phrase}"
        except ValueError:
            out = f"HTTP {code}"
        # A short plain-text detail says more ("content filter"); a JSON or HTML body would
        # split one cause into many rows.
        detail = error[m.end():].lstrip(": ").splitlines()[0] if error[m.end():].strip() else ""
        if detail and len(detail) <= 40 and detail[0] not in "{[<":
            out += f": {detail}"
        return out
    if error:
        line = error.splitlines()[0]
        return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 1] + "…"
    return str(row.get("error_kind") or "unknown")


def run_stats(
    log_path: Path, prices: Mapping[str, Prices] | None = None
) -> tuple[dict[str, ModelStats], dict[str, Any]]:
    """Per-model health and the parse audit, from one streaming pass over the log."""
    from vpbatch.scoring.audit import parse_audit

    scan = _Pass()
    audit: dict[str, Any] = dict(parse_audit(scan.records(log_path)))
    for name, st in scan.stats.items():
        if prices and name in prices:
            st.cost_usd = prices[name].cost(st.prompt_tokens, st.completion_tokens)
    return scan.stats, audit


def _config_bits(rd: RunDir) -> tuple[str, dict[str, Prices], dict[str, tuple[str, str]]]:
    """Run name, per-model prices and persona -> (paper_group, paper_value), if a config exists."""
    from vpbatch.benchmark.conditions import load_conditions

    name = rd.path.name
    prices: dict[str, Prices] = {}
    meta: dict[str, tuple[str, str]] = {}
    try:
        cfg = rd.load_config() if rd.config_path.exists() else None
        conds = load_conditions(cfg.run.conditions_file if cfg else None)
    except ConfigError:  # an imported or hand-made run dir still gets its report
        return name, prices, meta
    if cfg is not None:
        name = cfg.run.name
        prices = {m.name: Prices.of(m) for m in cfg.models}
    meta = {p.name: (p.paper_group or "", p.paper_value or "") for p in conds.personas.values()
            if p.paper_group and p.paper_value}
    return name, prices, meta


def gather(run_dir: Path, *, data: Path | None = None, options: ScoreOptions | None = None,
           n_boot: int = 1000, seed: int = 0, bootstrap: str = "cluster",
           reference: str | None = None) -> ReportData:
    """Read a run dir and compute everything the report shows.

    `reference="paper"` adds the paper's recorded models as reference rows (cached scores).
    """
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
        reference=_reference(reference, ds, analysis.options),
        answer_modes=dict(cube.answer_modes),
    )


def _reference(name: str | None, ds: Any, options: ScoreOptions) -> dict[str, dict[str, Any]]:
    if name is None:
        return {}
    from vpbatch.scoring.reference import REFERENCES, paper_reference

    if name not in REFERENCES:
        raise ConfigError(f"unknown reference {name!r}; use one of {', '.join(REFERENCES)}")
    return dict(paper_reference(ds, options))
