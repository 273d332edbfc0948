"""`vpbatch data fetch|path|verify`: get the official data, say where it is, check it."""

from __future__ import annotations

from pathlib import Path

import click

from vpbatch.benchmark.dataset import resolve_data_dir
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
    """The Value Portrait data: fetch it, locate it, verify it."""


@data.command("fetch")
@click.option("--with-outputs", is_flag=True, help="Also fetch the 33 models' recorded outputs.")
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
