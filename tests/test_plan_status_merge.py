"""`plan`, `status` and `merge` through the CLI, on small real configs and real log files."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vpbatch.benchmark.conditions import Conditions, load_conditions
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.cli import main
from vpbatch.config.schema import Config, load_config
from vpbatch.log.records import FAILED, Record
from vpbatch.log.rundir import prepare_run_dir
from vpbatch.log.runlog import RunLog
from vpbatch.sweep.grid import Job, iter_model_jobs

Cap = pytest.CaptureFixture[str]
TEXT = """
[run]
name = "small"
versions = ["v1", "v2"]
items = 10
repeats = 2

[[models]]
name = "cheap"
provider = "openai"
model = "gpt-4o-mini"
rpm = 60
tpm = 10000
price_in = 0.15
price_out = 0.6

[[models]]
name = "bulk"
provider = "anthropic"
model = "claude-3-5-haiku"
mode = "batch"
max_tokens = 8
price_in = 1.0
price_out = 2.0
personas = []

[grids]
personas = ["gender=female"]
"""


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def config(tmp_path: Path, text: str = TEXT) -> tuple[Path, Config]:
    p = tmp_path / "sweep.toml"
    p.write_text(text)
    return p, load_config(p, check_env=False)


def cli_json(capsys: Cap, *args: str) -> Any:
    main([*args, "--json"])
    return json.loads(capsys.readouterr().out)


def all_jobs(
    cfg: Config, ds: Dataset, conds: Conditions, *, shard: tuple[int, int] | None = None
) -> Iterator[Job]:
    """Every model's jobs, one model after another."""
    return itertools.chain.from_iterable(
        iter_model_jobs(cfg, m, ds, conds, shard=shard) for m in cfg.models)


def record(job: Job, **kw: object) -> Record:
    """A deterministic answer: the same job gives the same line in any run."""
    fields: dict[str, object] = dict(
        job_id=job.job_id, model=job.model, condition=job.condition, version=job.version,
        portrait_id=job.portrait_id, option_id=job.option_id, repeat=job.repeat,
        raw="like me", rating=1 + int(job.job_id[:4], 16) % 6,
        usage={"prompt_tokens": 100, "completion_tokens": 3}, ts=0.0)
    fields.update(kw)
    return Record(**fields)  # type: ignore[arg-type]


def test_plan_counts_jobs_tokens_cost_and_time(
    tmp_path: Path, capsys: Cap, ds: Dataset, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)  # planning needs no key
    path, cfg = config(tmp_path)
    out = cli_json(capsys, "plan", str(path), "--data", str(data_dir))
    cheap, bulk = out["models"]
    assert cheap["jobs"] == cheap["requests"] == 10 * 2 * 2 * 2  # items·versions·conds·repeats
    assert bulk["jobs"] == 10 * 2 * 1 * 2
    assert cheap["max_completion_tokens"] == cheap["jobs"] * 64
    assert bulk["max_completion_tokens"] == bulk["jobs"] * 8
    # Prompt tokens: characters/4 of every message plus chat overhead, summed job by job.
    conds = load_conditions()
    jobs = list(iter_model_jobs(cfg, cfg.models[0], ds, conds))
    want = sum(sum(len(m["content"]) / 4 + 4 for m in j.messages) + 3 for j in jobs)
    assert abs(cheap["prompt_tokens"] - math.ceil(want)) <= 1
    cost = (cheap["prompt_tokens"] * 0.15 + cheap["max_completion_tokens"] * 0.6) / 1e6
    assert cheap["cost_usd"] == pytest.approx(cost)
    batch = (bulk["prompt_tokens"] * 1.0 + bulk["max_completion_tokens"] * 2.0) / 1e6 / 2
    assert bulk["cost_usd"] == pytest.approx(batch)  # batch APIs bill half
    assert cheap["minutes_rpm"] == pytest.approx(80 / 60)
    assert cheap["minutes_tpm"] == pytest.approx(
        (cheap["prompt_tokens"] + cheap["max_completion_tokens"]) / 10000)


