"""The grid: lazy, stable, content-addressed jobs; shards partition it exactly."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import click
import orjson
import pytest

from vpbatch.benchmark.conditions import Conditions, load_conditions
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.prompts import item_prompt
from vpbatch.config.schema import Config, load_config
from vpbatch.errors import ConfigError
from vpbatch.log.records import job_ids
from vpbatch.providers.registry import make_provider
from vpbatch.sweep.grid import (
    REASONING_MAX_TOKENS,
    Job,
    count_model_jobs,
    iter_model_jobs,
    parse_shard,
    request_params,
)

SMALL = """
[run]
name = "small"
versions = ["v1", "v2_reversed", "v3"]
repeats = 2
items = 12

[[models]]
name = "a"
provider = "sim"

[[models]]
name = "b"
provider = "openai"
model = "gpt-4o-mini"
api_key_env = "KEY_B"
max_tokens = 16

[grids]
personas = ["gender=male", "age=80+"]
steering = ["Power"]
"""


def config(tmp_path: Path, text: str = SMALL, name: str = "c.toml") -> Config:
    p = tmp_path / name
    p.write_text(text)
    return load_config(p, check_env=False)


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


@pytest.fixture(scope="module")
def conds() -> Conditions:
    return load_conditions()


def all_jobs(
    cfg: Config, ds: Dataset, conds: Conditions, *, shard: tuple[int, int] | None = None
) -> Iterator[Job]:
    """Every model's jobs, one model after another."""
    return itertools.chain.from_iterable(
        iter_model_jobs(cfg, m, ds, conds, shard=shard) for m in cfg.models)


def test_count_is_models_conditions_versions_items_repeats(
    tmp_path: Path, ds: Dataset, conds: Conditions
) -> None:
    cfg = config(tmp_path)
    for m in cfg.models:
        jobs = list(iter_model_jobs(cfg, m, ds, conds))
        assert len(jobs) == count_model_jobs(cfg, m, ds, conds) == 4 * 3 * 12 * 2


def test_job_ids_are_stable_across_runs(tmp_path: Path, ds: Dataset, conds: Conditions) -> None:
    cfg = config(tmp_path)
    first = [j.job_id for j in iter_model_jobs(cfg, cfg.models[1], ds, conds)]
    again = [j.job_id for j in iter_model_jobs(config(tmp_path), cfg.models[1], ds, conds)]
    assert first == again
    code = ("import sys; from vpbatch.config.schema import load_config; "
            "from vpbatch.benchmark.dataset import load_dataset; "
            "from vpbatch.benchmark.conditions import load_conditions; "
            "from vpbatch.sweep.grid import iter_model_jobs; "
            "c = load_config(sys.argv[1], check_env=False); "
            "print(next(iter_model_jobs(c, c.models[1], load_dataset(sys.argv[2]), "
            "load_conditions())).job_id)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c.toml"), str(ds.root)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == first[0]


def test_job_ids_differ_across_repeats_conditions_versions_and_models(
    tmp_path: Path, ds: Dataset, conds: Conditions
) -> None:
    cfg = config(tmp_path)
    jobs = list(all_jobs(cfg, ds, conds))
    assert len({j.job_id for j in jobs}) == len(jobs)


@pytest.mark.parametrize("repeats", [1, 3])
def test_job_id_digests_the_whole_body_the_provider_sends(
    tmp_path: Path, ds: Dataset, conds: Conditions, repeats: int
) -> None:
    # A key that sorts before every other: the digest must not depend on where keys fall.
    text = SMALL.replace("repeats = 2", f"repeats = {repeats}").replace(
        "max_tokens = 16", "max_tokens = 16\nextra_body = { aaa_first = 1, top_p = 0.5 }")
    cfg = config(tmp_path, text)
    m = cfg.models[1]
    provider = make_provider(m, None, env={"KEY_B": "sk-test-key-0123456789"})
    for j in itertools.islice(iter_model_jobs(cfg, m, ds, conds), 40):
        sent = provider.build_request(j.messages, j.params)
        assert j.body == sent.body and sent.body["aaa_first"] == 1
        identity = {"model": m.name, "provider": m.provider, "url": sent.url, "body": sent.body}
        assert j.job_id == job_ids(identity, repeats)[j.repeat]


