"""A run dir whose log holds job ids from before they covered the whole request body (commit
1963436) is refused on resume: resuming would send every job again and mix the answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.cli import main
from vpbatch.config.schema import Config, load_config
from vpbatch.errors import RunDirError
from vpbatch.log.records import job_id
from vpbatch.sweep.engine import SweepSummary, sweep
from vpbatch.sweep.grid import iter_model_jobs, request_params

TEXT = """
[run]
name = "old"
versions = ["v1", "v2"]
items = 4
repeats = 2
temperature = {temperature}

[[models]]
provider = "sim"
model = ["sim:universalist", "sim:achiever"]
"""


@pytest.fixture(autouse=True)
def _data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))


def config(tmp_path: Path, temperature: float = 0.0) -> Config:
    p = tmp_path / "sweep.toml"
    p.write_text(TEXT.format(temperature=temperature), encoding="utf-8")
    return load_config(p, check_env=False)


def run(cfg: Config, run_dir: Path, **kw: Any) -> SweepSummary:
    async def go() -> SweepSummary:
        return await sweep(cfg, run_dir, progress=False, handle_signals=False, **kw)

    return anyio.run(go)


def old_id(cfg: Config, job: Any) -> str:
    """The id the grid gave a job before commit 1963436: a hand-picked identity."""
    m = next(m for m in cfg.models if m.name == job.model)
    params = request_params(cfg, m)
    return job_id({"base_url": m.base_url, "max_tokens": params.max_tokens,
                   "messages": job.messages, "model": m.name, "model_id": m.model,
                   "provider": m.provider, "seed": params.seed,
                   "temperature": params.temperature, "repeat": job.repeat})


def to_old_ids(cfg: Config, log: Path) -> None:
    """Rewrite a log as an older vpbatch would have written it: the same jobs, old ids."""
    ds, conds = load_dataset(), load_conditions()
    old = {job.job_id: old_id(cfg, job) for m in cfg.models
           for job in iter_model_jobs(cfg, m, ds, conds)}
    rows = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    log.write_bytes(b"".join(orjson.dumps({**r, "job_id": old[r["job_id"]]}) + b"\n"
                             for r in rows))


def test_a_log_with_old_job_ids_is_refused_on_resume_and_left_as_it_is(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    first = run(cfg, tmp_path / "run")
    assert first.complete and sum(m.ok for m in first.models.values()) == 32
    log = tmp_path / "run" / "log.jsonl"
    to_old_ids(cfg, log)
    before = log.read_bytes()
    with pytest.raises(RunDirError) as exc:
        run(cfg, tmp_path / "run")
    msg = str(exc.value)
    assert "written by an older vpbatch: none of the 32 jobs checked" in msg
    assert "run this config in a new --run-dir" in msg and exc.value.exit_code == 2
    assert log.read_bytes() == before


def test_the_cli_refuses_it_in_one_line_with_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = config(tmp_path)
    run(cfg, tmp_path / "run")
    to_old_ids(cfg, tmp_path / "run" / "log.jsonl")
    with pytest.raises(SystemExit) as exc:
        main(["run", str(tmp_path / "sweep.toml"), "--run-dir", str(tmp_path / "run"),
              "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "older vpbatch" in err and len(err.strip().splitlines()) == 1


def test_a_log_whose_head_an_earlier_forced_config_wrote_still_resumes(tmp_path: Path) -> None:
    # Lines of the config before a --force have other ids for the same keys: not an old log,
    # since the lines written since have this vpbatch's ids.
    run(config(tmp_path, temperature=0.5), tmp_path / "run")
    cfg = config(tmp_path)
    forced = run(cfg, tmp_path / "run", force=True)
    assert sum(m.sent for m in forced.models.values()) == 32
    again = run(cfg, tmp_path / "run")
    assert sum(m.sent for m in again.models.values()) == 0