def test_plan_table_says_tokens_are_estimates(tmp_path: Path, capsys: Cap, data_dir: Path) -> None:
    path, _ = config(tmp_path)
    main(["plan", str(path), "--data", str(data_dir)])
    out = capsys.readouterr().out
    assert "estimate" in out and "cheap" in out and "bulk" in out and "total" in out


def test_plan_shards_add_up_to_the_whole(tmp_path: Path, capsys: Cap, data_dir: Path) -> None:
    path, _ = config(tmp_path)
    whole = cli_json(capsys, "plan", str(path), "--data", str(data_dir))
    parts = [cli_json(capsys, "plan", str(path), "--data", str(data_dir), "--shard", f"{k}/2")
             for k in (1, 2)]
    for i in range(2):
        assert sum(p["models"][i]["jobs"] for p in parts) == whole["models"][i]["jobs"]


def test_status_counts_done_failed_parse_failures_tokens_and_cost(
    tmp_path: Path, capsys: Cap, ds: Dataset
) -> None:
    _, cfg = config(tmp_path)
    rd = prepare_run_dir(cfg, tmp_path / "run")
    jobs = [j for j in iter_model_jobs(cfg, cfg.models[0], ds, load_conditions())
            if j.condition == "vanilla"][:6]
    with RunLog(rd.log_path) as log:
        for j in jobs[:3]:
            log.append(record(j))
        log.append(record(jobs[0]))  # a duplicate: paid twice, counted once
        log.append(record(jobs[3], raw="I cannot say", rating=None))
        log.append(record(jobs[4], status=FAILED, error_kind="permanent", error="HTTP 400",
                          raw=None, rating=None, usage=None))
        log.append(record(jobs[5], status=FAILED, error_kind="transient", error="HTTP 503",
                          raw=None, rating=None, usage=None))
        log.append(record(jobs[5]))  # retried later and answered
    cells = {(c["model"], c["condition"]): c
             for c in cli_json(capsys, "status", str(rd.path))}
    van = cells[("cheap", "vanilla")]
    assert (van["done"], van["failed"], van["parse_failures"]) == (5, 1, 1)
    assert van["total"] == 10 * 2 * 2
    assert van["reasons"] == {"permanent: HTTP 400": 1}
    assert van["prompt_tokens"] == 6 * 100 and van["completion_tokens"] == 6 * 3
    assert van["cost_usd"] == pytest.approx((600 * 0.15 + 18 * 0.6) / 1e6)
    assert cells[("cheap", "persona:gender=female")]["done"] == 0
    assert ("bulk", "persona:gender=female") not in cells  # bulk switched personas off


def test_status_table_lists_models_and_failure_reasons(
    tmp_path: Path, capsys: Cap, ds: Dataset
) -> None:
    _, cfg = config(tmp_path)
    rd = prepare_run_dir(cfg, tmp_path / "run")
    job = next(iter_model_jobs(cfg, cfg.models[1], ds, load_conditions()))
    with RunLog(rd.log_path) as log:
        log.append(record(job, status=FAILED, error_kind="permanent", error="content filter"))
    main(["status", str(rd.path)])
    out = capsys.readouterr().out
    assert "bulk" in out and "vanilla" in out and "permanent: content filter" in out


def test_status_totals_of_a_shard_add_up_to_the_grid(
    tmp_path: Path, capsys: Cap, data_dir: Path
) -> None:
    _, cfg = config(tmp_path)
    rd = prepare_run_dir(cfg, tmp_path / "run")
    whole = cli_json(capsys, "status", str(rd.path))
    parts = [cli_json(capsys, "status", str(rd.path), "--shard", f"{k}/2", "--data",
                      str(data_dir)) for k in (1, 2)]
    for i, cell in enumerate(whole):
        assert sum(p[i]["total"] for p in parts) == cell["total"]
        assert all(0 < p[i]["total"] < cell["total"] for p in parts)


