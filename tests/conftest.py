"""Shared fixtures: where the official data and the paper's tables are."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _find(env: str, rel: str) -> Path | None:
    if os.environ.get(env):
        return Path(os.environ[env])
    p = REPO.parent / "shared" / rel
    return p if p.exists() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    p = _find("VPBATCH_DATA", "valueportrait")
    if p is None:
        pytest.fail("the official data is missing: set VPBATCH_DATA or place ../shared/valueportrait")
    return p


@pytest.fixture(scope="session")
def paper_dir() -> Path:
    p = _find("VPBATCH_PAPER", "paper")
    if p is None:
        pytest.fail("the paper tables are missing: set VPBATCH_PAPER or place ../shared/paper")
    return p
