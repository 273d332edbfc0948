"""`vpbatch data fetch|path|verify`: get the official data, say where it is, check it."""

from __future__ import annotations

from pathlib import Path

import click

from vpbatch.benchmark.dataset import resolve_data_dir
from vpbatch.benchmark.ensure import ensure_data
from vpbatch.benchmark.fetch import check, fetch
from vpbatch.benchmark.layout import ManifestFile, cache_dir, load_manifest

__all__ = ["data"]

_DATA_OPTION = click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data root (else $VPBATCH_DATA, else the fetched cache).",
)


@click.group()
def data() -> None:
    """The Value Portrait data: fetch it, locate it, verify it, rebuild its annotation."""


@data.command("fetch")
@click.option("--with-outputs", is_flag=True,
              help="Also fetch the 33 models' recorded outputs and the authors' scores.")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put the files (default: the cache, $VPBATCH_CACHE or ~/.cache/vpbatch).",
)
def fetch_cmd(with_outputs: bool, dest: Path | None) -> None:
    """Download the files at the pinned commit, check each sha256, write atomically."""
    m = load_manifest()
    target = dest if dest is not None else cache_dir()
    click.echo(f"fetching {m.repository}@{m.commit[:7]} into {target}", err=True)

    def progress(mf: ManifestFile, status: str) -> None:
        click.echo(f"  {status} {mf.path}", err=True)

    result = fetch(target, with_outputs=with_outputs, on_file=progress)
    click.echo(
        f"{len(result.fetched)} fetched, {len(result.present)} already present and verified",
        err=True,
    )
    if dest is not None and dest.resolve() != cache_dir().resolve():
        # Only the cache is found on its own; anywhere else needs pointing at.
        click.echo(f"use it with --data {dest} or VPBATCH_DATA={dest}", err=True)
    click.echo(str(result.dest))


@data.command("ensure")
@_DATA_OPTION
@click.option("--with-outputs", is_flag=True,
              help="Also the 33 models' recorded outputs and the authors' scores.")
def ensure_cmd(data_dir: Path | None, with_outputs: bool) -> None:
    """Use the data that is there (--data, $VPBATCH_DATA, the cache); fetch what the cache lacks.

    `make run` and `make test` call it: a fresh clone fetches its data on first use.
    """
    click.echo(str(ensure_data(data_dir, with_outputs=with_outputs)))


@data.command("path")
@_DATA_OPTION
def path_cmd(data_dir: Path | None) -> None:
    """Print the data root that commands will use."""
    click.echo(str(resolve_data_dir(data_dir)))


@data.command("verify")
@_DATA_OPTION
@click.option(
    "--with-outputs", is_flag=True, help="Require all recorded outputs (else: check those present)."
)
def verify_cmd(data_dir: Path | None, with_outputs: bool) -> None:
    """Check every file's sha256 against the manifest the package ships."""
    # An explicit dir is checked as is: verify must name a missing file, not refuse the dir.
    root = data_dir if data_dir is not None and data_dir.is_dir() else resolve_data_dir(data_dir)
    n = check(root, with_outputs=with_outputs)
    click.echo(f"{root}: {n} files match the manifest")


@data.command("annotate")
@_DATA_OPTION
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write every comparison and mismatch to this file.")
def annotate_cmd(data_dir: Path | None, json_path: Path | None) -> None:
    """Rebuild every item × dimension Spearman r and p from the raw survey; compare them with
    data/correlation_results; explain each pair that does not agree."""
    import orjson

    from vpbatch.benchmark.annotate import TOLERANCE, rebuild
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.benchmark.survey import load_survey

    ds = load_dataset(data_dir)
    result = rebuild(ds, load_survey(ds))
    for fam, n in result.compared.items():
        click.echo(f"{fam}: {result.agree[fam]} of {n} pairs agree with the published r and p "
                   f"(to {TOLERANCE:g})")
    if not result.mismatches:
        click.echo("the raw survey reproduces every published pair")
    for k, cause in enumerate(result.causes, 1):
        mine = [m for m in result.mismatches if m.reason == cause]
        flips = sum(m.flips() for m in mine)
        click.echo(f"\nnot reproduced ({len(mine)} pairs), cause {k}: {cause}")
        click.echo(f"  {flips} of them would change whether the item counts under the paper's "
                   "rule (r > 0.3 and p < 0.05); per item, Spearman r published -> rebuilt:")
        by_item: dict[tuple[str, int, int], list[str]] = {}
        for m in result.mismatches:
            if m.reason == cause:
                by_item.setdefault((m.family, m.portrait_id, m.option_id), []).append(
                    f"{m.dimension} {m.published_r:+.3f} -> {m.rebuilt_r:+.3f}"
                    + (" (flips)" if m.flips() else ""))
        for (fam, pid, oid), cells in by_item.items():
            click.echo(f"  {fam} {pid}/{oid}: " + "; ".join(cells))
    if json_path is not None:
        json_path.write_bytes(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2))
        click.echo(f"wrote {json_path}")
