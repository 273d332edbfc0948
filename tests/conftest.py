"""Shared fixtures: where the official data and the paper's tables are."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import vpbatch.providers  # noqa: F401 (registers the builtin providers)
from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.scoring.cube import RatingCube, cube_from_log

REPO = Path(__file__).resolve().parent.parent
OFFICIAL_OUTPUTS = layout.OUTPUTS  # the authors' recorded answers, 33 models


def _find(env: str, rel: str) -> Path | None:
    if os.environ.get(env):
        return Path(os.environ[env])
    p = REPO.parent / "shared" / rel
    return p if p.exists() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    p = _find("VPBATCH_DATA", "valueportrait")
    if p is None and layout.looks_like_data(layout.cache_dir()):
        p = layout.cache_dir()  # what `make test` fetched on first use in a fresh clone
    if p is None:
        pytest.fail(
            "the official data is missing: run `make test` (it fetches it on first use), "
            "set VPBATCH_DATA, or place ../shared/valueportrait"
        )
    return p


@pytest.fixture(scope="session")
def paper_dir() -> Path:
    p = _find("VPBATCH_PAPER", "paper")
    if p is None:
        # The paper's text and tables are not fetched (they are not in the upstream data): a
        # fresh clone skips the tests that read them; CI, which has ../shared, must not.
        msg = "the paper's tables are missing: set VPBATCH_PAPER or place ../shared/paper"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture(scope="session")
def recorded_file(data_dir: Path) -> Callable[[str], Path]:
    """An authors' outputs file by its path under OUTPUTS (`openai/gpt-4o_v1_results.json`).

    In either layout: plain `.json` as upstream and the fetch have it, or `.json.xz` (../shared).
    """

    def find(rel: str) -> Path:
        p = data_dir / OFFICIAL_OUTPUTS / rel
        xz = p.with_name(p.name + ".xz")
        if not p.is_file() and not xz.is_file():
            pytest.fail(f"{p} (or its .xz) is missing: `vpbatch data ensure --with-outputs`")
        return p if p.is_file() else xz

    return find


@pytest.fixture(scope="session")
def official_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run dir holding the 33 recorded models, imported once per session (read-only)."""
    from vpbatch.log.importer import import_official

    run = tmp_path_factory.getbasetemp() / "official33"
    if not (run / "log.jsonl").exists():
        shutil.rmtree(run, ignore_errors=True)  # a half-written import from a killed session
        import_official(data_dir / OFFICIAL_OUTPUTS, run)
    return run


@pytest.fixture(scope="session")
def official_cube(official_run: Path, data_dir: Path) -> RatingCube:
    """The 33 recorded models' answers as a cube."""
    return cube_from_log(official_run / "log.jsonl", load_dataset(data_dir))
