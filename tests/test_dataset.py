"""The dataset: where it is found, what it holds, and the clear errors when it is broken."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import (
    CORR_PATHS,
    TAGGED_KEYS,
    TAGGED_PATH,
    Dataset,
    load_dataset,
    resolve_data_dir,
)
from vpbatch.benchmark.dims import FAMILIES, FAMILY_DIMS
from vpbatch.benchmark.layout import cache_dir
from vpbatch.errors import DataError
from vpbatch.log.importer import read_output_rows


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No VPBATCH_DATA and an empty cache root: only what a test sets up is found."""
    monkeypatch.delenv("VPBATCH_DATA", raising=False)
    monkeypatch.setenv("VPBATCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _copy_core(src: Path, dst: Path) -> Path:
    for rel in (TAGGED_PATH, *CORR_PATHS.values()):
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst / rel)
    return dst


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def test_explicit_dir_wins_over_env(no_env: Path, data_dir: Path, monkeypatch) -> None:
    other = _copy_core(data_dir, no_env / "other")
    monkeypatch.setenv("VPBATCH_DATA", str(other))
    assert resolve_data_dir(data_dir) == data_dir.resolve()


def test_env_is_used_without_explicit_dir(no_env: Path, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))
    assert resolve_data_dir() == data_dir.resolve()


def test_fetched_cache_is_used_last(no_env: Path, data_dir: Path) -> None:
    _copy_core(data_dir, cache_dir())
    assert resolve_data_dir() == cache_dir().resolve()


def test_no_data_anywhere_says_how_to_get_it(no_env: Path) -> None:
    with pytest.raises(DataError, match=r"--data.*VPBATCH_DATA.*vpbatch data fetch"):
        resolve_data_dir()


def test_env_pointing_at_wrong_dir_names_it(no_env: Path, monkeypatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(no_env))
    with pytest.raises(DataError, match=f"VPBATCH_DATA points at {no_env}.*{TAGGED_PATH}"):
        resolve_data_dir()


def test_explicit_missing_dir_names_it(no_env: Path) -> None:
    with pytest.raises(DataError, match="--data points at .*nowhere.*not a directory"):
        resolve_data_dir(no_env / "nowhere")


def test_items_are_520_sorted_by_portrait_then_option(ds: Dataset) -> None:
    assert ds.n_items == 520
    assert ds.portrait_id.dtype == np.int64 and ds.option_id.dtype == np.int64
    keys = list(zip(ds.portrait_id.tolist(), ds.option_id.tolist(), strict=True))
    assert keys == sorted(keys) and len(set(keys)) == 520
    assert len(set(ds.portrait_id.tolist())) == 104
    assert set(ds.option_id.tolist()) == {1, 2, 3, 4, 5}


def test_family_arrays_have_dims_columns(ds: Dataset) -> None:
    for fam in FAMILIES:
        shape = (520, len(FAMILY_DIMS[fam]))
        assert ds.corr[fam].shape == ds.pval[fam].shape == ds.corr_tagged[fam].shape == shape


def test_correlation_results_equal_tagged_lists_exactly(ds: Dataset) -> None:
    # Both files list every (item, dimension) pair with bit-identical r: no NaN anywhere.
    for fam in FAMILIES:
        assert not np.isnan(ds.corr[fam]).any() and not np.isnan(ds.pval[fam]).any()
        assert np.array_equal(ds.corr[fam], ds.corr_tagged[fam])


def test_corr_and_pval_come_from_correlation_results(ds: Dataset, data_dir: Path) -> None:
    rows = orjson.loads((data_dir / CORR_PATHS["higher_pvq"]).read_bytes())
    for row in rows[::97]:
        i = ds.index(int(row["portrait_id"]), row["option_id"])
        j = FAMILY_DIMS["higher_pvq"].index(row["higher_pvq_dimension"])
        assert ds.corr["higher_pvq"][i, j] == row["spearman_corr"]
        assert ds.pval["higher_pvq"][i, j] == row["spearman_p_value"]


