"""`vpbatch report RUN`: gather a run's analysis and health, then write md, html and CSV.

`ReportData` is what every renderer reads; it is built once from the run dir (one read of
the log for the cube, one for the run's health) so the three outputs always agree.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vpbatch.analysis import Analysis, GroupComparison, analyse, human_comparison
from vpbatch.dims import VANILLA
from vpbatch.errors import ConfigError, LogError
from vpbatch.log import iter_log
from vpbatch.records import OK, Record
from vpbatch.rundir import RunDir, open_run_dir
from vpbatch.scorer import ScoreOptions

__all__ = [
    "ModelStats",
    "ReportData",
    "gather",
    "run_stats",
    "write_report",
    "fmt",
    "marks",
    "profile_index",
    "nanmean0",
    "ran_conditions",
    "ran_personas",
    "NOTES",
    "CSV_NAME",
    "CSV_VERSIONS_NAME",
]

CSV_NAME = "scores_long.csv"
CSV_VERSIONS_NAME = "scores_by_version.csv"

# What each section means, shared by report.md and report.html so they never disagree.
NOTES: dict[str, str] = {
    "profiles": (
        "Centred scores under the plain (vanilla) prompt, in the layout of the paper's Table 2: "
        "a value's mean rating over its items (those correlating > 0.3 with it under the "
        "scoring rule) minus the mean over all value items, so 0 is the model's average and "
        "the scale is rating points (1-6). ⋆ marks each model's highest value, † its lowest. "
        "Whiskers and [brackets] are bootstrap 95% intervals over the 520 items (resampled "
        "with replacement)."
    ),
    "higher": (
        "Higher-order values (Schwartz) and Big Five traits (BFI), centred the same way within "
        "their family."
    ),
    "personas": (
        "Persona delta = centred score with a demographic system message minus the vanilla "
        "score. Human deltas are the 'Human data' rows of the paper's Tables 4-7 (European "
        "Social Survey round 11): each group's mean minus all participants' mean. r is the "
        "Pearson correlation over the group's cells after centring each value across the "
        "group's members (a persona prompt shifts every member alike; the ESS baseline has no "
        "such shift). Exaggeration = mean |model gap| / mean |human gap| for the contrast shown "
        "(e.g. Male − Female, Left-wing − Right-wing): above 1, the model draws the groups "
        "further apart than people are."
    ),
    "steering": (
        "Row = the value the system message asks the model to hold, column = the value "
        "measured; each cell is steered − vanilla centred score (the paper's Table 10). The "
        "outlined diagonal is the intended effect: a working steer is the largest cell of its "
        "row."
    ),
    "versions": (
        "Each of the 6 prompt versions (option order and wording) scored on its own. Spread is "
        "the standard deviation of the centred score across versions: large values mean the "
        "profile depends on how the question is asked."
    ),
    "reliability": (
        "Cronbach's alpha per dimension over the dimension's items (correlation > 0.3), "
        "respondents = each model × prompt version of this run under the vanilla prompt, as in "
        "the paper's Table 1 (0.76-0.96 over 27 models). Few respondents make it unstable; "
        "0.70 is the usual bar."
    ),
    "conditions": (
        "Every condition of every model with its bootstrap 95% interval; the same numbers, "
        "long-form, are in scores_long.csv."
    ),
    "health": (
        "Jobs are (model, condition, version, item, repeat) requests. Failed = no answer after "
        "retries (by reason); unparseable = an answer that matched no scale phrase (left out "
        "of scoring, never guessed). Retries = extra attempts. Cost uses the config's "
        "price_in/price_out (USD per 1M tokens)."
    ),
}


def marks(row: Any) -> list[str]:
    """'⋆' on a row's highest value, '†' on its lowest (the paper's Table 2 markers)."""
    vals = [float(v) for v in row]
    ok = [v for v in vals if not math.isnan(v)]
    if len(ok) < 2:
        return [""] * len(vals)
    hi, lo = max(ok), min(ok)
    if hi == lo:  # a flat profile has no highest or lowest value
        return [""] * len(vals)
    return ["⋆" if v == hi else "†" if v == lo else "" for v in vals]


def profile_index(a: Analysis) -> int:
    """The condition the profile tables show: vanilla, else the first one in the log."""
    return a.conditions.index(VANILLA) if VANILLA in a.conditions else 0


def ran_conditions(a: Analysis, m: int) -> list[int]:
    """Indices of the conditions model `m` has scores under (grids may differ per model)."""
    pvq = a.scores.score["pvq"][m]
    return [c for c in range(len(a.conditions)) if not np.isnan(pvq[c]).all()]


def ran_personas(a: Analysis, m: int) -> list[str]:
    """The persona conditions model `m` has scores under."""
    ran = set(ran_conditions(a, m))
    return [c for c in a.persona_conditions() if a.conditions.index(c) in ran]


def nanmean0(a: Any) -> Any:
    """Mean over axis 0 ignoring NaN; NaN (without a warning) where nothing is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=0)


def fmt(v: float | None, *, sign: bool = True) -> str:
    """Two decimals, signed by default; 'n/a' for a missing number."""
    if v is None or math.isnan(v):
        return "n/a"
    v = round(float(v), 2) + 0.0  # no "-0.00": a rounded zero is printed as +0.00
    return f"{v:+.2f}" if sign else f"{v:.2f}"


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
    audit: dict[str, Any]  # model -> ModelAudit from vpbatch.audit
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
    from vpbatch.audit import parse_audit

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
    from vpbatch.conditions import load_conditions

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
           n_boot: int = 1000, seed: int = 0) -> ReportData:
    """Read a run dir and compute everything the report shows."""
    from vpbatch.cube import cube_from_log
    from vpbatch.dataset import load_dataset

    rd = open_run_dir(run_dir)
    if not rd.log_path.exists():
        raise LogError(f"{rd.path} has no log yet; run `vpbatch run` on it first")
    ds = load_dataset(data)
    cube = cube_from_log(rd.log_path, ds)
    if not cube.models:
        raise LogError(f"{rd.log_path} holds no finished jobs yet; run the sweep first")
    analysis = analyse(cube, ds, options, n_boot=n_boot, seed=seed)
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


def write_report(
    run_dir: Path,
    *,
    data: Path | None = None,
    options: ScoreOptions | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write report.md, report.html, scores_long.csv and scores_by_version.csv into the run dir."""
    from vpbatch.report import csv, html, markdown

    rep = gather(run_dir, data=data, options=options, n_boot=n_boot, seed=seed)
    rd = RunDir.at(rep.run_dir)
    csv.write_long(rep.analysis, rd.path / CSV_NAME)
    csv.write_versions(rep.analysis, rd.path / CSV_VERSIONS_NAME)
    _atomic(rd.report_md_path, markdown.render(rep))
    _atomic(rd.report_html_path, html.render(rep))
    return rd.report_md_path, rd.report_html_path


def _atomic(path: Path, text: str) -> None:
    # Write-then-rename: a browser or a reader never sees half a report.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
