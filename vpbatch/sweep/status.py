"""A sweep's status: per model and condition, what is done, failed and left, from the log."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import N_ITEMS, load_dataset
from vpbatch.config.schema import Config
from vpbatch.log.counts import Counted
from vpbatch.log.reader import LogReader
from vpbatch.log.records import OK, unrated_of
from vpbatch.sweep.cost import Prices
from vpbatch.sweep.grid import iter_model_jobs, model_conditions
from vpbatch.sweep.unrated import describe

__all__ = ["Cell", "collect_status", "render_status"]

_FAILED, _PARSED, _UNPARSED = 0, 1, 2


@dataclass(slots=True)
class Cell:
    """One model × condition: counts of deduplicated jobs, tokens and cost of every request."""

    model: str
    condition: str
    total: int | None  # from the config; None for rows the config does not name
    done: int = 0  # answered (ok), parsed or not
    failed: int = 0
    parse_failures: int = 0  # answered, but no phrase found: recorded, never guessed
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # failure reason -> jobs
    unrated: dict[str, int] = field(default_factory=dict)  # unrated cause -> answered jobs
    rate_limited: int = 0  # 429s the jobs met on their way (each retried), over every row


def _totals(
    cfg: Config, shard: tuple[int, int] | None, data: str | None
) -> dict[tuple[str, str], int]:
    conds = load_conditions(cfg.run.conditions_file)
    if shard is not None:
        # A shard's share depends on the job ids, hence on the prompts: count them.
        ds = load_dataset(data or cfg.run.data)
        counts: Counter[tuple[str, str]] = Counter()
        for m in cfg.models:
            counts.update((j.model, j.condition)
                          for j in iter_model_jobs(cfg, m, ds, conds, shard=shard))
        return {(m.name, c): counts[(m.name, c)]
                for m in cfg.models for c in model_conditions(cfg, m, conds)}
    # Unsharded totals are arithmetic: no need to read the dataset.
    per = (min(cfg.run.items, N_ITEMS) if cfg.run.items else N_ITEMS) * len(cfg.run.versions)
    return {(m.name, c): per * cfg.run.repeats
            for m in cfg.models for c in model_conditions(cfg, m, conds)}


def collect_status(
    log_path: Path, cfg: Config | None, *, shard: tuple[int, int] | None = None,
    data: str | None = None,
) -> list[Cell]:
    """Stream the log once: jobs deduplicated by id, tokens summed over every row (all paid)."""
    totals = _totals(cfg, shard, data) if cfg else {}
    cells = {k: Cell(k[0], k[1], t) for k, t in totals.items()}
    counted: Counted[tuple[tuple[str, str], int, str | None]] = Counted()
    for row in LogReader(log_path).rows():
        key = (str(row.get("model")), str(row.get("condition")))
        cell = cells.get(key) or cells.setdefault(key, Cell(key[0], key[1], None))
        usage = row.get("usage") or {}
        cell.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        cell.completion_tokens += int(usage.get("completion_tokens") or 0)
        extra = row.get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("rate_limited"), int):
            cell.rate_limited += extra["rate_limited"]
        if row.get("status") == OK:
            code = _PARSED if row.get("rating") is not None else _UNPARSED
            counted.add(row["job_id"], True, (key, code, unrated_of(row)))
        else:
            reason = f"{row.get('error_kind') or 'failed'}: {row.get('error') or '?'}"
            counted.add(row["job_id"], False, (key, _FAILED, reason[:100]))
    for key, code, why in counted.lines():
        cell = cells[key]
        if code == _FAILED:
            cell.failed += 1
            cell.reasons[str(why)] = cell.reasons.get(str(why), 0) + 1
        else:
            cell.done += 1
            cell.parse_failures += code == _UNPARSED
            if why is not None:  # an answer neither parser can rate, and why
                cell.unrated[why] = cell.unrated.get(why, 0) + 1
    if cfg is not None:
        _price(cells.values(), cfg)
    return list(cells.values())


def _price(cells: Iterable[Cell], cfg: Config) -> None:
    prices = {m.name: Prices.of(m) for m in cfg.models}
    for cell in cells:
        if cell.model in prices:
            cell.cost_usd = prices[cell.model].cost(cell.prompt_tokens, cell.completion_tokens)


def _sum(cells: list[Cell], model: str, condition: str) -> Cell:
    totals = [c.total for c in cells]
    out = Cell(model, condition, None if None in totals else sum(t or 0 for t in totals))
    reasons: Counter[str] = Counter()
    unrated: Counter[str] = Counter()
    for c in cells:
        out.done += c.done
        out.failed += c.failed
        out.parse_failures += c.parse_failures
        out.prompt_tokens += c.prompt_tokens
        out.completion_tokens += c.completion_tokens
        out.rate_limited += c.rate_limited
        if c.cost_usd is not None:
            out.cost_usd = (out.cost_usd or 0.0) + c.cost_usd
        reasons.update(c.reasons)
        unrated.update(c.unrated)
    out.reasons = dict(reasons.most_common())
    out.unrated = dict(unrated.most_common())
    return out


def _line(c: Cell, first: bool) -> tuple[str, ...]:
    total = "?" if c.total is None else f"{c.total:,}"
    pct = f"{(c.done + c.failed) / c.total:.0%}" if c.total else ""
    cost = "" if c.cost_usd is None else f"{c.cost_usd:,.2f}"
    return (c.model if first else "", c.condition, f"{c.done:,}", f"{c.failed:,}", total, pct,
            f"{c.parse_failures:,}", f"{c.prompt_tokens:,}/{c.completion_tokens:,}", cost)


def render_status(cells: list[Cell]) -> list[str]:
    """The status table as lines, a total row per model, then the commonest failure reasons."""
    head = ("model", "condition", "done", "failed", "total", "%", "parse fail", "tokens in/out",
            "cost USD")
    rows: list[tuple[str, ...]] = [head]
    notes: list[str] = []
    unrated: list[str] = []
    limited: list[str] = []
    models = list(dict.fromkeys(c.model for c in cells))
    for model in models:
        mine = [c for c in cells if c.model == model]
        for i, c in enumerate(mine):
            rows.append(_line(c, i == 0))
        if len(mine) > 1:
            rows.append(_line(_sum(mine, model, "(all)"), False))
        whole = _sum(mine, model, "")
        for reason, n in list(whole.reasons.items())[:3]:
            notes.append(f"  {model}: {n:,} failed: {reason}")
        for cause, n in whole.unrated.items():
            unrated.append(f"  {model}: {n:,} unrated: {describe(cause)}")
        if whole.rate_limited:
            limited.append(f"  {model}: {whole.rate_limited:,} requests refused with 429, each "
                           "retried (see rate_limit_window, rpm)")
    if len(models) > 1:
        rows.append(_line(_sum(cells, "total", ""), True))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    out = table + (["failures (most common reasons):", *notes] if notes else [])
    # Answered, paid for, and measured nothing: they count as failures for fail_on_error.
    out += (["unrated answers (count as failures; see "
             "docs/guides/measurement-failures.md):", *unrated] if unrated else [])
    return out + (["rate limits:", *limited] if limited else [])
