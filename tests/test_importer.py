"""import-official: the authors' recorded outputs, messy types and all, become a run dir log."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from vpbatch.benchmark import layout
from vpbatch.errors import DataError
from vpbatch.log.importer import PROVENANCE_NAME, import_official
from vpbatch.log.records import FAILED, OK, Record, job_id
from vpbatch.log.runlog import LOG_NAME, iter_log, read_log
from vpbatch.scoring.cube import TEMPLATE_KEY

UNPARSED = "Could not parse valid Likert response from: "


def _row(pid: Any, oid: Any, raw: str, numeric: Any, **extra: Any) -> dict[str, Any]:
    return {"portrait_id": pid, "option_id": oid, "raw_response": raw,
            "parsed_response": raw.lower().strip("."), "numeric_response": numeric,
            "content": {"title": None, "text": "t", "output_text": "o"}, "prompt": "p", **extra}


def _messy_rows() -> list[dict[str, Any]]:
    """The field types of the public files: ids and numbers as strings, correlation lists as
    JSON-encoded strings, reasoning as text or empty, error rows with no raw_response."""
    return [
        _row("1001", "1", "somewhat like me", "4",
             correlations=json.dumps([["Benevolence", 0.41]]), bfi_correlations="[]"),
        _row(1001, 2, "Like me.", 5, correlations=[["Power", 0.33]], reasoning=""),
        _row("3002", 3, "<think>hmm</think>not like me at all", 1, reasoning="thought a lot"),
        {"portrait_id": 3002, "option_id": "4", "error": UNPARSED + "I am somewhat like you.",
         "content": {}, "prompt": "p", "correlations": "[]"},
        {"portrait_id": "3002", "option_id": 5, "error": "Error code: 400 - content flagged",
         "content": {}, "prompt": "p"},
        {"portrait_id": 4001, "option_id": 1, "error": UNPARSED, "content": {}, "prompt": "p"},
    ]


def _write(path: Path, rows: Any, *, xz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = orjson.dumps(rows)
    if xz:
        path = path.with_name(path.name + ".xz")
        path.write_bytes(lzma.compress(blob))
    else:
        path.write_bytes(blob)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "final"
    _write(root / "openrouter" / "some-model_v1_results.json", _messy_rows())
    _write(root / "anthropic" / "claude-3.7-sonnet:thinking_v2_reversed_results.json",
           [_row(2001, 1, "very much like me", 6)], xz=True)
    return root


def _by_key(run: Path) -> dict[tuple[str, str, int, int], Record]:
    return {(r.model, r.version, r.portrait_id, r.option_id): r for r in read_log(run / LOG_NAME)}


def test_import_writes_one_record_per_row_with_ids_coerced_to_int(
    tree: Path, tmp_path: Path
) -> None:
    s = import_official(tree, tmp_path / "run", workers=1)
    assert (s.files, s.records, s.written) == (2, 7, 7)
    recs = _by_key(tmp_path / "run")
    assert ("some-model", "v1", 1001, 1) in recs
    r = recs[("some-model", "v1", 1001, 1)]
    assert (r.condition, r.repeat, r.status, r.raw, r.rating) == ("vanilla", 0, OK,
                                                                 "somewhat like me", 4)
    assert r.extra["numeric_response"] == 4 and r.extra["parsed_response"] == "somewhat like me"


def test_import_names_the_model_after_the_file_model_part(tree: Path, tmp_path: Path) -> None:
    s = import_official(tree, tmp_path / "run", workers=1)
    assert s.models == ["claude-3.7-sonnet:thinking", "some-model"]
    assert ("claude-3.7-sonnet:thinking", "v2_reversed", 2001, 1) in _by_key(tmp_path / "run")


def test_import_uses_the_specified_job_id(tree: Path, tmp_path: Path) -> None:
    import_official(tree, tmp_path / "run", workers=1)
    r = _by_key(tmp_path / "run")[("some-model", "v1", 1001, 2)]
    assert r.job_id == job_id({"source": "official", "model": "some-model", "version": "v1",
                               "portrait_id": 1001, "option_id": 2, "condition": "vanilla",
                               "repeat": 0})


def test_import_scores_with_both_parsers(tree: Path, tmp_path: Path) -> None:
    import_official(tree, tmp_path / "run", workers=1)
    r = _by_key(tmp_path / "run")[("some-model", "v1", 1001, 2)]
    assert (r.rating, r.rating_strict, r.strict_reason) == (5, 5, None)


def test_import_recovers_the_answer_text_from_the_authors_parse_error(
    tree: Path, tmp_path: Path
) -> None:
    import_official(tree, tmp_path / "run", workers=1)
    r = _by_key(tmp_path / "run")[("some-model", "v1", 3002, 4)]
    assert (r.status, r.raw, r.rating) == (OK, "I am somewhat like you.", None)
    assert (r.rating_strict, r.strict_reason) == (None, "no option")
    assert r.extra["numeric_response"] is None


def test_import_records_an_api_error_row_as_failed_with_its_message(
    tree: Path, tmp_path: Path
) -> None:
    import_official(tree, tmp_path / "run", workers=1)
    r = _by_key(tmp_path / "run")[("some-model", "v1", 3002, 5)]
    assert (r.status, r.raw, r.rating) == (FAILED, None, None)
    assert r.error == "Error code: 400 - content flagged"


def test_import_marks_unrated_records_that_kept_their_correlation_lists(
    tree: Path, tmp_path: Path
) -> None:
    # The authors' averaging drops an item whose v1 record failed without correlation lists.
    import_official(tree, tmp_path / "run", workers=1)
    recs = _by_key(tmp_path / "run")
    assert recs[("some-model", "v1", 3002, 4)].extra[TEMPLATE_KEY] is True
    assert recs[("some-model", "v1", 3002, 5)].extra[TEMPLATE_KEY] is False
    assert TEMPLATE_KEY not in recs[("some-model", "v1", 1001, 1)].extra  # rated: not needed


def test_import_records_an_empty_answer_as_failed(tree: Path, tmp_path: Path) -> None:
    s = import_official(tree, tmp_path / "run", workers=1)
    r = _by_key(tmp_path / "run")[("some-model", "v1", 4001, 1)]
    assert (r.status, r.raw, r.rating) == (FAILED, "", None)
    assert (s.failed, s.unparsed) == (2, 1)


def test_import_keeps_reasoning_apart_from_the_answer(tree: Path, tmp_path: Path) -> None:
    import_official(tree, tmp_path / "run", workers=1)
    recs = _by_key(tmp_path / "run")
    r = recs[("some-model", "v1", 3002, 3)]
    assert (r.raw, r.rating) == ("not like me at all", 1)
    assert r.reasoning == "thought a lot\n\nhmm"
    assert recs[("some-model", "v1", 1001, 2)].reasoning is None  # "" is no reasoning


def test_importing_twice_does_not_duplicate(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    import_official(tree, run, workers=1)
    lines = (run / LOG_NAME).read_bytes()
    s = import_official(tree, run, workers=1)
    assert (s.written, s.already) == (0, 7)
    assert (run / LOG_NAME).read_bytes() == lines


def test_import_appends_only_new_files_to_an_existing_run(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    import_official(tree, run, workers=1)
    _write(tree / "openrouter" / "some-model_v2_results.json", [_row(1001, 1, "like me", 5)])
    s = import_official(tree, run, workers=1)
    assert (s.written, s.already) == (1, 7)
    assert len(list(iter_log(run / LOG_NAME))) == 8


def test_import_writes_provenance_for_every_import(tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    import_official(tree, run, workers=1)
    import_official(tree, run, workers=1)
    doc = json.loads((run / PROVENANCE_NAME).read_text())
    first, second = doc["imports"]
    assert first["source"] == str(tree.resolve())
    assert first["counts"]["written"] == 7 and second["counts"]["written"] == 0
    assert {f["path"] for f in first["files"]} == {
        "openrouter/some-model_v1_results.json",
        "anthropic/claude-3.7-sonnet:thinking_v2_reversed_results.json.xz",
    }


def test_import_lines_are_what_record_to_json_writes(tree: Path, tmp_path: Path) -> None:
    import_official(tree, tmp_path / "run", workers=1)
    for line in (tmp_path / "run" / LOG_NAME).read_bytes().splitlines(keepends=True):
        assert Record.from_dict(orjson.loads(line)).to_json() == line


def test_import_in_a_process_pool_gives_the_same_records(tree: Path, tmp_path: Path) -> None:
    import_official(tree, tmp_path / "one", workers=1)
    import_official(tree, tmp_path / "two", workers=2)
    strip = lambda run: [{**d, "ts": 0} for d in iter_log(run / LOG_NAME)]  # noqa: E731
    assert strip(tmp_path / "one") == strip(tmp_path / "two")


# -- bad files ------------------------------------------------------------------------------


def test_a_corrupt_file_stops_the_import_naming_its_path(tree: Path, tmp_path: Path) -> None:
    bad = tree / "gemini" / "broken_v1_results.json.xz"
    bad.parent.mkdir()
    bad.write_bytes(b"\xfd7zXZ\x00 not really xz")
    with pytest.raises(DataError, match="broken_v1_results.json.xz") as exc:
        import_official(tree, tmp_path / "run", workers=1)
    assert "--skip-bad" in str(exc.value)
    assert not (tmp_path / "run" / LOG_NAME).exists()  # nothing half-imported


def test_skip_bad_imports_the_rest_and_reports_each_bad_file(tree: Path, tmp_path: Path) -> None:
    (tree / "x").mkdir()
    (tree / "x" / "truncated_v1_results.json").write_bytes(b'[{"portrait_id": 1')
    _write(tree / "x" / "noversion_results.json", [])
    _write(tree / "x" / "badid_v1_results.json", [_row("abc", 1, "like me", 5)])
    s = import_official(tree, tmp_path / "run", skip_bad=True, workers=1)
    assert s.files == 2 and s.written == 7
    problems = {p.name: e for p, e in s.bad}
    assert set(problems) == {"truncated_v1_results.json", "noversion_results.json",
                             "badid_v1_results.json"}
    assert "not valid JSON" in problems["truncated_v1_results.json"]
    assert "portrait_id is not a number: 'abc'" in problems["badid_v1_results.json"]


def test_a_directory_without_results_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no <model>_<version>_results"):
        import_official(tmp_path, tmp_path / "run")


# -- CLI ------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.run([sys.executable, "-m", "vpbatch", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_cli_imports_and_reports_counts(tree: Path, tmp_path: Path) -> None:
    out = _cli("import-official", str(tree), "--run-dir", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert "imported 2 files, 7 records of 2 models" in out.stdout
    assert len(read_log(tmp_path / "run" / LOG_NAME)) == 7


def test_cli_refuses_a_bad_file_then_skips_it_with_skip_bad(tree: Path, tmp_path: Path) -> None:
    (tree / "openrouter" / "junk_v3_results.json").write_text("{not json")
    out = _cli("import-official", str(tree), "--run-dir", str(tmp_path / "run"))
    assert out.returncode != 0
    assert "junk_v3_results.json" in out.stderr and "Traceback" not in out.stderr
    out = _cli("import-official", str(tree), "--run-dir", str(tmp_path / "run"), "--skip-bad")
    assert out.returncode == 0, out.stderr
    assert "skipped bad file" in out.stderr and "junk_v3_results.json" in out.stderr


# -- the real outputs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def official_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 33 recorded models imported once per session (the same dir other test files use)."""
    run = tmp_path_factory.getbasetemp() / "official33"
    if not (run / LOG_NAME).exists():
        shutil.rmtree(run, ignore_errors=True)
        s = import_official(data_dir / layout.OUTPUTS, run)
        assert (s.files, s.written, s.bad) == (198, 102_960, [])
    return run


