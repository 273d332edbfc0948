"""`vpbatch audit RUN_DIR`: per model, the answers the official and strict parsers disagree on."""

from __future__ import annotations

import json
from pathlib import Path

import click

from vpbatch.errors import RunDirError
from vpbatch.log.runlog import LOG_NAME, read_log
from vpbatch.scoring.audit import ModelAudit, parse_audit

__all__ = ["audit"]

_EXCERPT = 160


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT else flat[: _EXCERPT - 1] + "…"


def _print(audits: dict[str, ModelAudit], show_examples: bool) -> None:
    width = max([len(m) for m in audits] + [5])
    click.echo(f"{'model':<{width}}  answers  official  strict  disagree  failed  numbers")
    for m, a in audits.items():
        click.echo(f"{m:<{width}}  {a.n:>7}  {a.n_official_ok:>8}  {a.n_strict_ok:>6}  "
                   f"{a.n_disagree:>8}  {a.n_failed:>6}  {a.n_numbers:>7}")
    for m, a in audits.items():
        if not a.disagreements:
            continue
        click.echo(f"\n{m}: {a.n_disagree} disagreements")
        for kind, count in a.disagreements.most_common():
            click.echo(f"  {count:>5}  {kind}")
            if show_examples:
                for e in a.examples.get(kind, []):
                    click.echo(f"         official={e.official} strict={e.strict} "
                               f"[{e.version} {e.portrait_id}/{e.option_id}] {_excerpt(e.raw)!r}")
    for m, a in audits.items():
        if a.n_numbers:
            _print_numbers(m, a, show_examples)


def _print_numbers(model: str, a: ModelAudit, show_examples: bool) -> None:
    """The answers that state a rating as a number, and what the official parser made of them."""
    click.echo(f"\n{model}: {a.n_numbers} answers state a rating as a number (e.g. '4 out of 6'); "
               f"the official parser rated {a.n_numbers_official} of them from a phrase in the "
               "prose, the number ignored (the paper's rule, kept in the scores)")
    if show_examples:
        for e in a.number_examples:
            click.echo(f"         official={e.official} strict={e.strict} "
                       f"[{e.version} {e.portrait_id}/{e.option_id}] {_excerpt(e.raw)!r}")


@click.command("audit")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--examples", default=3, show_default=True, type=click.IntRange(min=0),
              help="Examples kept per kind of disagreement.")
@click.option("--model", "models", multiple=True, help="Only these models (repeatable).")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Also write the audit as JSON to this file.")
def audit(run_dir: Path, examples: int, models: tuple[str, ...], json_out: Path | None) -> None:
    """Compare the official and strict parsers on every answer in RUN_DIR's log."""
    log = run_dir / LOG_NAME
    if not log.exists():
        raise RunDirError(f"{log} does not exist; pass a run dir made by `vpbatch run` "
                          "or `vpbatch import-official`")
    records = read_log(log)
    if models:
        records = [r for r in records if r.model in models]
    audits = parse_audit(records, examples=examples)
    if not audits:
        click.echo("no records to audit")
        return
    _print(audits, examples > 0)
    if json_out is not None:
        doc = {m: a.to_dict() for m, a in audits.items()}
        json_out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
