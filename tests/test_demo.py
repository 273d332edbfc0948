"""`make run` in small: the demo serves, sweeps over real HTTP, scores, shows the simulated
profile coming back out, and a second run resumes without sending anything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vpbatch.benchmark.dataset import load_dataset
from vpbatch.config.schema import parse_config
from vpbatch.demos.demo import (
    DEFAULT_CONFIG,
    SHIPPED_TABLE2,
    SIM_URL,
    DemoResult,
    point_at,
    trust_lines,
)
from vpbatch.errors import ConfigError
from vpbatch.scoring.cube import RatingCube
from vpbatch.scoring.trust import trust_panel, trust_to_json

SMALL = """
[run]
name = "demo-small"
versions = ["v1", "v2"]

[[models]]
name = "gpt-4o-2024-05-13"
provider = "openai"
model = "replay:gpt-4o-2024-05-13"
base_url = "${SIM_URL}"
concurrency = 16

[[models]]
name = "sim-default"
provider = "openai"
model = "sim:default"
base_url = "${SIM_URL}"
concurrency = 32
personas = ["politics=left-wing"]
steering = ["Universalism", "Power"]
"""


def _demo(config: Path, run_dir: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VPBATCH_DATA": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "vpbatch.demos.demo", "--config", str(config), "--run-dir",
         str(run_dir), "--faults", "0.01", "--no-report"],
        capture_output=True, text=True, env=env, timeout=600,
    )


@pytest.mark.slow
def test_demo_recovers_the_simulated_profile_and_resumes_for_free(
    tmp_path: Path, data_dir: Path
) -> None:
    config = tmp_path / "demo.toml"
    config.write_text(SMALL)
    run_dir = tmp_path / "run"
    first = _demo(config, run_dir, data_dir)
    assert first.returncode == 0, first.stderr[-2000:]
    rho = re.search(r"recovered with Spearman ([0-9.]+)", first.stdout)
    assert rho is not None and float(rho.group(1)) >= 0.9, first.stdout
    assert "personas: 3/3 simulated shifts come back with their sign" in first.stdout
    assert (run_dir / "scores.json").exists() and (run_dir / "log.jsonl").exists()
    assert f"results: {run_dir}/" in first.stdout

    again = _demo(config, run_dir, data_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "answered 0 of 0 requests" in again.stdout  # resumed: nothing asked twice


@pytest.mark.slow
def test_the_demo_prints_the_trust_verdicts_of_the_recorded_models(
    official_cube: RatingCube, data_dir: Path, tmp_path: Path
) -> None:
    trust = trust_to_json(trust_panel(official_cube, load_dataset(data_dir), n_boot=0))
    result = DemoResult(tmp_path, 0.0, {}, None, trust=trust,  # type: ignore[arg-type]
                        replayed=list(official_cube.models))
    text = "\n".join(trust_lines(result))
    assert ("Of the 33 recorded models' vanilla profiles, 20 replicate across answer order and "
            "wording, 8 are weak and 5 do not replicate") in text
    assert "does not replicate (5): claude-3-5-haiku-20241022" in text
    assert "gpt-4o-mini-2024-07-18 (+0.25)" in text


def test_the_demo_config_points_every_model_at_the_simulator(data_dir: Path) -> None:
    cfg = parse_config(DEFAULT_CONFIG.read_text(), check_env=False, check_urls=False)
    assert point_at(cfg, "http://127.0.0.1:1/v1") == len(cfg.models) == 34
    replayed = {m.model for m in cfg.models if m.model.startswith("replay:")}
    assert len(replayed) == 33
    sim = [m for m in cfg.models if m.model.startswith("sim")]
    assert len(sim) == 1 and sim[0].steering == "all" and sim[0].personas


def test_a_config_without_the_placeholder_is_refused() -> None:
    cfg = parse_config(SMALL.replace(SIM_URL, "http://127.0.0.1:9/v1"), check_env=False)
    with pytest.raises(ConfigError, match="SIM_URL"):
        point_at(cfg, "http://127.0.0.1:1/v1")


def test_the_table2_shipped_for_fresh_clones_is_the_papers(paper_dir: Path) -> None:
    assert SHIPPED_TABLE2.read_bytes() == (paper_dir / "table2_values.json").read_bytes()


def test_the_paper_tables_committed_for_fresh_clones_are_the_papers(paper_dir: Path) -> None:
    committed = Path(__file__).parent / "paper"
    if paper_dir == committed:
        pytest.skip("no $VPBATCH_PAPER or ../shared/paper to compare the committed tables with")
    for table in sorted(committed.glob("*.json")):
        assert table.read_bytes() == (paper_dir / table.name).read_bytes(), table.name
