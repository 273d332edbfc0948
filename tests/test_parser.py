"""The parsers: `official` reproduces the authors' stored ratings, `strict` says why it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vpbatch.benchmark import layout
from vpbatch.benchmark.parser import (
    StrictResult,
    normalize,
    parse_official,
    parse_strict,
    split_reasoning,
)
from vpbatch.log.importer import find_output_files, read_output_rows

UNPARSED = "Could not parse valid Likert response from: "

# What the 33 recorded models hold (6 versions x 520 items each): 102,960 rows, of which 208
# are error rows (166 parse failures with the text in the message, 42 API errors).
N_ROWS, N_PARSED, N_PARSE_FAILURES, N_API_ERRORS = 102_960, 102_752, 166, 42


@pytest.fixture(scope="module")
def recorded(data_dir: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in find_output_files(data_dir / layout.OUTPUTS):  # .json or .json.xz
        rows.extend(read_output_rows(path))
    return rows


# -- official: the yardstick ----------------------------------------------------------------


@pytest.mark.slow
def test_official_gives_the_stored_numeric_response_for_every_parsed_answer(
    recorded: list[dict[str, Any]],
) -> None:
    parsed = [r for r in recorded if "error" not in r]
    assert len(recorded) == N_ROWS and len(parsed) == N_PARSED
    wrong = [(r["raw_response"], r["numeric_response"]) for r in parsed
             if parse_official(r["raw_response"]) != int(r["numeric_response"])]
    assert wrong == []


@pytest.mark.slow
def test_official_fails_on_every_answer_the_authors_could_not_parse(
    recorded: list[dict[str, Any]],
) -> None:
    errors = [r["error"] for r in recorded if "error" in r]
    texts = [e[len(UNPARSED):] for e in errors if e.startswith(UNPARSED)]
    assert len(texts) == N_PARSE_FAILURES
    assert len(errors) - len(texts) == N_API_ERRORS
    assert [t for t in texts if parse_official(t) is not None] == []


def test_official_maps_the_six_phrases_to_six_down_to_one() -> None:
    phrases = ["very much like me", "like me", "somewhat like me", "a little like me",
               "not like me", "not like me at all"]
    assert [parse_official(p) for p in phrases] == [6, 5, 4, 3, 2, 1]


def test_official_ignores_case_and_whitespace() -> None:
    assert parse_official("  Not\n Like   ME\tat all ") == 1


def test_official_accepts_the_authors_variants() -> None:
    assert parse_official("likes me") == 5
    assert parse_official("not at all like me") == 1
    assert parse_official("like me very much") == 6
    assert parse_official("some what likes me") == 4
    assert parse_official("doesn't like me") == 2


def test_official_takes_the_longest_phrase_contained() -> None:
    assert parse_official("Not like me at all.") == 1
    assert parse_official("I'd say: a little like me") == 3
    assert parse_official("It is not like me at all") == 1  # not "is not like me" (2)


def test_official_breaks_length_ties_by_the_authors_phrase_order() -> None:
    # "likes me very much" and "not like me at all" are both 18 characters: 6 comes first.
    assert parse_official("not like me at all, or likes me very much") == 6


def test_official_scores_prose_that_merely_contains_a_phrase() -> None:
    text = "I apologize, but I cannot compare. If you would like me to discuss the response..."
    assert parse_official(text) == 5


def test_official_returns_none_for_no_phrase_and_for_no_text() -> None:
    assert parse_official("I am somewhat like you.") is None
    assert parse_official("") is None
    assert parse_official(None) is None


def test_normalize_lowercases_and_collapses_whitespace() -> None:
    assert normalize(" A\n\tB  c ") == "a b c"


# -- reasoning -----------------------------------------------------------------------------


def test_split_reasoning_moves_think_blocks_out_of_the_answer() -> None:
    assert split_reasoning("<think>weighing it</think>\nsomewhat like me") == (
        "somewhat like me", "weighing it")


def test_split_reasoning_treats_an_unclosed_block_as_all_reasoning() -> None:
    assert split_reasoning("<think>ran out of tokens") == ("", "ran out of tokens")


def test_split_reasoning_handles_a_missing_opening_tag() -> None:
    assert split_reasoning("hmm, similar</think>like me") == ("like me", "hmm, similar")


def test_split_reasoning_leaves_plain_answers_alone() -> None:
    assert split_reasoning("like me") == ("like me", None)
    assert split_reasoning(None) == ("", None)


# -- strict ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("somewhat like me", 4),
        ("Somewhat like me.", 4),
        ("**Not like me at all**", 1),
        ('After thinking it over, I would say "a little like me".', 3),
        ("Answer: like me", 5),
        ("somewhat like me\n\nExplanation: the advice is kind but I would add more.", 4),
        ("This response is somewhat like me", 4),
        ("It is not like me at all", 1),
    ],
)
def test_strict_scores_an_answer_that_plainly_names_one_option(text: str, rating: int) -> None:
    assert parse_strict(text) == StrictResult(rating, None)


def test_strict_refuses_a_refusal_even_when_a_phrase_hides_in_it() -> None:
    text = ("I apologize, but I cannot generate a response comparing the text to my own "
            "thoughts. If you would like me to discuss the response, I can.")
    assert parse_official(text) == 5
    assert parse_strict(text) == StrictResult(None, "refusal")


def test_strict_refuses_an_answer_that_echoes_the_option_list() -> None:
    text = "very much like me\nlike me\nsomewhat like me\na little like me"
    assert parse_strict(text) == StrictResult(None, "echoes options")


def test_strict_refuses_two_different_options_and_names_them() -> None:
    assert parse_strict("not like me\nnot like me at all") == StrictResult(
        None, "two options: not like me / not like me at all")
    assert parse_strict("Somewhat like me. Very much like me.").reason == (
        "two options: somewhat like me / very much like me")


def test_strict_accepts_the_same_option_named_twice() -> None:
    assert parse_strict("not like me not like me") == StrictResult(2, None)


def test_strict_refuses_an_answer_naming_no_option() -> None:
    assert parse_strict("I am somewhat like you.") == StrictResult(None, "no option")


def test_strict_refuses_a_phrase_changed_by_a_modifier() -> None:
    assert parse_official("some like me") == 5
    assert parse_strict("some like me") == StrictResult(None, "modified option")
    assert parse_strict("Very little like me.") == StrictResult(None, "modified option")


def test_strict_refuses_a_phrase_buried_in_prose() -> None:
    assert parse_strict("You're somewhat like me for advising patience") == StrictResult(
        None, "option inside prose")


def test_strict_refuses_an_empty_answer() -> None:
    assert parse_strict("  \n") == StrictResult(None, "empty")
    assert parse_strict(None) == StrictResult(None, "empty")


def test_strict_reads_curly_apostrophes_like_straight_ones() -> None:
    assert parse_strict("I\u2019m sorry, but I can\u2019t. Would you like me to explain?") == (
        StrictResult(None, "refusal"))


# -- strict: what a careful rater reads (issue 10) ---------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I don't think it's like me.",
        "I wouldn't say it's somewhat like me",
        "It is never very much like me.",
        # llama-3.1-8b (v3_reversed 1038/4); the authors' parser rates it 6.
        "I don't think this response is very much like me. I encourage understanding and open "
        "communication, but in this case, the response seems dismissive and judgmental.",
    ],
)
def test_strict_refuses_a_negated_option(text: str) -> None:
    assert parse_strict(text) == StrictResult(None, "negated option")


def test_strict_negation_reaches_only_the_clause_of_the_option() -> None:
    text = "Though it isn't my style, the response is somewhat like me."
    assert parse_strict(text) == StrictResult(4, None)


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("Honestly, somewhat like me.", 4),
        ("Well... a little like me", 3),
        ("To be honest - not like me at all", 1),
        ("**Overall**, like me. It puts family first.", 5),
    ],
)
def test_strict_scores_an_option_after_a_discourse_word(text: str, rating: int) -> None:
    assert parse_strict(text) == StrictResult(rating, None)


def test_strict_does_not_take_a_noun_before_a_comma_for_a_discourse_word() -> None:
    assert parse_strict("People, like me.") == StrictResult(None, "option inside prose")


def test_strict_refuses_a_refusal_before_an_option() -> None:
    text = "I'm sorry, I can't answer. Not like me at all."
    assert parse_official(text) == 1
    assert parse_strict(text) == StrictResult(None, "refusal")


def test_strict_keeps_an_answer_followed_by_a_disclaimer() -> None:
    # mistral-tiny: the answer comes first; the AI disclaimer belongs to the explanation.
    text = ("This response is somewhat like me. As a assistant, I don't have personal feelings "
            "or a family, but I can empathize with the situation.")
    assert parse_strict(text) == StrictResult(4, None)


@pytest.mark.parametrize(
    "text",
    [
        # mistral-tiny's recorded answers (v1_reversed 3075/2, v3 2012/1, v3_reversed 3075/4).
        "Somewhat like me.\n\nThis response acknowledges the importance of human writing and "
        "thinking abilities, even in the presence of AI like me.",
        "Somewhat like me\n\nExplanation: The response provides advice and empathy. However, "
        'it is not a direct replication of my thoughts, so it falls short of being "very much '
        'like me."',
        "Somewhat like me.\n\nExplanation: However, it lacks the specificity and depth of "
        'thought that would make it "like me" or "very much like me." The response also',
        "Somewhat like me. Parts are very much like me.",
    ],
)
def test_strict_first_answer_wins_over_options_inside_its_explanation(text: str) -> None:
    assert parse_strict(text) == StrictResult(4, None)


def test_strict_scores_an_option_standing_as_a_sentence_after_prose() -> None:
    # llama-3.1-8b (v1_reversed 2006/5, shortened): prose first, then the answer on its own.
    text = "Being open-minded can be positive, but it doesn't match my approach. somewhat like me"
    assert parse_strict(text) == StrictResult(4, None)


def test_strict_does_not_take_an_option_asked_as_a_question_for_the_answer() -> None:
    assert parse_strict("Like me? Not really.").rating is None


def test_a_rating_stated_as_a_number_keeps_the_papers_reading_and_strict_refuses_it() -> None:
    # The paper's rule reads the phrase in the prose and ignores the number (vpbatch audit
    # counts these); strict scores only an option that stands as the answer.
    text = "I would rate this a 4 out of 6 — mostly like me"
    assert parse_official(text) == 5
    assert parse_strict(text) == StrictResult(None, "option inside prose")
