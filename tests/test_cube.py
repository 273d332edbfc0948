"""The log reader: every job counted exactly once, names kept apart, both paths alike."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import vpbatch.scoring.cube as cube_module
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.log.counts import Counted
from vpbatch.log.records import Record, job_id
from vpbatch.log.runlog import iter_log
from vpbatch.scoring.cube import RatingCube, cube_from_log
from vpbatch.scoring.logscan import LogColumns


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def _record(ds: Dataset, i: int, version: str = "v1", rating: int | None = 4,
            **kw: Any) -> Record:
    kw.setdefault("job_id", job_id({"i": i, "version": version, **kw}))
    kw.setdefault("status", "ok" if rating is not None else "failed")
    kw.setdefault("raw", None if rating is None else "like me")
    return Record(model=kw.pop("model", "m"), condition=kw.pop("condition", "vanilla"),
                  version=version, portrait_id=int(ds.portrait_id[i]),
                  option_id=int(ds.option_id[i]), rating=rating, rating_strict=rating, **kw)


def _write(path: Path, records: list[Record]) -> Path:
    path.write_bytes(b"".join(r.to_json() for r in records))
    return path


def _as_sorted_keys(src: Path, dst: Path) -> Path:
    """The same rows in another key order: no line can take the vectorised path."""
    dst.write_bytes(b"".join(orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS) + b"\n"
                             for line in src.read_bytes().splitlines()))
    return dst


def _assert_same(a: RatingCube, b: RatingCube) -> None:
    assert (a.models, a.conditions, a.versions) == (b.models, b.conditions, b.versions)
    np.testing.assert_array_equal(a.ratings, b.ratings)
    assert (a.n_ok, a.n_failed, a.failures) == (b.n_ok, b.n_failed, b.failures)
    np.testing.assert_array_equal(a.authors_dropped, b.authors_dropped)


def test_patterned_job_ids_keep_every_answer(tmp_path: Path, ds: Dataset) -> None:
    # Ids such as 00010000000201350000000000000000 and 00010003000201300000000000000000 once
    # shared a 64-bit hash, and one of the two answers was dropped.
    conds = ["vanilla", "persona:a=1", "persona:a=2", "persona:a=3"]
    records = [_record(ds, i, version, (c + v + i) % 6 + 1, condition=cond,
                       job_id=f"0001{c:04d}{v * ds.n_items + i:08d}{0:016d}")
               for c, cond in enumerate(conds) for v, version in enumerate(VERSIONS)
               for i in range(ds.n_items)]
    assert len(records) == 12_480
    cube = cube_from_log(_write(tmp_path / "log.jsonl", records), ds, cache=False)
    assert cube.n_ok == 12_480 and cube.n_failed == 0
    assert not np.isnan(cube.ratings).any()


def test_near_identical_names_stay_apart(tmp_path: Path, ds: Dataset) -> None:
    models = ["m", "m ", "m-1", "AAAAAAAABBBBBBBB", "BBBBBBBBAAAAAAAA", "x" * 40, "x" * 39 + "y"]
    conds = ["vanilla", "persona:age=20-39", "persona:age=20-38", "persona:age=20-39 "]
    records = [_record(ds, k, "v1", k % 6 + 1, model=m, condition=c)
               for k, (m, c) in enumerate((m, c) for m in models for c in conds)]
    cube = cube_from_log(_write(tmp_path / "log.jsonl", records), ds, cache=False)
    assert cube.models == models and cube.conditions == conds
    for k, rec in enumerate(records):
        m, c = models.index(rec.model), conds.index(rec.condition)
        assert cube.ratings[m, c, 0, k] == k % 6 + 1
    assert np.count_nonzero(~np.isnan(cube.ratings)) == len(records)


def test_a_job_logged_twice_counts_once_first_ok_wins(tmp_path: Path, ds: Dataset) -> None:
    a, b = "a" * 32, "b" * 32
    rows = [_record(ds, 0, rating=None, job_id=a), _record(ds, 0, rating=3, job_id=a),
            _record(ds, 0, rating=6, job_id=a),  # a later ok row never counts
            _record(ds, 1, rating=None, job_id=b), _record(ds, 1, rating=None, job_id=b)]
    log = _write(tmp_path / "log.jsonl", rows)
    cube = cube_from_log(log, ds, cache=False)
    assert cube.ratings[0, 0, 0, 0] == 3.0 and np.isnan(cube.ratings[0, 0, 0, 1])
    assert (cube.n_ok, cube.n_failed, cube.failures) == (1, 1, {"m": 1})
    kept: Counted[dict[str, Any]] = Counted()  # the log's rule, which resume relies on
    for row in iter_log(log):
        kept.add(row["job_id"], row["status"] == "ok", row)
    assert kept.answered[a]["rating"] == 3 and kept.failed[b]["status"] == "failed"


@pytest.mark.parametrize("seed", range(6))
def test_the_vectorised_rule_picks_the_line_the_plain_rule_picks(seed: int) -> None:
    # Random logs: jobs logged 1-6 times in any order, every mix of answers and failures,
    # 32-hex ids and others; the cube must count exactly the lines log.counts.Counted counts.
    rnd = random.Random(seed)
    n_jobs = rnd.choice([5, 50, 400])
    ids = [job_id({"j": j}) if rnd.random() < 0.7 else f"job-{j}" for j in range(n_jobs)]
    p_ok = rnd.choice([0.0, 0.2, 0.5, 0.9, 1.0])
    lines = [(jid, rnd.random() < p_ok) for jid in ids for _ in range(rnd.randint(1, 6))]
    rnd.shuffle(lines)
    plain: Counted[int] = Counted()
    for n, (jid, ok) in enumerate(lines):
        plain.add(jid, ok, n)
    acc = LogColumns(strict=False)
    acc.add_rows([{"job_id": jid, "status": "ok" if ok else "failed", "model": "m",
                    "condition": "vanilla", "version": "v1", "portrait_id": 1, "option_id": 1,
                    "rating": 3 if ok else None} for jid, ok in lines])
    cols = acc.columns()
    picked = cube_module.counting_rows(cols)
    every = np.arange(len(lines)) if picked is None else picked
    assert sorted(cols["line"][every].tolist()) == sorted(plain.lines())


def test_a_torn_last_line_is_ignored(tmp_path: Path, ds: Dataset) -> None:
    whole = _record(ds, 0, rating=5).to_json()
    log = tmp_path / "log.jsonl"
    log.write_bytes(whole + _record(ds, 1, rating=2).to_json()[:-40])
    cube = cube_from_log(log, ds, cache=False)
    assert cube.n_ok == 1 and cube.ratings[0, 0, 0, 0] == 5.0
    assert np.isnan(cube.ratings[0, 0, 0, 1])


def _varied_log(path: Path, ds: Dataset, n: int, seed: int = 7) -> Path:
    """Record lines with every shape a sweep writes: failures, quotes, escapes, long text."""
    rnd = random.Random(seed)
    texts = [None, "like me", '"Like me"', "a \\ b", "back\\\\", "ünïcode", "x" * 300,
             '"q' * 150, "", "tab\tnew\nline"]
    records = []
    for k in range(n):
        failed = rnd.random() < 0.15
        rating = None if failed or rnd.random() < 0.1 else rnd.randint(1, 6)
        extra: dict[str, Any] = rnd.choice([{}, {}, {"http_status": 400},
                                            {cube_module.TEMPLATE_KEY: True}])
        jid = rnd.choice([job_id({"k": k}), job_id({"k": k // 2}), f"id-{k % 500}",
                          job_id({"k": k % 300}).upper(), job_id({"k": k})[:31] + "g"])
        records.append(_record(
            ds, rnd.randrange(ds.n_items), rnd.choice(VERSIONS), rating, job_id=jid,
            model=rnd.choice(["gpt", "gpt-4o", 'say "hi"', "modèle"]),
            condition=rnd.choice(["vanilla", "persona:age=20-39", "steer:Power"]),
            repeat=rnd.choice([0, 1, 12]), reasoning=rnd.choice(texts), extra=extra,
            status="failed" if failed else "ok", usage={"prompt_tokens": k},
            request={"model": "x", "messages_sha256": "0" * 64, "seed": 42}))
        records[-1].raw = rnd.choice(texts)
    return _write(path, records)


@pytest.mark.parametrize("strict", [False, True])
def test_vector_and_orjson_paths_give_the_same_cube(
    tmp_path: Path, ds: Dataset, strict: bool
) -> None:
    log = _varied_log(tmp_path / "log.jsonl", ds, 4000)
    other = _as_sorted_keys(log, tmp_path / "sorted.jsonl")
    _assert_same(cube_from_log(log, ds, strict=strict, cache=False),
                 cube_from_log(other, ds, strict=strict, cache=False))


def test_the_plain_reader_gives_the_scanners_cube(tmp_path: Path, ds: Dataset) -> None:
    # make bench measures the scanner against this reader: they must agree to be compared.
    log = _varied_log(tmp_path / "log.jsonl", ds, 3000, seed=5)
    _assert_same(cube_from_log(log, ds, cache=False),
                 cube_from_log(log, ds, cache=False, plain=True))


def test_reading_threads_and_small_chunks_read_the_same_cube(
    tmp_path: Path, ds: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _varied_log(tmp_path / "log.jsonl", ds, 3000, seed=3)
    one = cube_from_log(log, ds, cache=False)
    monkeypatch.setattr(cube_module, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(cube_module, "MAX_WORKERS", 3)
    monkeypatch.setattr(cube_module.os, "cpu_count", lambda: 3)
    monkeypatch.setattr(cube_module, "CHUNK_BYTES", 1 << 14)
    _assert_same(one, cube_from_log(log, ds, cache=False))
