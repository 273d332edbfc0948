"""Run dirs: the config as run with its sha256; another config is refused unless forced."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from vpbatch.errors import RunDirError
from vpbatch.log.rundir import open_run_dir, prepare_run_dir
from vpbatch.log.runlog import LOG_NAME
from vpbatch.sweep.config import DATASET_FILE, Config, load_config

TEXT = '[run]\nname = "night"\nversions = ["v1"]\n[[models]]\nname = "s"\nprovider = "sim"\n'


def config(tmp_path: Path, text: str = TEXT) -> Config:
    p = tmp_path / "sweep.toml"
    p.write_text(text)
    return load_config(p, check_env=False)


def test_default_run_dir_is_runs_slash_name_with_config_and_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    rd = prepare_run_dir(config(tmp_path), None)
    assert rd.path == Path("runs/night")
    assert rd.config_path.read_text() == TEXT
    assert rd.hash_path.read_text().strip() == hashlib.sha256(TEXT.encode()).hexdigest()
    assert rd.log_path == rd.path / LOG_NAME and rd.scores_path.name == "scores.json"


def test_the_same_config_reopens_and_keeps_the_log(tmp_path: Path) -> None:
    rd = prepare_run_dir(config(tmp_path), tmp_path / "run")
    rd.log_path.write_text('{"job_id": "x"}\n')
    again = prepare_run_dir(config(tmp_path), tmp_path / "run")
    assert again.log_path.read_text() == '{"job_id": "x"}\n'


def test_another_config_is_refused_naming_both_hashes_and_force(tmp_path: Path) -> None:
    prepare_run_dir(config(tmp_path), tmp_path / "run")
    other = config(tmp_path, TEXT.replace('["v1"]', '["v2"]'))
    with pytest.raises(RunDirError) as exc:
        prepare_run_dir(other, tmp_path / "run")
    msg = str(exc.value)
    old = hashlib.sha256(TEXT.encode()).hexdigest()[:12]
    new = hashlib.sha256(other.text.encode()).hexdigest()[:12]
    assert old in msg and new in msg and "--force" in msg and exc.value.exit_code == 2


def test_force_adopts_the_new_config(tmp_path: Path) -> None:
    prepare_run_dir(config(tmp_path), tmp_path / "run")
    other = config(tmp_path, TEXT.replace('["v1"]', '["v2"]'))
    rd = prepare_run_dir(other, tmp_path / "run", force=True)
    assert rd.config_path.read_text() == other.text
    assert rd.config_hash() == hashlib.sha256(other.text.encode()).hexdigest()


def test_a_dir_with_unrelated_files_becomes_a_run_dir(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "server.log").write_text("llama.cpp started\n")
    rd = prepare_run_dir(config(tmp_path), tmp_path / "run")
    assert rd.config_path.exists()


def test_a_log_without_config_is_not_adopted_silently(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOG_NAME).write_text("")
    with pytest.raises(RunDirError, match="--force"):
        prepare_run_dir(config(tmp_path), tmp_path / "run")
    assert prepare_run_dir(config(tmp_path), tmp_path / "run", force=True).config_path.exists()


def test_open_run_dir_refuses_what_is_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="does not exist"):
        open_run_dir(tmp_path / "nowhere")
    with pytest.raises(RunDirError, match="is not a run dir"):
        open_run_dir(tmp_path)


def test_open_run_dir_accepts_a_log_only_dir(tmp_path: Path) -> None:
    (tmp_path / LOG_NAME).write_text("")
    assert open_run_dir(tmp_path).config_hash() is None


def test_relative_paths_in_the_copied_config_still_resolve(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mine.toml").write_text(
        '[[personas]]\nname = "pet=cat"\ntext = "**Your Profile**: You own a cat."\n')
    text = TEXT.replace('versions = ["v1"]', 'conditions_file = "mine.toml"')
    text += '[grids]\npersonas = ["pet=cat"]\n'
    (tmp_path / "conf" / "sweep.toml").write_text(text)
    cfg = load_config(tmp_path / "conf" / "sweep.toml", check_env=False)
    rd = prepare_run_dir(cfg, tmp_path / "elsewhere" / "run")
    again = open_run_dir(rd.path).load_config()
    assert again.run.conditions_file == str((tmp_path / "conf" / "mine.toml").resolve())


def test_a_run_dir_config_loads_after_its_dataset_moved(tmp_path: Path) -> None:
    tagged = tmp_path / "data" / DATASET_FILE
    tagged.parent.mkdir(parents=True)
    tagged.write_text("[]")
    cfg = config(tmp_path, TEXT.replace('versions = ["v1"]', 'data = "data"'))
    rd = prepare_run_dir(cfg, tmp_path / "run")
    shutil.rmtree(tmp_path / "data")
    assert open_run_dir(rd.path).load_config().run.data == str((tmp_path / "data").resolve())
