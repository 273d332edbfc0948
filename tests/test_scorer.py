"""The scorer (SPEC §1) on hand-computed examples, and the cube reader's log semantics."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import FAMILY_DIMS, PVQ
from vpbatch.errors import ConfigError
from vpbatch.log.records import Record
from vpbatch.scoring.cube import TEMPLATE_KEY, cube_from_log, cube_from_rows
from vpbatch.scoring.scorer import (
    AUTHORS_EXCLUDED,
    ScoreOptions,
    item_means,
    item_weights,
    score_cube,
    scores_to_json,
    scoring_means,
)

UNIV, BENE = PVQ.index("Universalism"), PVQ.index("Benevolence")
A, B, C, D = (1001, 1), (1001, 2), (1001, 3), (1001, 4)


def _tiny_dataset() -> Dataset:
    """Four items. Universalism: A r=.5 p=.01, B r=.4 p=.2, C r=-.5 p=.01; Benevolence: D."""
    corr = {f: np.zeros((4, len(d))) for f, d in FAMILY_DIMS.items()}
    pval = {f: np.full((4, len(d)), 0.9) for f, d in FAMILY_DIMS.items()}
    for item, dim, r, p in ((0, UNIV, 0.5, 0.01), (1, UNIV, 0.4, 0.2), (2, UNIV, -0.5, 0.01),
                            (3, BENE, 0.6, 0.001)):
        corr["pvq"][item, dim], pval["pvq"][item, dim] = r, p
    return Dataset(
        root=Path("."),
        portrait_id=np.array([1001] * 4),
        option_id=np.array([1, 2, 3, 4]),
        corr=corr,
        pval=pval,
        corr_tagged=corr,
        title=(None,) * 4,
        text=("",) * 4,
        output=("",) * 4,
    )


def _row(item: tuple[int, int], version: str, rating: int | None, **kw: Any) -> dict[str, Any]:
    status = kw.pop("status", "ok" if rating is not None else "failed")
    jid = kw.pop("job_id", f"m-{item}-{version}-{kw.get('repeat', 0)}")
    rec = Record(job_id=jid, model=kw.pop("model", "m"), condition=kw.pop("condition", "vanilla"),
                 version=version, portrait_id=item[0], option_id=item[1], rating=rating,
                 rating_strict=rating, status=status, **kw)
    return orjson.loads(rec.to_json())


# A: v1 6, v2 4 (mean 5); B: 3; C: 2; D: v1 failed, v2 1.
ROWS = [_row(A, "v1", 6), _row(A, "v2", 4), _row(B, "v1", 3), _row(B, "v2", 3),
        _row(C, "v1", 2), _row(C, "v2", 2), _row(D, "v1", None), _row(D, "v2", 1)]


def _pvq(rows: list[dict[str, Any]], rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ds = _tiny_dataset()
    s = score_cube(cube_from_rows(rows, ds), ds, ScoreOptions(rule=rule))
    return s.score["pvq"][0, 0], s.raw["pvq"][0, 0], s.n_items["pvq"][0, 0]


def test_paper_rule_hand_computed_example() -> None:
    # Univ = {A} (B fails p<.05, C is negative): raw 5. Bene = {D}: 1. Family mean (5+1)/2.
    score, raw, n = _pvq(ROWS, "paper")
    assert (raw[UNIV], raw[BENE]) == (5.0, 1.0)
    assert (score[UNIV], score[BENE]) == (2.0, -2.0)
    assert (n[UNIV], n[BENE]) == (1, 1)


def test_dimension_without_items_is_nan_with_zero_items() -> None:
    score, raw, n = _pvq(ROWS, "paper")
    assert math.isnan(score[PVQ.index("Power")]) and math.isnan(raw[PVQ.index("Power")])
    assert n[PVQ.index("Power")] == 0


def test_authors_rule_ignores_p_values_and_drops_items_whose_v1_failed() -> None:
    # Univ = {A, B} (no p cut): raw 4. D failed in v1 with no correlation lists: dropped.
    score, raw, n = _pvq(ROWS, "authors")
    assert raw[UNIV] == 4.0 and score[UNIV] == 0.0 and n[UNIV] == 2
    assert math.isnan(raw[BENE]) and n[BENE] == 0


def test_authors_rule_keeps_an_item_whose_failed_v1_record_kept_its_correlations() -> None:
    rows = [r for r in ROWS if (r["portrait_id"], r["option_id"]) != D]
    rows += [_row(D, "v1", None, extra={TEMPLATE_KEY: True}), _row(D, "v2", 1)]
    score, raw, n = _pvq(rows, "authors")
    assert raw[BENE] == 1.0 and n[BENE] == 1
    assert score[UNIV] == pytest.approx(4.0 - (5 + 3 + 1) / 3)


def test_scoring_means_drop_only_the_items_the_authors_lost() -> None:
    ds = _tiny_dataset()
    rows = [r for r in ROWS if (r["portrait_id"], r["option_id"]) not in (C, D)]
    rows += [_row(C, "v1", None), _row(C, "v2", 2)]  # v1 failed, no lists: lost
    rows += [_row(D, "v1", None, extra={TEMPLATE_KEY: True}), _row(D, "v2", 1)]  # kept
    cube = cube_from_rows(rows, ds)
    authors = scoring_means(cube, ScoreOptions(rule="authors"))[0, 0]
    assert math.isnan(authors[2]) and authors[3] == 1.0
    assert scoring_means(cube, ScoreOptions())[0, 0].tolist() == item_means(cube)[0, 0].tolist()


def test_absolute_rule_reverse_scores_negative_items() -> None:
    # Univ = {A, C reversed}: (5 + (7 - 2)) / 2 = 5; family mean over A, C, D unreversed: 8/3.
    score, raw, n = _pvq(ROWS, "absolute")
    assert raw[UNIV] == 5.0 and n[UNIV] == 2
    assert score[UNIV] == pytest.approx(5.0 - 8.0 / 3.0)


def test_item_means_leave_failed_versions_out() -> None:
    ds = _tiny_dataset()
    means = item_means(cube_from_rows(ROWS, ds))[0, 0]
    assert means.tolist() == [5.0, 3.0, 2.0, 1.0]


def test_item_with_no_answer_is_missing() -> None:
    ds = _tiny_dataset()
    rows = [r for r in ROWS if (r["portrait_id"], r["option_id"]) != D] + [_row(D, "v2", None)]
    assert math.isnan(item_means(cube_from_rows(rows, ds))[0, 0, 3])


def test_duplicate_job_ids_count_once_first_ok_wins() -> None:
    ds = _tiny_dataset()
    rows = [_row(A, "v1", None, job_id="j"), _row(A, "v1", 6, job_id="j"),
            _row(A, "v1", 1, job_id="j")]
    cube = cube_from_rows(rows, ds)
    assert cube.ratings[0, 0, 0, 0] == 6.0
    assert (cube.n_ok, cube.n_failed) == (1, 0)


def test_unparseable_answer_counts_as_a_failure() -> None:
    ds = _tiny_dataset()
    cube = cube_from_rows([_row(A, "v1", None, status="ok"), _row(B, "v1", 4)], ds)
    assert math.isnan(cube.ratings[0, 0, 0, 0])
    assert (cube.n_ok, cube.n_failed, cube.failures) == (1, 1, {"m": 1})


def test_repeats_are_averaged() -> None:
    ds = _tiny_dataset()
    rows = [_row(A, "v1", 6, repeat=0, job_id="r0"), _row(A, "v1", 3, repeat=1, job_id="r1")]
    assert cube_from_rows(rows, ds).ratings[0, 0, 0, 0] == 4.5


def test_strict_mode_reads_the_strict_rating() -> None:
    ds = _tiny_dataset()
    row = _row(A, "v1", 6)
    row["rating_strict"] = None
    assert math.isnan(cube_from_rows([row], ds, strict=True).ratings[0, 0, 0, 0])


def test_versions_come_in_benchmark_order_v1_first() -> None:
    ds = _tiny_dataset()
    cube = cube_from_rows([_row(A, "v2", 4), _row(A, "v1_reversed", 4), _row(A, "v1", 6)], ds)
    assert cube.versions == ["v1", "v1_reversed", "v2"]


def test_unknown_rule_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match="paper, authors, absolute"):
        ScoreOptions(rule="median")


def test_scores_json_has_the_spec_shape() -> None:
    ds = _tiny_dataset()
    doc = scores_to_json(score_cube(cube_from_rows(ROWS, ds), ds))
    cell = doc["models"]["m"]["vanilla"]["pvq"]["Universalism"]
    assert cell == {"score": 2.0, "raw": 5.0, "n_items": 1}
    assert set(doc["models"]["m"]["vanilla"]) == {"pvq", "higher_pvq", "bfi"}
    assert doc["models"]["m"]["vanilla"]["pvq"]["Power"]["score"] is None  # JSON null, not NaN
    orjson.dumps(doc)


def test_paper_rule_drops_exactly_the_authors_exclusions_and_one_higher_order_pair() -> None:
    ds = load_dataset()
    for family, dims in FAMILY_DIMS.items():
        paper = item_weights(ds, family, ScoreOptions())
        bare = item_weights(ds, family, ScoreOptions(p_max=1.0))  # r > 0.3 alone
        dropped = {(int(ds.portrait_id[i]), int(ds.option_id[i]), dims[j])
                   for i, j in zip(*np.nonzero(bare != paper), strict=True)}
        expected = set(AUTHORS_EXCLUDED[family])
        if family == "higher_pvq":
            expected = {(1902, 2, "Openness_to_Change")}
        assert dropped == expected, family


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


def test_log_is_read_like_the_rows_and_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    ds = _tiny_dataset()
    log = tmp_path / "log.jsonl"
    _write_log(log, ROWS)
    with open(log, "ab") as f:
        f.write(b'{"job_id": "torn", "model"')
    cube = cube_from_log(log, ds, cache=False)
    np.testing.assert_array_equal(cube.ratings, cube_from_rows(ROWS, ds).ratings)


def test_cached_cube_is_refreshed_when_the_log_grows(tmp_path: Path) -> None:
    ds = _tiny_dataset()
    log = tmp_path / "log.jsonl"
    _write_log(log, ROWS[:2])
    first = cube_from_log(log, ds)  # fills the cache
    assert math.isnan(first.ratings[0, 0, 0, 1])
    with open(log, "ab") as f:
        f.write(orjson.dumps(ROWS[2]) + b"\n")
    os.utime(log, ns=(1, 1))  # a different mtime even on coarse-timestamp filesystems
    assert cube_from_log(log, ds).ratings[0, 0, 0, 1] == 3.0


def test_score_command_writes_scores_json_and_prints_the_table(tmp_path: Path) -> None:
    ds = load_dataset()
    first = int(np.flatnonzero(item_weights(ds, "pvq").any(axis=1))[0])  # counts for a value
    pid, oid = int(ds.portrait_id[first]), int(ds.option_id[first])
    _write_log(tmp_path / "log.jsonl", [_row((pid, oid), "v1", 5, model="tiny")])
    out = subprocess.run([sys.executable, "-m", "vpbatch", "score", str(tmp_path)],
                         capture_output=True, text=True, check=True, env=os.environ.copy())
    assert "Univ" in out.stdout and "tiny" in out.stdout and "alpha" in out.stdout
    doc = orjson.loads((tmp_path / "scores.json").read_bytes())
    assert doc["options"] == {"rule": "paper", "threshold": 0.3, "p_max": 0.05, "strict": False,
                              "weak_min": 0.4, "replicate_min": 0.7}
    assert doc["answers"]["ok"] == 1
    assert set(doc["models"]["tiny"]["vanilla"]) == {"pvq", "higher_pvq", "bfi", "trust"}
    assert doc["models"]["tiny"]["vanilla"]["trust"]["verdict"] == "not measured"


def _read_back(tmp_path: Path, lines: list[bytes]) -> Any:
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(lines))
    return cube_from_log(log, _tiny_dataset(), cache=False)


def _record_line(row: dict[str, Any]) -> bytes:
    return Record.from_dict(row).to_json()


def test_lines_in_another_key_order_read_like_record_lines(tmp_path: Path) -> None:
    # Record.to_json lines take the vectorised path, sorted-key lines the per-line one.
    fast = _read_back(tmp_path, [_record_line(r) for r in ROWS])
    slow = _read_back(tmp_path, [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n"
                                 for r in ROWS])
    np.testing.assert_array_equal(fast.ratings, slow.ratings)
    assert (fast.models, fast.n_ok, fast.n_failed) == (slow.models, slow.n_ok, slow.n_failed)


def test_names_with_escapes_and_unicode_survive_the_reader(tmp_path: Path) -> None:
    rows = [_row(A, "v1", 5, model='say "hi"\\'), _row(B, "v1", 4, model="modèle-ü"),
            _row(C, "v1", 3, condition="persona:gender=female")]
    cube = _read_back(tmp_path, [_record_line(r) for r in rows])
    assert cube.models == ['say "hi"\\', "modèle-ü", "m"]
    assert cube.conditions == ["vanilla", "persona:gender=female"]


def test_answer_text_that_looks_like_a_rating_field_is_not_read_as_one(tmp_path: Path) -> None:
    row = _row(A, "v1", 2, raw='like me ,"rating":6, "rating":5', extra={"rating": 6})
    assert _read_back(tmp_path, [_record_line(row)]).ratings[0, 0, 0, 0] == 2.0


def test_first_ok_row_wins_across_both_reading_paths(tmp_path: Path) -> None:
    failed = _record_line(_row(A, "v1", None, job_id="j"))
    sorted_ok = orjson.dumps(_row(A, "v1", 3, job_id="j"), option=orjson.OPT_SORT_KEYS) + b"\n"
    later_ok = _record_line(_row(A, "v1", 6, job_id="j"))
    cube = _read_back(tmp_path, [failed, sorted_ok, later_ok, b"\n"])
    assert cube.ratings[0, 0, 0, 0] == 3.0 and (cube.n_ok, cube.n_failed) == (1, 0)


def test_a_corrupt_line_is_skipped_and_named(tmp_path: Path) -> None:
    from vpbatch.errors import CorruptLinesWarning

    with pytest.warns(CorruptLinesWarning, match=r"1 corrupt line \(line 2;"):
        cube = _read_back(tmp_path, [_record_line(ROWS[0]), b'{"job_id": oops}\n'])
    assert cube.n_ok == 1


def test_strict_ratings_are_read_whatever_the_answer_and_reasoning_hold(tmp_path: Path) -> None:
    texts = [(None, None), ("like me", None), ("like me", "I think"), ('a "quoted" me', "x\\y")]
    lines = []
    for k, (raw, reasoning) in enumerate(texts):
        row = _row((1001, k + 1), "v1", 5, raw=raw, reasoning=reasoning)
        row["rating_strict"] = k + 1
        lines.append(_record_line(row))
    cube = _read_back(tmp_path, lines)
    log = tmp_path / "log.jsonl"
    strict = cube_from_log(log, _tiny_dataset(), strict=True, cache=False)
    assert cube.ratings[0, 0, 0].tolist() == [5.0] * 4
    assert strict.ratings[0, 0, 0].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_a_big_log_read_by_worker_processes_gives_the_same_cube(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpbatch.scoring.cube as cube_module

    rows = [_row(it, v, (k + n) % 6 + 1, model=f"m{k % 3}", condition=f"c{n % 2}",
                 job_id=f"{k}-{n}-{v}")
            for k, it in enumerate((A, B, C, D)) for n in range(40) for v in ("v1", "v2")]
    rows += [_row(A, "v1", None, job_id="0-0-v1"), _row(A, "v1", 2, job_id="0-0-v1")]  # dups
    lines = [_record_line(r) if i % 5 else orjson.dumps(r, option=orjson.OPT_SORT_KEYS) + b"\n"
             for i, r in enumerate(rows)]
    one = _read_back(tmp_path, lines)
    monkeypatch.setattr(cube_module, "PARALLEL_MIN_BYTES", 1)
    monkeypatch.setattr(cube_module, "MAX_WORKERS", 3)
    monkeypatch.setattr(cube_module.os, "cpu_count", lambda: 3)
    many = cube_from_log(tmp_path / "log.jsonl", _tiny_dataset(), cache=False)
    assert (many.models, many.conditions, many.versions) == (one.models, one.conditions,
                                                             one.versions)
    np.testing.assert_array_equal(many.ratings, one.ratings)
    assert (many.n_ok, many.n_failed, many.failures) == (one.n_ok, one.n_failed, one.failures)


def test_lines_straddling_read_chunks_are_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpbatch.scoring.cube as cube_module

    rows = [_row(it, v, k % 6 + 1, job_id=f"{k}-{v}", raw="x" * (k * 97 % 1500))
            for k, it in enumerate((A, B, C, D) * 5) for v in ("v1", "v2")]
    whole = _read_back(tmp_path, [_record_line(r) for r in rows])
    monkeypatch.setattr(cube_module, "CHUNK_BYTES", 700)  # shorter than some lines
    pieces = cube_from_log(tmp_path / "log.jsonl", _tiny_dataset(), cache=False)
    np.testing.assert_array_equal(pieces.ratings, whole.ratings)
    assert pieces.n_ok == whole.n_ok == len(rows)


def test_scores_json_leaves_out_conditions_a_model_never_ran() -> None:
    ds = _tiny_dataset()
    rows = ROWS + [_row(A, "v1", 4, model="other", condition="steer:Power", job_id="o")]
    doc = scores_to_json(score_cube(cube_from_rows(rows, ds), ds))
    assert set(doc["models"]["m"]) == {"vanilla"}
    assert set(doc["models"]["other"]) == {"steer:Power"}