def test_pvalues_are_probabilities(ds: Dataset) -> None:
    for fam in FAMILIES:
        assert ((ds.pval[fam] >= 0) & (ds.pval[fam] <= 1)).all()


def test_texts_follow_the_tagged_file(ds: Dataset, data_dir: Path) -> None:
    q = orjson.loads((data_dir / TAGGED_PATH).read_bytes())[0]
    i = ds.index(q["portrait_id"], 3)
    assert ds.title[i] == q["content"]["title"]
    assert ds.text[i] == q["content"]["text"]
    assert ds.output[i] == q["outputs"][2]["content"]


def test_title_is_none_exactly_for_chat_items(ds: Dataset) -> None:
    chat = ds.portrait_id >= 3000
    assert [t is None for t in ds.title] == chat.tolist()


def test_index_finds_each_item(ds: Dataset) -> None:
    for i in (0, 137, 519):
        assert ds.index(int(ds.portrait_id[i]), int(ds.option_id[i])) == i


def test_unknown_item_is_an_error_naming_the_pair(ds: Dataset) -> None:
    with pytest.raises(DataError, match=r"portrait_id=1003, option_id=6"):
        ds.index(1003, 6)
    with pytest.raises(DataError, match=r"portrait_id=9999, option_id=1"):
        ds.index(9999, 1)


def test_indices_is_index_vectorised(ds: Dataset) -> None:
    idx = ds.indices(ds.portrait_id[::-1], ds.option_id[::-1])
    assert idx.tolist() == list(range(519, -1, -1))
    with pytest.raises(DataError, match=r"portrait_id=1003, option_id=0"):
        ds.indices([1003, 1003], [1, 0])


def test_arrays_are_read_only(ds: Dataset) -> None:
    with pytest.raises(ValueError):
        ds.corr["pvq"][0, 0] = 1.0


def test_load_is_cached_per_root(data_dir: Path, ds: Dataset) -> None:
    assert load_dataset(data_dir) is ds


def test_missing_correlation_file_is_named(no_env: Path, data_dir: Path) -> None:
    root = _copy_core(data_dir, no_env / "d1")
    (root / CORR_PATHS["bfi"]).unlink()
    with pytest.raises(DataError, match=r"bfi_correlation_results\.json is missing.*fetch"):
        load_dataset(root)


def test_corrupt_tagged_file_is_named(no_env: Path, data_dir: Path) -> None:
    root = _copy_core(data_dir, no_env / "d2")
    blob = (root / TAGGED_PATH).read_bytes()
    (root / TAGGED_PATH).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match=r"query-response-tagged\.json is corrupt"):
        load_dataset(root)


def test_unknown_dimension_is_named(no_env: Path, data_dir: Path) -> None:
    root = _copy_core(data_dir, no_env / "d3")
    path = root / CORR_PATHS["pvq"]
    path.write_bytes(path.read_bytes().replace(b'"Hedonism"', b'"Hedonic"', 1))
    with pytest.raises(DataError, match=r"pvq_correlation_results\.json names an unknown pvq"):
        load_dataset(root)


def test_recorded_outputs_carry_only_abs_r_above_03(ds: Dataset, data_dir: Path) -> None:
    # Documents the finding in vpbatch/dataset.py: records are not a source of correlations.
    path = next((data_dir / layout.OUTPUTS / "openai").glob("gpt-4o-mini*_v1_*"))
    for rec in read_output_rows(path):  # .json as fetched, or .json.xz as ../shared has it
        i = ds.index(int(rec["portrait_id"]), int(rec["option_id"]))
        for fam, key in TAGGED_KEYS.items():
            r = ds.corr[fam][i]
            order = np.argsort(-np.abs(r), kind="stable")
            want = [[FAMILY_DIMS[fam][j], r[j]] for j in order if abs(r[j]) > 0.3]
            assert rec.get(key, []) == want
