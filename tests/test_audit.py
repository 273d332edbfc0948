"""The parse audit: per model, how often and why the official and strict parsers disagree."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from vpbatch.benchmark.dims import VERSIONS
from vpbatch.cli import cli
from vpbatch.errors import RunDirError
from vpbatch.log.importer import import_official
from vpbatch.log.records import FAILED, Record
from vpbatch.log.runlog import LOG_NAME, read_log
from vpbatch.scoring.audit import DIFFERENT_RATING, number_in, parse_audit


def _rec(model: str, raw: str | None, i: int = 0, status: str = "ok") -> Record:
    return Record(job_id=f"{model}-{i}", model=model, condition="vanilla", version="v1",
                  portrait_id=1001, option_id=i, status=status, raw=raw)


@pytest.fixture(scope="module")
def real_run(
    recorded_file: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Two real models' recorded answers (all 6 versions) imported into a run dir."""
    tree = tmp_path_factory.mktemp("final")
    for provider, model in [("openrouter", "llama-3.1-8b-instruct"),
                            ("openrouter", "mistral-tiny")]:
        (tree / provider).mkdir(exist_ok=True)
        for v in VERSIONS:
            src = recorded_file(f"{provider}/{model}_{v}_results.json")
            (tree / provider / src.name).symlink_to(src)
    run = tmp_path_factory.mktemp("run")
    import_official(tree, run)
    return run


def test_audit_counts_a_real_models_disagreements(real_run: Path) -> None:
    a = parse_audit(read_log(real_run / LOG_NAME))["llama-3.1-8b-instruct"]
    assert (a.n, a.n_official_ok, a.n_strict_ok, a.n_disagree) == (3120, 3065, 2996, 69)
    assert dict(a.disagreements) == {"option inside prose": 55, "modified option": 13,
                                     "negated option": 1}


def test_audit_reports_where_the_official_parser_took_an_option_from_the_explanation(
    real_run: Path,
) -> None:
    # "Somewhat like me\n\n… so it's not "very much like me."": the longest phrase wins for
    # the authors' parser, the first answer for the strict one.
    a = parse_audit(read_log(real_run / LOG_NAME))["mistral-tiny"]
    assert (a.n, a.n_official_ok, a.n_strict_ok, a.n_disagree) == (3120, 3120, 3120, 3)
    assert dict(a.disagreements) == {DIFFERENT_RATING: 3}
    assert {(e.official, e.strict) for e in a.examples[DIFFERENT_RATING]} == {(6, 4)}


def test_audit_shows_the_official_parser_scoring_like_me_to_discuss() -> None:
    raw = "I apologize, but I cannot. If you would like me to discuss the response, I can."
    a = parse_audit([_rec("m", raw)])["m"]
    assert a.n_disagree == 1
    (example,) = a.examples["refusal"]
    assert (example.raw, example.official, example.strict) == (raw, 5, None)


def test_audit_counts_agreements_and_strict_reasons_separately() -> None:
    a = parse_audit([_rec("m", "like me", 0), _rec("m", "I am somewhat like you.", 1)])["m"]
    assert (a.n, a.n_official_ok, a.n_strict_ok, a.n_disagree) == (2, 1, 1, 0)
    assert dict(a.reasons) == {"no option": 1}


def test_audit_names_different_ratings_when_both_parsers_score() -> None:
    # Official takes the longest phrase, even inside "dislikes"; strict wants whole words.
    a = parse_audit([_rec("m", "a little like me; he dislikes me very much")])["m"]
    assert dict(a.disagreements) == {DIFFERENT_RATING: 1}
    assert (a.examples[DIFFERENT_RATING][0].official, a.examples[DIFFERENT_RATING][0].strict) == (
        6, 3)


def test_audit_keeps_a_few_examples_per_kind() -> None:
    recs = [_rec("m", "some like me", i) for i in range(10)]
    a = parse_audit(recs, examples=2)["m"]
    assert a.disagreements["modified option"] == 10
    assert len(a.examples["modified option"]) == 2


def test_audit_counts_failed_records_apart_from_answers() -> None:
    a = parse_audit([_rec("m", None, 0, FAILED), _rec("m", "like me", 1)])["m"]
    assert (a.n, a.n_failed) == (1, 1)


def test_audit_is_per_model_in_first_seen_order() -> None:
    audits = parse_audit([_rec("b", "like me"), _rec("a", "like me"), _rec("b", "like me", 1)])
    assert list(audits) == ["b", "a"] and audits["b"].n == 2


NUMBER_IN_PROSE = "I would rate this a 4 out of 6 — mostly like me"


def test_audit_counts_answers_that_state_a_number_and_what_the_official_parser_made_of_them(
) -> None:
    recs = [_rec("m", NUMBER_IN_PROSE, 0), _rec("m", "5", 1), _rec("m", "Rating: 2/6", 2),
            _rec("m", "Somewhat like me.", 3)]
    a = parse_audit(recs)["m"]
    assert (a.n_numbers, a.n_numbers_official) == (3, 1)  # only the first names a phrase too
    (example,) = a.number_examples
    assert (example.raw, example.official, example.strict) == (NUMBER_IN_PROSE, 5, None)


@pytest.mark.parametrize(("text", "number"), [
    (NUMBER_IN_PROSE, 4), ("5", 5), ("Rating: 4/6", 4), ("I would give it a 3.", 3),
    ("Somewhat like me.", None), ("I rate it 10 out of 10", None), ("Like me (5).", None),
])
def test_a_number_is_one_that_stands_as_the_rating(text: str, number: int | None) -> None:
    assert number_in(text) == number


def test_the_recorded_models_never_state_a_number(official_run: Path) -> None:
    audits = parse_audit(read_log(official_run / LOG_NAME))
    assert len(audits) == 33 and sum(a.n_numbers for a in audits.values()) == 0


# -- CLI ------------------------------------------------------------------------------------


def test_cli_audit_prints_per_model_counts_and_examples(real_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(cli, ["audit", str(real_run), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "llama-3.1-8b-instruct" in result.output and "option inside prose" in result.output
    assert "Very little like me." in result.output
    doc = json.loads(out.read_text())
    assert doc["mistral-tiny"]["n_disagree"] == 3


def test_cli_audit_shows_the_numbers_in_prose(tmp_path: Path) -> None:
    log = tmp_path / LOG_NAME
    log.write_bytes(b"".join(_rec("m", t, i).to_json()
                             for i, t in enumerate([NUMBER_IN_PROSE, "5", "Like me."])))
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(cli, ["audit", str(tmp_path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert ("m: 2 answers state a rating as a number (e.g. '4 out of 6'); the official parser "
            "rated 1 of them from a phrase in the prose, the number ignored") in result.output
    assert f"official=5 strict=None [v1 1001/0] {NUMBER_IN_PROSE!r}" in result.output
    assert json.loads(out.read_text())["m"]["n_numbers"] == 2


def test_cli_audit_refuses_a_dir_without_a_log(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", str(tmp_path)])
    assert isinstance(result.exception, RunDirError)
    assert "log.jsonl does not exist" in str(result.exception)
