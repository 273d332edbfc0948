"""Prompts: the 6 versions verbatim, the template by source, rendering identical to the authors'."""

from __future__ import annotations

import lzma
import re
import shutil
from pathlib import Path

import orjson
import pytest

from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.benchmark.prompts import (
    KINDS,
    item_prompt,
    load_templates,
    render_prompt,
    template_kind,
    template_path,
)
from vpbatch.errors import ConfigError, DataError

_FILE = re.compile(r"^(?P<model>.+)_(?P<version>v\d(?:_reversed)?)_results\.json(?:\.xz)?$")


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def test_templates_are_the_prompt_files_byte_for_byte(data_dir: Path) -> None:
    templates = load_templates(data_dir)
    assert set(templates) == set(VERSIONS)
    for version, by_kind in templates.items():
        assert set(by_kind) == set(KINDS)
        for kind, t in by_kind.items():
            assert t.encode() == template_path(data_dir, version, kind).read_bytes()


def test_reddit_templates_ask_for_a_title_sharegpt_do_not(data_dir: Path) -> None:
    for by_kind in load_templates(data_dir).values():
        assert "{title}" in by_kind["reddit"] and "{title}" not in by_kind["sharegpt"]
        assert all("{text}" in t and "{content}" in t for t in by_kind.values())


@pytest.mark.parametrize(
    ("pid", "kind"), [(1003, "reddit"), (2999, "reddit"), (3016, "sharegpt"), (4044, "sharegpt")]
)
def test_template_kind_follows_first_digit(pid: int, kind: str) -> None:
    assert template_kind(pid) == kind


def test_template_kind_rejects_other_sources() -> None:
    with pytest.raises(DataError, match="portrait_id 5001 has no prompt template"):
        template_kind(5001)


def test_render_fills_the_three_placeholders_only() -> None:
    t = "T: {title}\nS: {text}\nR: {content}"
    out = render_prompt(t, title="a {text} b", text=" x\n", content="{content}")
    assert out == "T: a {text} b\nS:  x\n\nR: {content}"


def test_render_puts_nothing_for_a_none_title() -> None:
    assert render_prompt("[{title}]{text}", title=None, text="q", content="r") == "[]q"


def test_render_names_a_foreign_placeholder() -> None:
    with pytest.raises(DataError, match="placeholder other than"):
        render_prompt("{name}", title=None, text="q", content="r")


def test_item_prompt_uses_the_items_source_template(ds: Dataset, data_dir: Path) -> None:
    t = load_templates(data_dir)["v2"]
    i, j = ds.index(1025, 1), ds.index(3016, 1)
    assert item_prompt(ds, "v2", i).startswith(t["reddit"].split("{title}")[0] + str(ds.title[i]))
    assert item_prompt(ds, "v2", j).startswith(t["sharegpt"].split("{text}")[0] + ds.text[j])


def test_wrong_version_is_a_clear_error(ds: Dataset) -> None:
    with pytest.raises(ConfigError, match=r"unknown prompt version 'v4'.*v1, v1_reversed"):
        item_prompt(ds, "v4", 0)


def test_missing_template_is_named(tmp_path: Path, data_dir: Path) -> None:
    shutil.copytree(data_dir / layout.PROMPTS, tmp_path / layout.PROMPTS)
    template_path(tmp_path, "v3_reversed", "sharegpt").unlink()
    with pytest.raises(DataError, match=r"v3_reversed/sharegpt_prompt\.txt is missing"):
        load_templates(tmp_path)


@pytest.mark.slow
def test_render_equals_every_recorded_prompt(ds: Dataset, data_dir: Path) -> None:
    """All 33 models x 6 versions x 520 records: identical, character for character."""
    files = sorted((data_dir / layout.OUTPUTS).glob("*/*_results.json*"))
    assert len(files) == 33 * 6
    n, bad = 0, []
    for path in files:
        m = _FILE.match(path.name)
        assert m is not None, path
        blob = path.read_bytes()
        records = orjson.loads(lzma.decompress(blob) if path.suffix == ".xz" else blob)
        idx = ds.indices([int(r["portrait_id"]) for r in records],
                         [int(r["option_id"]) for r in records])
        for rec, i in zip(records, idx.tolist(), strict=True):
            n += 1
            if item_prompt(ds, m["version"], i) != rec["prompt"]:
                bad.append((path.name, rec["portrait_id"], rec["option_id"]))
    assert n == 33 * 6 * 520
    assert bad == []
