"""Replay of the authors' 33 recorded models: the prompt text identifies (version, item) and
the recorded answer comes back verbatim; recorded failures come back as what they were."""

from __future__ import annotations

import json
import lzma
import random
from pathlib import Path

import pytest

from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.benchmark.prompts import item_prompt
from vpbatch.errors import ConfigError
from vpbatch.sim.replay import ReplayBook, recorded_failure
from vpbatch.sim.respondent import Respondent
from vpbatch.transport.records import FailureKind, ProviderError, RequestParams

PARAMS = RequestParams(temperature=0.0, max_tokens=64, seed=42)
SAMPLED = [
    "openai/gpt-4o-2024-05-13",
    "openrouter/deepseek-r1",
    "anthropic/claude-3-5-haiku-20241022",
    "gemini/gemini-2.0-flash-001",
    "openrouter/qwq-32b",
]


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def _outputs(data_dir: Path) -> Path:
    return data_dir / layout.OUTPUTS


def _recorded(data_dir: Path, path: str, version: str) -> list[dict[str, object]]:
    """The authors' file read directly (.json as fetched, or ../shared's .json.xz)."""
    p = _outputs(data_dir) / f"{path}_{version}_results.json"
    xz = p.with_name(p.name + ".xz")
    rows: list[dict[str, object]] = json.loads(
        p.read_bytes() if p.is_file() else lzma.decompress(xz.read_bytes()))
    return rows


def _ask(who: Respondent, ds: Dataset, version: str, pid: int, oid: int) -> str:
    msgs = [{"role": "user", "content": item_prompt(ds, version, ds.index(pid, oid))}]
    return who.answer(msgs, PARAMS).text


@pytest.mark.parametrize("path", SAMPLED)
def test_replay_reproduces_the_recorded_raw_text_for_sampled_items(
    ds: Dataset, data_dir: Path, path: str
) -> None:
    who = Respondent.from_settings({}, model="replay:" + path.split("/")[1], data=data_dir)
    rng = random.Random(path)
    for version in VERSIONS:
        rows = [r for r in _recorded(data_dir, path, version) if "raw_response" in r]
        for row in rng.sample(rows, 15):
            pid, oid = int(str(row["portrait_id"])), int(str(row["option_id"]))
            assert _ask(who, ds, version, pid, oid) == row["raw_response"], (version, pid, oid)


def test_recorded_reasoning_is_replayed_apart_from_the_answer(
    ds: Dataset, data_dir: Path
) -> None:
    row = next(r for r in _recorded(data_dir, "openrouter/qwq-32b", "v3") if r.get("reasoning"))
    who = Respondent.from_settings({}, model="replay:qwq-32b", data=data_dir)
    i = ds.index(int(str(row["portrait_id"])), int(str(row["option_id"])))
    ans = who.answer([{"role": "user", "content": item_prompt(ds, "v3", i)}], PARAMS)
    assert (ans.text, ans.reasoning) == (row["raw_response"], row["reasoning"])


def test_a_recorded_parse_failure_replays_the_unparsed_text(ds: Dataset, data_dir: Path) -> None:
    row = next(
        r for r in _recorded(data_dir, "anthropic/claude-3-5-haiku-20241022", "v1")
        if (r["portrait_id"], r["option_id"]) in ((2038, 2), ("2038", "2"))
    )
    who = Respondent.from_settings({}, model="replay:claude-3-5-haiku-20241022", data=data_dir)
    text = _ask(who, ds, "v1", 2038, 2)
    assert text.startswith("To analyze how similar") and text in str(row["error"])


def test_a_recorded_http_400_replays_as_a_permanent_failure(ds: Dataset, data_dir: Path) -> None:
    who = Respondent.from_settings({}, model="replay:o1-mini-2024-09-12", data=data_dir)
    with pytest.raises(ProviderError) as err:
        _ask(who, ds, "v2", 3063, 4)
    assert err.value.status == 400 and err.value.kind is FailureKind.PERMANENT
    assert "usage policy" in err.value.message


def test_a_recorded_safety_block_replays_as_a_content_filter(
    ds: Dataset, data_dir: Path
) -> None:
    who = Respondent.from_settings(
        {}, model="replay:gemini-2.0-flash-thinking-exp-01-21", data=data_dir
    )
    msgs = [{"role": "user", "content": item_prompt(ds, "v1", ds.index(1038, 2))}]
    assert who.answer(msgs, PARAMS).finish_reason == "content_filter"


def test_a_recorded_failure_without_a_known_cause_replays_as_a_500() -> None:
    rec = recorded_failure("something nobody anticipated")
    assert rec.status == 500 and rec.text is None


def test_the_book_lists_all_33_recorded_models(data_dir: Path) -> None:
    book = ReplayBook(_outputs(data_dir))
    assert len(book.models()) == 33
    assert "claude-3.7-sonnet:thinking" in book.models()
    assert all(book.versions(m) == sorted(VERSIONS) for m in book.models())


def test_an_unknown_replay_model_is_refused_naming_the_known_ones(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="gpt-4o-2024-05-13"):
        Respondent.from_settings({}, model="replay:gpt-5", data=data_dir)


def test_a_prompt_outside_the_benchmark_is_a_permanent_failure(data_dir: Path) -> None:
    who = Respondent.from_settings({}, model="replay:gpt-3.5-turbo", data=data_dir)
    with pytest.raises(ProviderError) as err:
        who.answer([{"role": "user", "content": "Say hello."}], PARAMS)
    assert err.value.kind is FailureKind.PERMANENT


@pytest.mark.slow
def test_every_recorded_answer_of_every_model_is_replayable(ds: Dataset, data_dir: Path) -> None:
    book = ReplayBook(_outputs(data_dir))
    for model in book.models():
        table = book.load(model)
        assert len(table) == len(VERSIONS) * ds.n_items, model
        ds.indices([k[1] for k in table], [k[2] for k in table])  # all benchmark items
        assert all(rec.text is not None or rec.status != 200 for rec in table.values())
