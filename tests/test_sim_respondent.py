"""The simulated respondent: its known profile, persona and steering shifts come back out of
the real scorer, and its answers are a pure function of the request and the seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import spearmanr

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import PVQ, VANILLA, VERSIONS
from vpbatch.benchmark.parser import StrictResult, parse_official, parse_strict
from vpbatch.benchmark.prompts import item_prompt
from vpbatch.errors import ConfigError
from vpbatch.scoring.cube import cube_from_rows
from vpbatch.scoring.scorer import Scores, score_cube
from vpbatch.sim.respondent import PERSONA_SHIFTS, PROFILES, Respondent
from vpbatch.transport.records import RequestParams

PARAMS = RequestParams(temperature=0.0, max_tokens=64, seed=42)


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


@pytest.fixture(scope="module")
def sim(data_dir: Path) -> Respondent:
    return Respondent.from_settings({}, model="sim", data=data_dir)


def _messages(ds: Dataset, version: str, i: int, system: str | None) -> list[dict[str, str]]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": item_prompt(ds, version, i)}]


def _sweep(ds: Dataset, who: Respondent, conditions: dict[str, str | None]) -> Scores:
    """Every condition x version x item through the respondent and the official parser."""
    rows: list[dict[str, Any]] = []
    for cond, system in conditions.items():
        for version in VERSIONS:
            for i in range(ds.n_items):
                text = who.answer(_messages(ds, version, i, system), PARAMS).text
                rows.append({
                    "job_id": f"{cond}/{version}/{i}", "model": who.model, "condition": cond,
                    "version": version, "portrait_id": int(ds.portrait_id[i]),
                    "option_id": int(ds.option_id[i]), "status": "ok",
                    "rating": parse_official(text),
                })
    return score_cube(cube_from_rows(rows, ds), ds)


def _pvq(scores: Scores, cond: str) -> np.ndarray:
    return scores.score["pvq"][0, scores.conditions.index(cond)]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_known_profile_comes_back_out_of_the_scorer(
    ds: Dataset, data_dir: Path, profile: str
) -> None:
    who = Respondent.from_settings({}, model=f"sim:{profile}", data=data_dir)
    scores = _sweep(ds, who, {VANILLA: None})
    truth = np.array([who.profile[d] for d in PVQ])
    rho = spearmanr(truth, _pvq(scores, VANILLA)).statistic
    assert rho >= 0.9, f"{profile}: Spearman {rho:.3f} between profile and measured scores"


def test_steering_row_maximum_lies_on_the_diagonal_for_8_of_10_values(
    ds: Dataset, sim: Respondent
) -> None:
    steering = load_conditions().steering
    conds: dict[str, str | None] = {VANILLA: None, **{f"steer:{d}": steering[d] for d in PVQ}}
    scores = _sweep(ds, sim, conds)
    matrix = np.array([_pvq(scores, f"steer:{d}") - _pvq(scores, VANILLA) for d in PVQ])
    on_diagonal = int((matrix.argmax(axis=1) == np.arange(len(PVQ))).sum())
    assert on_diagonal >= 8, np.round(matrix, 2)


def test_persona_deltas_have_the_signs_of_the_simulated_shifts(
    ds: Dataset, sim: Respondent
) -> None:
    personas = load_conditions().personas
    conds: dict[str, str | None] = {VANILLA: None}
    conds.update({f"persona:{n}": p.text for n, p in personas.items()})
    scores = _sweep(ds, sim, conds)
    wrong = []
    for name in personas:
        delta = _pvq(scores, f"persona:{name}") - _pvq(scores, VANILLA)
        for dim, shift in sim.persona_shift(f"persona:{name}").items():
            if shift != 0 and np.sign(delta[PVQ.index(dim)]) != np.sign(shift):
                wrong.append((name, dim, shift, round(float(delta[PVQ.index(dim)]), 3)))
    assert not wrong


def test_every_paper_persona_has_a_known_shift() -> None:
    assert set(load_conditions().personas) <= set(PERSONA_SHIFTS)


def test_shift_for_a_persona_message_is_its_persona_shift(ds: Dataset, sim: Respondent) -> None:
    persona = load_conditions().personas["politics=left-wing"]
    msgs = _messages(ds, "v1", 0, persona.text)
    assert sim.shift_for(msgs) == sim.persona_shift("persona:politics=left-wing")
    assert sim.shift_for(msgs)["Universalism"] > 0


def test_steering_message_shifts_only_the_value_it_names(ds: Dataset, sim: Respondent) -> None:
    text = load_conditions().steering["Self_Direction"]  # written "Self-Direction" in the text
    shift = sim.shift_for(_messages(ds, "v2", 3, text))
    assert shift["Self_Direction"] > 0
    assert all(v == 0 for d, v in shift.items() if d != "Self_Direction")


def test_steering_text_outside_the_conditions_file_is_still_recognised(
    ds: Dataset, sim: Respondent
) -> None:
    shift = sim.shift_for(_messages(ds, "v1", 0, "**Your Profile**: You value Power."))
    assert shift["Power"] > 0


def test_vanilla_has_no_shift(ds: Dataset, sim: Respondent) -> None:
    assert not any(sim.shift_for(_messages(ds, "v1", 0, None)).values())


def test_answers_are_a_deterministic_function_of_request_and_seed(
    ds: Dataset, data_dir: Path
) -> None:
    msgs = [_messages(ds, v, i, None) for v in VERSIONS[:2] for i in range(0, 520, 7)]
    first = Respondent.from_settings({"seed": 3}, model="sim", data=data_dir)
    again = Respondent.from_settings({"seed": 3}, model="sim", data=data_dir)
    other = Respondent.from_settings({"seed": 4}, model="sim", data=data_dir)
    a = [first.answer(m, PARAMS).text for m in msgs]
    assert a == [again.answer(m, PARAMS).text for m in msgs]
    assert a != [other.answer(m, PARAMS).text for m in msgs]


def test_answer_is_one_of_the_six_phrases_with_usage(ds: Dataset, sim: Respondent) -> None:
    ans = sim.answer(_messages(ds, "v3_reversed", 11, None), PARAMS)
    assert parse_official(ans.text) is not None
    assert ans.finish_reason == "stop"
    assert ans.usage["prompt_tokens"] > 0 and ans.usage["completion_tokens"] > 0


def test_refusals_are_unparseable_never_guessed(ds: Dataset, data_dir: Path) -> None:
    who = Respondent.from_settings({"p_refuse": 1.0}, model="sim", data=data_dir)
    assert parse_official(who.answer(_messages(ds, "v1", 0, None), PARAMS).text) is None


def test_verbose_answers_parse_to_the_same_rating(ds: Dataset, data_dir: Path) -> None:
    plain = Respondent.from_settings({}, model="sim", data=data_dir)
    wordy = Respondent.from_settings({"p_verbose": 1.0}, model="sim", data=data_dir)
    for i in range(0, 520, 37):
        msgs = _messages(ds, "v2", i, None)
        assert parse_official(wordy.answer(msgs, PARAMS).text) == parse_official(
            plain.answer(msgs, PARAMS).text
        )


def test_the_strict_parser_rates_every_answer_style_as_the_plain_answer(
    ds: Dataset, data_dir: Path
) -> None:
    # Each of the four wordings ("Honestly, {}." among them), with all six phrases.
    plain = Respondent.from_settings({"noise": 3.0}, model="sim", data=data_dir)
    wordy = Respondent.from_settings({"noise": 3.0, "p_verbose": 1.0}, model="sim",
                                     data=data_dir)
    styles: dict[str, set[int | None]] = {}
    for i in range(0, 520, 3):
        msgs = _messages(ds, "v1", i, None)
        phrase, text = plain.answer(msgs, PARAMS).text, wordy.answer(msgs, PARAMS).text
        rating = parse_official(phrase)
        assert parse_strict(text) == StrictResult(rating, None), text
        styles.setdefault(text.replace(phrase, "{}"), set()).add(rating)
    assert len(styles) == 4 and all(len(r) == 6 for r in styles.values())  # all 24 pairings


def test_the_strict_parser_refuses_the_simulated_refusal(ds: Dataset, data_dir: Path) -> None:
    who = Respondent.from_settings({"p_refuse": 1.0}, model="sim", data=data_dir)
    text = who.answer(_messages(ds, "v1", 0, None), PARAMS).text
    assert parse_strict(text) == StrictResult(None, "refusal")


def test_a_prompt_outside_the_benchmark_still_gets_an_answer(sim: Respondent) -> None:
    ans = sim.answer([{"role": "user", "content": "Say hello."}], PARAMS)
    assert parse_official(ans.text) is not None


def test_profile_can_be_given_as_a_table(data_dir: Path) -> None:
    who = Respondent.from_settings({"profile": {"Power": 1.0}}, model="sim", data=data_dir)
    assert who.profile["Power"] == 1.0 and who.profile["Universalism"] == 0.0


def test_unknown_profile_is_refused_naming_the_known_ones(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="universalist"):
        Respondent.from_settings({}, model="sim:nobody", data=data_dir)


def test_unknown_setting_is_refused_naming_the_allowed_ones(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="noise"):
        Respondent.from_settings({"nosie": 1.0}, model="sim", data=data_dir)


def test_unknown_value_in_a_profile_table_is_refused(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="Wealth"):
        Respondent.from_settings({"profile": {"Wealth": 1.0}}, model="sim", data=data_dir)