def test_job_ids_hash_canonical_json_then_the_repeat() -> None:
    identity = {"model": "m", "body": {"z": 1, "a": [1, 2]}, "url": "http://x/v1"}
    shuffled = {"url": "http://x/v1", "body": {"a": [1, 2], "z": 1}, "model": "m"}
    blob = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
    want = [hashlib.sha256(blob + b"\n" + str(r).encode()).hexdigest()[:32] for r in range(3)]
    assert job_ids(identity, 3) == job_ids(shuffled, 3) == want


def test_the_key_never_enters_the_job_id(tmp_path: Path, ds: Dataset, conds: Conditions) -> None:
    cfg = config(tmp_path)
    other = config(tmp_path, SMALL.replace('"KEY_B"', '"ANOTHER_KEY"'), "d.toml")
    a = next(iter_model_jobs(cfg, cfg.models[1], ds, conds)).job_id
    b = next(iter_model_jobs(other, other.models[1], ds, conds)).job_id
    assert a == b


# Each edit changes one thing the request carries (or where it goes) for model "b".
CHANGES = {
    "extra_body": ("max_tokens = 16", "max_tokens = 16\nextra_body = { top_p = 0.9 }"),
    "nested extra_body": ("max_tokens = 16", "max_tokens = 16\nextra_body = { a = { b = 1 } }"),
    "reasoning": ("max_tokens = 16", "max_tokens = 16\nreasoning = true"),
    "temperature": ("max_tokens = 16", "max_tokens = 16\ntemperature = 0.7"),
    "max_tokens": ("max_tokens = 16", "max_tokens = 17"),
    "seed": ("max_tokens = 16", "max_tokens = 16\nseed = 7"),
    "base_url": ("max_tokens = 16", 'max_tokens = 16\nbase_url = "http://127.0.0.1:9/v1"'),
    "model id": ('model = "gpt-4o-mini"', 'model = "gpt-4o"'),
    "label": ('name = "b"', 'name = "b2"'),
    "provider": ('provider = "openai"', 'provider = "openrouter"'),
}


@pytest.mark.parametrize("change", CHANGES)
def test_changing_anything_sent_makes_every_job_new(
    tmp_path: Path, ds: Dataset, conds: Conditions, change: str
) -> None:
    cfg = config(tmp_path)
    old, new = CHANGES[change]
    assert old in SMALL
    edited = config(tmp_path, SMALL.replace(old, new), "d.toml")
    before = {j.job_id for j in iter_model_jobs(cfg, cfg.models[1], ds, conds)}
    after = {j.job_id for j in iter_model_jobs(edited, edited.models[1], ds, conds)}
    assert len(after) == len(before) and not before & after


def test_changing_a_system_message_makes_its_jobs_new(
    tmp_path: Path, ds: Dataset, conds: Conditions
) -> None:
    assert conds.source is not None
    personas = conds.source.read_text(encoding="utf-8")
    text = "You are 80+ years old."
    assert personas.count(text) == 1
    (tmp_path / "p.toml").write_text(personas.replace(text, "You are over 80."), encoding="utf-8")
    edited_conds = load_conditions(tmp_path / "p.toml")
    cfg = config(tmp_path)
    before = {(j.condition, j.job_id) for j in iter_model_jobs(cfg, cfg.models[1], ds, conds)}
    after = {(j.condition, j.job_id)
             for j in iter_model_jobs(cfg, cfg.models[1], ds, edited_conds)}
    changed = {c for c, _ in before - after}
    assert changed == {"persona:age=80+"}  # the other conditions send the same requests


def test_a_body_no_api_accepts_is_a_config_error_naming_the_model(
    tmp_path: Path, ds: Dataset, conds: Conditions
) -> None:
    text = SMALL + '[[models]]\nname = "c"\nprovider = "anthropic"\nmodel = "claude-x"\n' \
        "reasoning = true\nmax_tokens = 512\n"
    cfg = config(tmp_path, text)
    with pytest.raises(ConfigError, match="'c'.*max_tokens"):
        next(iter_model_jobs(cfg, cfg.models[2], ds, conds))


