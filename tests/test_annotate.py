"""`vpbatch data annotate`: the item annotation rebuilt from the raw survey, and why it differs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from vpbatch.benchmark import layout
from vpbatch.benchmark.annotate import Rebuild, rebuild, spearman
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.survey import load_survey

GROUP_0 = {1021, 1061, 2041, 2053, 3030, 3025, 4001, 4044}


@pytest.fixture(scope="module")
def official(data_dir: Path) -> Rebuild:
    ds = load_dataset(data_dir)
    return rebuild(ds, load_survey(ds))


def test_agreement_counts_are_pinned(official: Rebuild) -> None:
    # A change to the data or to the statistic must show up here, not pass silently.
    assert official.compared == {"pvq": 5200, "higher_pvq": 2080, "bfi": 2600}
    assert official.agree == {"pvq": 4802, "higher_pvq": 1960, "bfi": 2520}
    assert len(official.mismatches) == 398 + 120 + 80


def test_every_pair_not_reproduced_is_group_0s_and_explained_by_p186(official: Rebuild) -> None:
    assert {m.portrait_id for m in official.mismatches} == GROUP_0
    assert {m.group for m in official.mismatches} == {0}
    (cause,) = official.causes
    assert cause.startswith("P186 rated groups 0 and 5")
    assert "the release does not contain" in cause
    assert all(m.reason == cause for m in official.mismatches)
    # Ten of them cross the paper's cut (r > 0.3 and p < 0.05) one way or the other.
    assert sum(m.flips() for m in official.mismatches) == 10


def test_spearman_is_scipys_for_every_dimension_at_once() -> None:
    rng = np.random.default_rng(2)
    x = rng.integers(1, 7, 40).astype(float)
    y = np.round(rng.normal(0, 1, (40, 5)), 1)  # ties on both sides, as in the survey
    r, p = spearman(x, y)
    for d in range(5):
        want = stats.spearmanr(x, y[:, d])
        assert r[d] == pytest.approx(want.statistic, abs=1e-12)
        assert p[d] == pytest.approx(want.pvalue, rel=1e-9)


def _copy_data(data_dir: Path, dest: Path) -> None:
    for rel in (layout.TAGGED, *layout.CORRELATIONS.values(), layout.SURVEY,
                layout.VALUE_SCORES):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / rel, dest / rel)


def test_a_changed_rating_is_reported_without_blaming_a_rater(data_dir: Path,
                                                              tmp_path: Path) -> None:
    _copy_data(data_dir, tmp_path)
    survey = json.loads((tmp_path / layout.SURVEY).read_text("utf-8"))
    opt = survey[2]["1038"][0]  # group 2, item (1038, 1)
    opt["data"][0][0] = 7 - opt["data"][0][0]  # ratings are whole: this always changes it
    (tmp_path / layout.SURVEY).write_text(json.dumps(survey), "utf-8")
    ds = load_dataset(tmp_path)
    got = rebuild(ds, load_survey(ds))
    group2 = [m for m in got.mismatches if m.group == 2]
    assert group2 and {(m.portrait_id, m.option_id) for m in group2} == {(1038, 1)}
    assert group2[0].reason.startswith("not reproduced from the raw survey (group 2)")
    assert len(got.causes) == 2


def test_cli_prints_the_counts_and_each_pair_it_cannot_reproduce(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vpbatch", "data", "annotate", "--data", str(data_dir),
         "--json", str(tmp_path / "annotate.json")],
        capture_output=True, text=True, env={**os.environ}, check=True, timeout=120)
    lines = out.stdout.splitlines()
    assert lines[:3] == [
        "pvq: 4802 of 5200 pairs agree with the published r and p (to 1e-09)",
        "higher_pvq: 1960 of 2080 pairs agree with the published r and p (to 1e-09)",
        "bfi: 2520 of 2600 pairs agree with the published r and p (to 1e-09)",
    ]
    assert "not reproduced (598 pairs), cause 1: P186" in out.stdout
    items = [line for line in lines if line.startswith(("  pvq ", "  higher_pvq ", "  bfi "))]
    assert len(items) == 3 * 40  # every item of group 0, per family
    doc = json.loads((tmp_path / "annotate.json").read_text("utf-8"))
    assert len(doc["mismatches"]) == 598 and doc["agree"]["pvq"] == 4802


def test_cli_without_the_survey_says_how_to_get_it(data_dir: Path, tmp_path: Path) -> None:
    for rel in (layout.TAGGED, *layout.CORRELATIONS.values()):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / rel, tmp_path / rel)
    out = subprocess.run([sys.executable, "-m", "vpbatch", "data", "annotate", "--data",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "vpbatch data fetch" in out.stderr and "Traceback" not in out.stderr
