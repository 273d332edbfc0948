"""Shards from the scheduler: Slurm job arrays, Kubernetes Indexed Jobs, each shard's limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vpbatch.config.schema import parse_config
from vpbatch.errors import ConfigError
from vpbatch.sweep.shards import resolve_shard, shard_from_env, shard_limits

CONFIG = """
[run]
name = "sharded"
versions = ["v1"]
items = 10

[[models]]
name = "fast"
provider = "sim"
rpm = 600
tpm = 90000

[[models]]
name = "unlimited"
provider = "sim"
"""


def _slurm(task: int, count: int, low: int, step: int = 1) -> dict[str, str]:
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count),
            "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_STEP": str(step),
            "SLURM_ARRAY_TASK_MAX": str(low + (count - 1) * step)}


@pytest.mark.parametrize(("env", "want"), [
    (_slurm(0, 4, 0), (0, 4)),          # --array=0-3
    (_slurm(3, 4, 0), (3, 4)),
    (_slurm(1, 4, 1), (0, 4)),          # --array=1-4: task 1 is the first part
    (_slurm(4, 4, 1), (3, 4)),
    (_slurm(7, 4, 1, step=2), (3, 4)),  # --array=1-7:2
])
def test_a_slurm_array_gives_index_and_count(env: dict[str, str], want: tuple[int, int]) -> None:
    assert shard_from_env(env) == want
    assert resolve_shard("auto", env) == want


def test_a_slurm_array_that_is_not_one_range_is_refused() -> None:
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3",
           "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7"}  # --array=1,3,7
    with pytest.raises(ConfigError, match=r"is not one range; submit it as --array=0-N"):
        shard_from_env(env)


def test_a_slurm_task_without_min_is_refused_not_guessed() -> None:
    with pytest.raises(ConfigError, match="SLURM_ARRAY_TASK_MIN is not set"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_a_kubernetes_indexed_job_gives_index_and_count() -> None:
    env = {"JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "3"}
    assert shard_from_env(env) == (0, 3)
    assert shard_from_env({**env, "JOB_COMPLETION_INDEX": "2"}) == (2, 3)


def test_a_kubernetes_job_without_the_count_says_which_variable_to_set() -> None:
    with pytest.raises(ConfigError, match=r"set JOB_COMPLETIONS in the Job's env to the same "
                                          r"number as spec.completions"):
        shard_from_env({"JOB_COMPLETION_INDEX": "1"})
    with pytest.raises(ConfigError, match=r"JOB_COMPLETION_INDEX=3 is outside 0..2"):
        shard_from_env({"JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "3"})


def test_auto_without_a_scheduler_is_refused_clearly() -> None:
    with pytest.raises(ConfigError, match=r"found no scheduler: neither SLURM_ARRAY_TASK_ID .* "
                                          r"nor JOB_COMPLETION_INDEX .* pass --shard K/N"):
        resolve_shard("auto", {})


def test_k_of_n_is_still_one_based() -> None:
    assert resolve_shard("2/4", {}) == (1, 4)
    assert resolve_shard(None, {}) is None


def test_each_shard_paces_itself_at_its_share_of_the_limits() -> None:
    cfg = parse_config(CONFIG, check_env=False)
    part = shard_limits(cfg, (0, 3))
    assert [(m.rpm, m.tpm) for m in part.models] == [(200, 30000), (None, None)]
    assert [(m.rpm, m.tpm) for m in cfg.models] == [(600, 90000), (None, None)]  # untouched
    assert shard_limits(cfg, None) is cfg


def test_limits_stated_per_shard_are_kept_whole() -> None:
    cfg = parse_config(CONFIG.replace('items = 10', 'items = 10\nlimits_per_shard = true'),
                       check_env=False)
    assert [(m.rpm, m.tpm) for m in shard_limits(cfg, (1, 3)).models] == [(600, 90000),
                                                                           (None, None)]


def _plan(tmp_path: Path, *args: str, env: dict[str, str], text: str = CONFIG
          ) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(text)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
    return subprocess.run([sys.executable, "-m", "vpbatch", "plan", str(cfg), *args],
                          capture_output=True, text=True, env={**clean, **env}, check=False)


def test_plan_shows_the_shard_and_its_divided_limits(tmp_path: Path, data_dir: Path) -> None:
    out = _plan(tmp_path, "--shard", "auto", env=_slurm(2, 3, 1))
    assert out.returncode == 0, out.stderr
    assert "shard 2/3" in out.stdout
    assert "each shard paces itself at 1/3 of every rpm/tpm" in out.stdout
    js = _plan(tmp_path, "--shard", "auto", "--json", env=_slurm(2, 3, 1))
    models = json.loads(js.stdout)["models"]
    assert models[0]["rpm"] == 200 and models[0]["tpm"] == 30000
    whole = _plan(tmp_path, "--shard", "2/3", "--json", env={},
                  text=CONFIG.replace('items = 10', 'items = 10\nlimits_per_shard = true'))
    assert json.loads(whole.stdout)["models"][0]["rpm"] == 600


def test_run_with_auto_and_no_scheduler_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(CONFIG)
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
    out = subprocess.run([sys.executable, "-m", "vpbatch", "run", str(cfg), "--run-dir",
                          str(tmp_path / "r"), "--shard", "auto"], capture_output=True,
                         text=True, env=clean, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("error: --shard auto found no scheduler")
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "log.jsonl").exists()


# -- N shards as N processes against one simulator, merged ---------------------------------------
SWEEP = """
[run]
name = "grid"
versions = ["v1", "v2"]
items = 120