def test_messages_are_the_item_prompt_under_the_conditions_system_message(
    tmp_path: Path, ds: Dataset, conds: Conditions
) -> None:
    cfg = config(tmp_path)
    by_cond = {}
    for j in iter_model_jobs(cfg, cfg.models[0], ds, conds):
        assert j.messages[-1] == {"role": "user", "content": item_prompt(ds, j.version, j.item)}
        assert (j.portrait_id, j.option_id) == (int(ds.portrait_id[j.item]),
                                                int(ds.option_id[j.item]))
        by_cond[j.condition] = j.messages
    assert len(by_cond["vanilla"]) == 1  # the paper sends no system message
    assert by_cond["persona:age=80+"][0] == {
        "role": "system", "content": "**Your Profile**: You are 80+ years old."}
    assert by_cond["steer:Power"][0]["content"].startswith("**Your Profile**: You value Power.")


def test_first_jobs_cover_every_condition_and_version(
    tmp_path: Path, ds: Dataset, conds: Conditions
) -> None:
    cfg = config(tmp_path)
    head = list(itertools.islice(iter_model_jobs(cfg, cfg.models[0], ds, conds), 4 * 3 * 2))
    assert {(j.condition, j.version, j.repeat) for j in head} == set(itertools.product(
        ["vanilla", "persona:gender=male", "persona:age=80+", "steer:Power"],
        cfg.run.versions, [0, 1]))
    assert {j.item for j in head} == {0}


def test_shards_partition_the_grid_exactly(tmp_path: Path, ds: Dataset, conds: Conditions) -> None:
    cfg = config(tmp_path)
    whole = [j.job_id for j in all_jobs(cfg, ds, conds)]
    parts = [[j.job_id for j in all_jobs(cfg, ds, conds, shard=(k, 3))] for k in range(3)]
    assert sorted(itertools.chain(*parts)) == sorted(whole)
    assert sum(len(set(p)) for p in parts) == len(set(whole))
    assert all(len(p) > len(whole) / 6 for p in parts)  # a hash split, roughly even
    for k in range(3):
        assert sum(count_model_jobs(cfg, m, ds, conds, shard=(k, 3))
                   for m in cfg.models) == len(parts[k])


def test_a_ten_million_job_grid_streams_in_bounded_memory(
    tmp_path: Path, ds: Dataset, conds: Conditions
) -> None:
    text = ('[run]\nrepeats = 90\n[[models]]\nname = "big"\nprovider = "sim"\n'
            '[grids]\npersonas = "all"\nsteering = "all"\n')
    cfg = config(tmp_path, text)
    m = cfg.models[0]
    assert count_model_jobs(cfg, m, ds, conds) == 520 * 6 * 36 * 90 > 10_000_000
    tracemalloc.start()
    try:
        stream = iter_model_jobs(cfg, m, ds, conds)
        first = next(stream)
        for _ in itertools.islice(stream, 5_000):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first.condition == "vanilla" and first.item == 0
    assert peak < 2_000_000  # a list of 10M jobs would be gigabytes


def test_reasoning_models_are_guessed_and_get_room_to_think(tmp_path: Path) -> None:
    text = """
[[models]]
name = "o3"
provider = "openai"
model = "o3-mini"
[[models]]
name = "r1"
provider = "openrouter"
model = "deepseek/deepseek-r1"
max_tokens = 2000
[[models]]
name = "4o"
provider = "openai"
model = "gpt-4o"
[[models]]
name = "forced"
provider = "openai"
model = "my-finetune"
reasoning = true
"""
    cfg = config(tmp_path, text)
    params = [request_params(cfg, m) for m in cfg.models]
    assert [p.reasoning for p in params] == [True, True, False, True]
    assert [p.max_tokens for p in params] == [REASONING_MAX_TOKENS, 2000, 64, REASONING_MAX_TOKENS]
    assert (params[2].temperature, params[2].seed) == (0.0, 42)  # the paper's settings


def test_parse_shard_is_one_based_for_users() -> None:
    assert parse_shard("1/4") == (0, 4)
    assert parse_shard(" 4 / 4 ") == (3, 4)


@pytest.mark.parametrize("bad", ["0/4", "5/4", "2", "a/b", "1/0"])
def test_parse_shard_refuses_nonsense_with_an_example(bad: str) -> None:
    with pytest.raises(click.BadParameter, match="e.g. --shard 2/4"):
        parse_shard(bad)