def test_status_of_a_non_run_dir_exits_2(tmp_path: Path, capsys: Cap) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["status", str(tmp_path)])
    assert exc.value.code == 2 and "not a run dir" in capsys.readouterr().err


def write_shard(cfg: Config, ds: Dataset, path: Path, shard: tuple[int, int] | None) -> int:
    rd = prepare_run_dir(cfg, path)
    n = 0
    with RunLog(rd.log_path) as log:
        for j in all_jobs(cfg, ds, load_conditions(), shard=shard):
            log.append(record(j))
            n += 1
    return n


def test_merge_of_two_shard_logs_equals_one_unsharded_log(
    tmp_path: Path, capsys: Cap, ds: Dataset
) -> None:
    _, cfg = config(tmp_path)
    whole = write_shard(cfg, ds, tmp_path / "whole", None)
    write_shard(cfg, ds, tmp_path / "s1", (0, 2))
    write_shard(cfg, ds, tmp_path / "s2", (1, 2))
    # A resumed shard may log a job twice, and a crash may leave a torn last line.
    s1 = tmp_path / "s1" / "log.jsonl"
    first = s1.read_bytes().split(b"\n")[0] + b"\n"
    s1.write_bytes(s1.read_bytes() + first + b'{"job_id": "tor')
    main(["merge", str(tmp_path / "out"), str(tmp_path / "s1"), str(tmp_path / "s2")])
    assert f"-> {whole} jobs" in capsys.readouterr().out
    merged = (tmp_path / "out" / "log.jsonl").read_bytes().splitlines()
    unsharded = (tmp_path / "whole" / "log.jsonl").read_bytes().splitlines()
    assert len(merged) == whole and sorted(merged) == sorted(unsharded)
    assert (tmp_path / "out" / "config.toml").read_text() == cfg.text
    assert (tmp_path / "out" / "config.sha256").read_text() == (
        tmp_path / "whole" / "config.sha256").read_text()


def test_merge_keeps_an_answer_over_a_failure(tmp_path: Path, ds: Dataset, capsys: Cap) -> None:
    _, cfg = config(tmp_path)
    job = next(all_jobs(cfg, ds, load_conditions()))
    for name, rec in (("a", record(job)), ("b", record(job, status=FAILED, rating=None))):
        with RunLog(prepare_run_dir(cfg, tmp_path / name).log_path) as log:
            log.append(rec)
    main(["merge", str(tmp_path / "out"), str(tmp_path / "b"), str(tmp_path / "a")])
    (line,) = (tmp_path / "out" / "log.jsonl").read_bytes().splitlines()
    assert json.loads(line)["status"] == "ok"


def test_merge_refuses_shards_of_different_configs(tmp_path: Path, capsys: Cap) -> None:
    _, cfg = config(tmp_path)
    prepare_run_dir(cfg, tmp_path / "s1")
    (tmp_path / "other").mkdir()
    _, other = config(tmp_path / "other", TEXT.replace("repeats = 2", "repeats = 3"))
    prepare_run_dir(other, tmp_path / "s2")
    with pytest.raises(SystemExit) as exc:
        main(["merge", str(tmp_path / "out"), str(tmp_path / "s1"), str(tmp_path / "s2")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "another config" in err and "sha256" in err
    assert not (tmp_path / "out" / "log.jsonl").exists()


def test_merge_will_not_overwrite_another_log(tmp_path: Path, capsys: Cap) -> None:
    _, cfg = config(tmp_path)
    prepare_run_dir(cfg, tmp_path / "s1")
    out = prepare_run_dir(cfg, tmp_path / "out")
    out.log_path.write_text('{"job_id": "keep"}\n')
    with pytest.raises(SystemExit) as exc:
        main(["merge", str(out.path), str(tmp_path / "s1")])
    assert exc.value.code == 2 and "already holds a log" in capsys.readouterr().err
    assert out.log_path.read_text() == '{"job_id": "keep"}\n'