@pytest.mark.slow
def test_import_of_all_33_models_keeps_every_stored_rating(official_run: Path) -> None:
    rows = list(iter_log(official_run / LOG_NAME))
    models = {r["model"] for r in rows}
    assert len(rows) == 102_960 and len(models) == 33
    assert "claude-3.7-sonnet:thinking" in models
    stored = [(r["rating"], r["extra"]["numeric_response"]) for r in rows
              if r["extra"]["numeric_response"] is not None]
    assert len(stored) == 102_752
    assert all(a == b for a, b in stored)
    no_rating = [r for r in rows if r["extra"]["numeric_response"] is None]
    assert len(no_rating) == 208 and all(r["rating"] is None for r in no_rating)


@pytest.mark.slow
def test_imported_run_scores_exactly_as_the_authors_score_files(
    official_run: Path, data_dir: Path
) -> None:
    out = _cli("score", str(official_run), "--rule", "authors", "--data", str(data_dir))
    assert out.returncode == 0, out.stderr
    ours = json.loads((official_run / "scores.json").read_text())["models"]
    golden_dir = data_dir / layout.AUTHORS_SCORES
    compared, off = 0, []
    for path in sorted(golden_dir.glob("*.json")):
        golden = json.loads(path.read_text())
        model = golden["meta"]["model_name"]
        if model not in ours:  # a score file whose outputs were not published
            continue
        for family, dims in golden["scores"].items():
            for dim, g in dims.items():
                compared += 1
                mine = ours[model]["vanilla"][family][dim]["score"]
                if abs(mine - g["centered_mean"]) > 1e-9:
                    off.append((model, family, dim, mine, g["centered_mean"]))
    assert compared == 33 * 19 and off == []


def test_import_official_is_described_in_the_command_list() -> None:
    from click.testing import CliRunner

    from vpbatch.cli import cli

    out = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("import-official"))
    assert line.split(None, 1)[1] == "Import the authors' recorded answers into a run dir."
