"""The report's overview: every model x the 10 values first, reference rows from the paper."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import orjson
import pytest
from test_report import make_run

from vpbatch.benchmark.dims import PVQ
from vpbatch.report import write_report
from vpbatch.report.overview import Row, cell_colour, overview, similarity_order
from vpbatch.scoring.reference import cache_path, paper_reference
from vpbatch.scoring.scorer import ScoreOptions


def test_similar_profiles_sit_next_to_each_other() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 10), rng.normal(0, 1, 10)
    rows = np.array([a, b, a + 0.01 * rng.normal(0, 1, 10), b * 1.1, np.full(10, np.nan)])
    order = similarity_order(rows)
    assert order[-1] == 4  # no profile: last
    pos = {i: order.index(i) for i in range(4)}
    assert abs(pos[0] - pos[2]) == 1 and abs(pos[1] - pos[3]) == 1


def test_colours_run_from_blue_through_white_to_red() -> None:
    assert cell_colour(0.0, 1.0) == "#ffffff"
    assert cell_colour(1.0, 1.0) == "#b2182b" and cell_colour(5.0, 1.0) == "#b2182b"
    assert cell_colour(-1.0, 1.0) == "#2166ac"
    assert cell_colour(float("nan"), 1.0) == "#f4f4f4"


def test_each_row_carries_its_rank_under_every_ordering() -> None:
    rows = [Row("low", np.linspace(-1, 1, 10)), Row("high", np.linspace(1, -1, 10)),
            Row("ref", np.zeros(10) + np.arange(10) * 0.01, reference=True)]
    html = overview(rows)
    styles = dict(re.findall(r'<div class="ovrow[^"]*" style="([^"]+)"><span title="([^"]+)"',
                             html)[i][::-1] for i in range(3))
    # Universalism (column 0): high first, then ref, then low.
    assert "--o0:0" in styles["high"] and "--o0:1" in styles["ref (paper)"]
    assert "--o0:2" in styles["low"]
    assert '<div class="ovrow ref"' in html and "for reference" in html


@pytest.fixture(scope="module")
def reference_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
def test_reference_scores_are_the_papers_table2_and_are_cached(
    data_dir: Path, paper_dir: Path, reference_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vpbatch.benchmark.dataset import load_dataset

    monkeypatch.setenv("VPBATCH_CACHE", str(reference_cache))
    ds = load_dataset(data_dir)
    ref = paper_reference(ds)
    assert len(ref) == 33
    table2 = json.loads((paper_dir / "table2_values.json").read_text())
    row = next(r for r in table2.values() if r["file_model"] == "gpt-4o-2024-05-13")
    got = ref["gpt-4o-2024-05-13"]["pvq"]
    assert [round(float(x), 2) for x in got] == pytest.approx([row[d] for d in PVQ], abs=0.0051)
    path = cache_path(ScoreOptions())
    assert path.is_file() and str(path).startswith(str(reference_cache))
    # A second call reads the cache: a value written there comes back.
    doc = orjson.loads(path.read_bytes())
    doc["models"]["gpt-4o-2024-05-13"]["pvq"][0] = 9.5
    path.write_bytes(orjson.dumps(doc))
    assert paper_reference(ds)["gpt-4o-2024-05-13"]["pvq"][0] == 9.5
    path.write_bytes(b"{torn")  # a damaged cache is computed again, not an error
    assert paper_reference(ds)["gpt-4o-2024-05-13"]["pvq"][0] == pytest.approx(got[0])


@pytest.mark.slow
def test_report_opens_with_the_overview_and_shows_reference_rows(
    tmp_path: Path, data_dir: Path, reference_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPBATCH_CACHE", str(reference_cache))
    root = make_run(tmp_path / "run", data_dir, personas=(), steer=())
    md, html = write_report(root, data=data_dir, n_boot=0, reference="paper")
    page = html.read_text()
    sections = re.findall(r'<section id="([a-z]+)">', page)
    assert sections[:3] == ["overview", "trust", "profiles"]
    assert page.count('<div class="ovrow ref"') == 33
    assert page.count('<div class="ovrow"') == 2
    assert "<details><summary>Per-model charts" in page
    text = md.read_text()
    assert "### Reference: the paper's recorded models (vanilla)" in text
    assert "| gpt-4o-2024-05-13 |" in text
    _, plain = write_report(root, data=data_dir, n_boot=0)
    assert 'class="ovrow ref"' not in plain.read_text()
