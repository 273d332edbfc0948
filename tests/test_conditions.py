"""Conditions as data: the paper's personas (appendix G) and steering prompts (appendix H.2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dims import PVQ
from vpbatch.config.schema import Config, GridConfig, ModelConfig, RunConfig
from vpbatch.errors import ConfigError
from vpbatch.sweep.grid import model_conditions, system_message

GROUPS = {
    "gender": 2, "age": 4, "politics": 3, "education": 4, "race": 4, "religion": 5, "income": 3,
}


def squash(text: str) -> str:
    return " ".join(text.split())


def cfg_with(grid_personas: list[str] | str, grid_steering: list[str] | str) -> Config:
    m = ModelConfig(name="m", provider="sim", model="sim")
    return Config(run=RunConfig(), models=[m], grids=GridConfig(grid_personas, grid_steering))


def test_the_packaged_file_has_the_papers_25_personas_in_7_groups() -> None:
    conds = load_conditions()
    assert len(conds.personas) == 25
    groups: dict[str, int] = {}
    for name, p in conds.personas.items():
        assert name == f"{p.group}={p.value}"
        groups[p.group] = groups.get(p.group, 0) + 1
    assert groups == GROUPS


def test_the_papers_four_example_texts_are_verbatim() -> None:
    p = load_conditions().personas
    assert p["gender=male"].text == "**Your Profile**: Your gender is male."
    assert p["politics=left-wing"].text == (
        "**Your Profile**: Generally speaking, you consider yourself politically left-wing.")
    assert p["age=20-39"].text == "**Your Profile**: You are 20-39 years old."
    assert p["education=master's degree"].text == (
        "**Your Profile**: The highest degree or level of school that you have completed is "
        "master's degree.")


def test_every_persona_text_is_a_profile_line() -> None:
    for p in load_conditions().personas.values():
        assert p.text.startswith("**Your Profile**: ") and p.text.endswith(".")


def test_every_persona_maps_onto_the_papers_tables(paper_dir: Path) -> None:
    tables = json.loads((paper_dir / "persona_steering_tables.json").read_text())["persona_deltas"]
    for p in load_conditions().personas.values():
        assert p.paper_group in tables, p.name
        assert p.paper_value in tables[p.paper_group]["gpt-4o"], p.name
        human = tables[p.paper_group].get("human")
        if human is not None:  # gender, age, politics, education have ESS rows
            assert p.paper_value in human, p.name


def test_steering_covers_the_ten_values_in_table_order() -> None:
    assert list(load_conditions().steering) == list(PVQ)


def test_steering_message_follows_the_spec_template() -> None:
    conds = load_conditions()
    assert conds.steering["Power"] == (
        "**Your Profile**: You value Power.\n\nValue Definition:\n- Power: values social status "
        "and prestige, control or dominance over people and resources")
    sd = conds.steering["Self_Direction"]
    assert sd.startswith("**Your Profile**: You value Self-Direction.")


def test_steering_definitions_are_verbatim_from_appendix_h2(paper_text: str) -> None:
    paper = squash(paper_text)
    conds = load_conditions()
    for dim, text in conds.steering.items():
        bullet = squash(text.split("\n- ", 1)[1])
        assert f"- {bullet}" in paper, dim
        assert conds.definitions[dim] in bullet


def test_vanilla_comes_first_once_and_personas_then_steering() -> None:
    conds = load_conditions()
    got = model_conditions(cfg_with(["gender=male"], ["Power"]), cfg_with([], []).models[0], conds)
    assert got == ["vanilla", "persona:gender=male", "steer:Power"]


def test_all_selects_every_name_in_file_order() -> None:
    conds = load_conditions()
    cfg = cfg_with("all", "all")
    got = model_conditions(cfg, cfg.models[0], conds)
    assert len(got) == 1 + 25 + 10
    assert got[1] == "persona:gender=male" and got[-1] == "steer:Self_Direction"


def test_a_model_can_switch_grids_off_or_on_for_itself() -> None:
    conds = load_conditions()
    cfg = cfg_with("all", "all")
    cfg.models[0].personas, cfg.models[0].steering = [], ["Hedonism"]
    assert model_conditions(cfg, cfg.models[0], conds) == ["vanilla", "steer:Hedonism"]


def test_system_message_is_none_for_vanilla_and_the_text_otherwise() -> None:
    conds = load_conditions()
    assert system_message("vanilla", conds) is None
    assert system_message("persona:race=asian", conds) == "**Your Profile**: Your race is Asian."
    assert system_message("steer:Tradition", conds) == conds.steering["Tradition"]


def test_an_unknown_condition_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown condition 'persona:pet=cat'"):
        system_message("persona:pet=cat", load_conditions())


@pytest.mark.parametrize(("text", "expect"), [
    ('[[personas]]\nname = "a=b"\ntext = "x"\ncolour = "red"\n', "unknown key 'colour'"),
    ('[[personas]]\nname = "a=b"\ntext = "x"\n[[personas]]\nname = "a=b"\ntext = "y"\n',
     "duplicate persona 'a=b'"),
    ('[[personas]]\nname = "ab"\ntext = "x"\n', '"<group>=<value>"'),
    ('[steering]\ntemplate = "{name}: {definition}"\n[[steering.values]]\ndimension = "Love"\n'
     'definition = "x"\n', "'Love' is not a value dimension"),
])
def test_a_bad_conditions_file_names_the_entry(tmp_path: Path, text: str, expect: str) -> None:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=expect.replace("(", r"\(")):
        load_conditions(p)


def test_a_missing_conditions_file_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run.conditions_file"):
        load_conditions(tmp_path / "nope.toml")
