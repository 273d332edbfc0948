"""The Python API as a notebook user calls it: vpbatch.run, vpbatch.load, the tables, export."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import vpbatch
from vpbatch.benchmark.dims import PVQ
from vpbatch.report.tables import ANSWERS, SCORES, TRUST

REPO = Path(__file__).resolve().parent.parent

CONFIG = """
[run]
name = "api"
versions = ["v1", "v2"]
items = 60

[[models]]
name = "universalist"
provider = "sim"
sim = {profile = "universalist"}
steering = ["Power"]

[[models]]
name = "achiever"
provider = "sim"
sim = {profile = "achiever"}
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("api") / "api.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def run_dir(config: Path, data_dir: Path) -> Path:
    out = config.parent / "run"
    summary = vpbatch.run(config, out, progress=False)
    assert summary.complete
    return out


def test_import_vpbatch_is_cheap_and_names_its_api() -> None:
    code = ("import sys, vpbatch; print(sorted(m for m in sys.modules if m.startswith('vpbatch')"
            " or m in ('numpy', 'aiohttp', 'pandas')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['vpbatch']"
    for name in ("run", "run_async", "load", "export", "Run", "Table", "SweepSummary"):
        assert name in vpbatch.__all__ and getattr(vpbatch, name).__doc__


def test_run_returns_the_engines_summary_and_resumes(run_dir: Path, config: Path) -> None:
    again = vpbatch.run(config, run_dir, progress=False)
    assert isinstance(again, vpbatch.SweepSummary)
    assert again.run_dir == run_dir.resolve() or again.run_dir == run_dir
    m = again.models["universalist"]
    assert m.total == 2 * 60 * 2 and m.skipped == m.total and m.ok == 0  # nothing sent again


def test_run_async_runs_inside_a_running_loop(config: Path, tmp_path: Path,
                                             data_dir: Path) -> None:
    async def cell() -> vpbatch.SweepSummary:
        return await vpbatch.run_async(config, tmp_path / "run", progress=False)

    summary = asyncio.run(cell())
    assert summary.complete and summary.models["achiever"].ok == 120


def test_run_works_where_a_loop_already_runs_as_in_jupyter(config: Path, tmp_path: Path,
                                                          data_dir: Path) -> None:
    async def cell() -> vpbatch.SweepSummary:
        return vpbatch.run(config, tmp_path / "run", progress=False)  # no await, as users do

    assert asyncio.run(cell()).complete


def test_load_gives_the_scores_the_cli_writes(run_dir: Path, data_dir: Path) -> None:
    from vpbatch.scoring.scorer import ScoreOptions
    from vpbatch.scoring.scores_file import score_run

    doc, _, _ = score_run(run_dir, ScoreOptions(), n_boot=0)
    run = vpbatch.load(run_dir, boot=50)
    assert run.models == ["universalist", "achiever"]
    assert set(run.conditions) == {"vanilla", "steer:Power"}
    df = run.scores.to_pandas()
    row = df[(df.model == "achiever") & (df.condition == "vanilla") & (df.dimension == "Power")]
    want = doc["models"]["achiever"]["vanilla"]["pvq"]["Power"]
    assert row.score.item() == pytest.approx(want["score"], abs=1e-12)
    assert row.n_items.item() == want["n_items"]
    assert (row.ci_low <= row.score).all() and (row.score <= row.ci_high).all()
    # The survey is beside the data: each score's percentile among the human raters.
    assert row.human_percentile.item() == pytest.approx(want["human_percentile"], abs=1e-9)
    assert df.human_percentile.dropna().between(0, 100).all()


def test_a_model_only_has_rows_for_the_conditions_it_ran(run_dir: Path) -> None:
    run = vpbatch.load(run_dir, boot=0)
    df = run.scores.to_polars()
    ran = df.select("model", "condition").unique().sort("model", "condition").rows()
    assert ran == [("achiever", "vanilla"), ("universalist", "steer:Power"),
                   ("universalist", "vanilla")]
    assert run.steering.to_pandas().model.unique().tolist() == ["universalist"]
    deltas = run.deltas.to_pandas()
    assert set(deltas.condition) == {"steer:Power"}


def test_profile_is_a_models_ten_values(run_dir: Path) -> None:
    run = vpbatch.load(run_dir, boot=0)
    profile = run.profile("universalist")
    assert list(profile) == list(PVQ)
    assert max(profile, key=lambda d: profile[d]) == "Universalism"
    with pytest.raises(KeyError, match="has no condition 'steer:Power'"):
        run.profile("achiever", "steer:Power")


def test_answers_are_the_log_as_typed_columns(run_dir: Path) -> None:
    run = vpbatch.load(run_dir, boot=0)
    answers = run.answers
    assert answers.columns == [c.name for c in ANSWERS]
    assert len(answers) == 2 * 60 * 2 + 60 * 2
    df = answers.to_pandas()
    assert str(df.rating.dtype) == "Int8" and str(df.prompt_tokens.dtype) == "Int64"
    assert df.status.eq("ok").all() and df.job_id.is_unique
    ok = df[df.rating.notna()]
    assert ok.rating.between(1, 6).all()
    polars = answers.to_polars()
    assert polars.schema["rating"] == pl.Int8 and polars["rating"].null_count() == \
        int(df.rating.isna().sum())


def test_table_rows_is_a_list_so_a_first_look_can_slice_it(run_dir: Path) -> None:
    answers = vpbatch.load(run_dir, boot=0).answers
    first = answers.rows()[:1]
    assert isinstance(answers.rows(), list) and len(answers.rows()) == len(answers)
    assert first == answers.rows(limit=1) and list(first[0]) == answers.columns
    assert first[0]["job_id"] == answers["job_id"][0]


def test_export_parquet_keeps_the_documented_schema(run_dir: Path, tmp_path: Path) -> None:
    written = vpbatch.export(run_dir, tmp_path / "out", format="parquet", boot=0)
    names = sorted(p.name for p in written)
    assert names == ["alpha.parquet", "answers.parquet", "deltas.parquet", "schema.json",
                     "scores.parquet", "steering.parquet", "trust.parquet", "versions.parquet"]
    scores = pq.read_table(tmp_path / "out" / "scores.parquet")
    assert scores.schema.names == [c.name for c in SCORES] + ["human_percentile"]
    assert scores.schema.metadata[b"vpbatch.schema_version"] == b"1"
    answers = pq.read_table(tmp_path / "out" / "answers.parquet")
    assert str(answers.schema.field("rating").type) == "int8"
    schema = json.loads((tmp_path / "out" / "schema.json").read_text())
    assert [c["name"] for c in schema["tables"]["answers"]] == answers.schema.names
    loaded = vpbatch.load(run_dir, boot=0).scores.to_pandas()
    back = scores.to_pandas()
    assert np.allclose(back.score, loaded.score, equal_nan=True)


def test_the_trust_table_has_one_row_per_model_and_condition_with_documented_columns(
    run_dir: Path, tmp_path: Path
) -> None:
    run = vpbatch.load(run_dir, boot=0)
    trust = run.trust
    assert trust.columns == [c.name for c in TRUST]
    assert all(c.doc for c in TRUST)
    pairs = [(r["model"], r["condition"]) for r in trust.rows()]
    assert len(pairs) == len(set(pairs)) == 3  # universalist x {vanilla, steer:Power}, achiever
    # Two wordings in both orders would be needed: v1 and v2 alone are not measured.
    assert set(trust["verdict"].tolist()) == {"not measured"}
    written = vpbatch.export(run, tmp_path / "out", format="csv")
    schema = json.loads((tmp_path / "out" / "schema.json").read_text())
    assert [c["name"] for c in schema["tables"]["trust"]] == trust.columns
    assert tmp_path / "out" / "trust.csv" in written


def test_the_cli_exports_csv_with_nulls_as_empty_cells(run_dir: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "vpbatch", "export", str(run_dir), "--format",
                          "csv", "--out", str(tmp_path / "csv"), "--boot", "0"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert f"wrote {tmp_path / 'csv' / 'answers.csv'}" in out.stdout
    with open(tmp_path / "csv" / "answers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [c.name for c in ANSWERS]
    assert all(r["rating"] == "" or re.fullmatch(r"[1-6]", r["rating"]) for r in rows)
    assert all(r["error"] == "" for r in rows)


def test_an_empty_run_dir_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(vpbatch.VPBatchError, match="is not a run dir .* pass a dir made by"):
        vpbatch.load(tmp_path)


def test_a_missing_extra_names_the_pip_extra(run_dir: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    monkeypatch.setitem(sys.modules, "polars", None)  # as if polars were not installed
    with pytest.raises(vpbatch.MissingExtra, match=r"pip install 'vpbatch\[polars\]'"):
        vpbatch.load(run_dir, boot=0).scores.to_polars()


def test_the_api_guide_example_plots_a_profile_in_five_lines(run_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    readme = (REPO / "docs" / "guides" / "python-api.md").read_text()
    block = re.search(r"```python\n(import vpbatch.*?)```", readme, re.S)
    assert block is not None
    code = block.group(1)
    assert len(code.strip().splitlines()) == 5
    assert "'gpt-4o-2024-05-13'" in code and '"runs/demo"' in code
    code = code.replace('"runs/demo"', repr(str(run_dir))).replace(
        "'gpt-4o-2024-05-13'", "'achiever'")
    namespace: dict[str, object] = {}
    exec(compile(code, "python-api.md", "exec"), namespace)
    import matplotlib.pyplot as plt

    ax = plt.gca()
    assert [t.get_text() for t in ax.get_yticklabels()] == list(PVQ)
    plt.savefig(tmp_path / "profile.png")
    bars = [p.get_width() for p in ax.patches]
    profile = vpbatch.load(run_dir, boot=0).profile("achiever")
    assert bars == pytest.approx([profile[d] for d in PVQ], nan_ok=True)
    assert (tmp_path / "profile.png").stat().st_size > 1000