[[models]]
name = "sim-a"
provider = "openai"
model = "sim:universalist"
base_url = "{url}"
rpm = 60000

[[models]]
name = "sim-b"
provider = "openai"
model = "sim:achiever"
base_url = "{url}"
steering = ["Power", "Universalism"]
"""


@pytest.mark.slow
def test_shards_run_as_processes_merge_to_the_unsharded_scores(tmp_path: Path,
                                                               data_dir: Path) -> None:
    from vpbatch.demos.demo import SimProcess

    server = SimProcess.start([], tmp_path / "sim.port")
    try:
        cfg = tmp_path / "grid.toml"
        cfg.write_text(SWEEP.format(url=server.url))
        clean = {k: v for k, v in os.environ.items()
                 if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
        clean["VPBATCH_DATA"] = str(data_dir)
        # Three shards the way schedulers start them: a Slurm array that starts at 1 and a
        # Kubernetes Indexed Job's pod, all at once, each into its own run dir.
        envs = [_slurm(1, 3, 1), _slurm(2, 3, 1),
                {"JOB_COMPLETION_INDEX": "2", "JOB_COMPLETIONS": "3"}]
        procs = [subprocess.Popen([sys.executable, "-m", "vpbatch", "run", str(cfg), "--shard",
                                   "auto", "--run-dir", str(tmp_path / f"shard{k}"), "--quiet"],
                                  env={**clean, **env}, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
                 for k, env in enumerate(envs)]
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        stats = server.stats()
        total = 120 * 2 + 120 * 2 * 3  # sim-a vanilla; sim-b vanilla + 2 steering
        # Every job was sent by exactly one shard, once.
        assert stats["requests"] == stats["distinct_requests"] == total
        assert stats["max_attempts_seen"] == 1
        merged = subprocess.run([sys.executable, "-m", "vpbatch", "merge",
                                 str(tmp_path / "merged"),
                                 *(str(tmp_path / f"shard{k}") for k in range(3))],
                                env=clean, capture_output=True, text=True, check=False)
        assert merged.returncode == 0, merged.stderr
        whole = subprocess.run([sys.executable, "-m", "vpbatch", "run", str(cfg), "--run-dir",
                                str(tmp_path / "whole"), "--quiet"], env=clean,
                               capture_output=True, text=True, check=False)
        assert whole.returncode == 0, whole.stderr
    finally:
        server.stop()
    sizes = [len((tmp_path / f"shard{k}" / "log.jsonl").read_bytes().splitlines())
             for k in range(3)]
    assert sum(sizes) == total and min(sizes) > total / 6  # a uniform split, nothing twice
    from vpbatch.scoring.scorer import ScoreOptions
    from vpbatch.scoring.scores_file import score_run

    got, _, _ = score_run(tmp_path / "merged", ScoreOptions(), data=str(data_dir))
    want, _, _ = score_run(tmp_path / "whole", ScoreOptions(), data=str(data_dir))
    assert got["models"] == want["models"]
    assert got["answers"]["ok"] == want["answers"]["ok"] == total
