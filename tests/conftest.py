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
from vpbatch.benchmark.ensure import ensure_data
from vpbatch.errors import DataError
from vpbatch.scoring.cube import RatingCube, cube_from_log

REPO = Path(__file__).resolve().parent.parent
OFFICIAL_OUTPUTS = layout.OUTPUTS  # the authors' recorded answers, 33 models


PAPER_TABLES = REPO / "tests" / "paper"  # the paper's tables, committed: the scorer's truth
PAPER_TEXT = "value-portrait-acl2025.txt"


def _find(env: str, rel: str) -> Path | None:
    """$env, else ../shared/<rel> unless VPBATCH_NO_SHARED is set (the fresh-clone check)."""
    if os.environ.get(env):
        return Path(os.environ[env])
    if os.environ.get("VPBATCH_NO_SHARED"):
        return None
    p = REPO.parent / "shared" / rel
    return p if p.exists() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data root as the program finds it: $VPBATCH_DATA, ../shared, else the cache,
    fetched on first use ($VPBATCH_DATA_URL: a mirror) with the recorded outputs."""
    p = _find("VPBATCH_DATA", "valueportrait")
    if p is not None:
        return p
    try:
        return ensure_data(with_outputs=True)
    except DataError as exc:
        pytest.fail(f"the official data is missing and could not be fetched: {exc}")


@pytest.fixture(scope="session")
def paper_dir() -> Path:
    """The paper's tables: $VPBATCH_PAPER's, else ../shared/paper's, else the committed copy."""
    return _find("VPBATCH_PAPER", "paper") or PAPER_TABLES


@pytest.fixture(scope="session")
def paper_text() -> str:
    """The paper's text, which is not in the repo: from $VPBATCH_PAPER or ../shared/paper."""
    p = _find("VPBATCH_PAPER", "paper")
    if p is None or not (p / PAPER_TEXT).is_file():
        msg = (f"the paper's text ({PAPER_TEXT}) is missing: set VPBATCH_PAPER to the folder "
               "holding it, or place ../shared/paper")
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return (p / PAPER_TEXT).read_text("utf-8")


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
