"""Run dirs: the config as run with its digest; another config is refused unless forced."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from vpbatch.config.schema import DATASET_FILE, Config, config_digest, load_config
from vpbatch.errors import RunDirError
from vpbatch.log.rundir import open_run_dir, prepare_run_dir
from vpbatch.log.runlog import LOG_NAME

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
    assert rd.hash_path.read_text().strip() == config_digest(TEXT)
    assert rd.log_path == rd.path / LOG_NAME and rd.scores_path.name == "scores.json"


def test_the_same_config_reopens_and_keeps_the_log(tmp_path: Path) -> None:
    rd = prepare_run_dir(config(tmp_path), tmp_path / "run")
    rd.log_path.write_text('{"job_id": "x"}\n')
    again = prepare_run_dir(config(tmp_path), tmp_path / "run")
    assert again.log_path.read_text() == '{"job_id": "x"}\n'


def test_a_run_named_like_its_model_gets_a_run_dir_and_reopens(tmp_path: Path) -> None:
    # [run] name = "m" with a model "m" once lost the model's name from the config's normal
    # form: KeyError 'name', a traceback, exit 1.
    text = TEXT.replace('name = "night"', 'name = "m"').replace('name = "s"', 'name = "m"')
    rd = prepare_run_dir(config(tmp_path, text), tmp_path / "run")
    again = prepare_run_dir(config(tmp_path, text), tmp_path / "run")
    assert again.path == rd.path and rd.hash_path.read_text().strip() == config_digest(text)


def test_another_config_is_refused_naming_both_digests_what_changed_and_force(
    tmp_path: Path,
) -> None:
    prepare_run_dir(config(tmp_path), tmp_path / "run")
    other = config(tmp_path, TEXT.replace('["v1"]', '["v2"]') + "temperature = 0.7\n")
    with pytest.raises(RunDirError) as exc:
        prepare_run_dir(other, tmp_path / "run")
    msg = str(exc.value)
    old, new = config_digest(TEXT)[:12], config_digest(other.text)[:12]
    assert old in msg and new in msg and "--force" in msg and exc.value.exit_code == 2
    assert "changed: run.versions; s.temperature" in msg


def test_force_adopts_the_new_config(tmp_path: Path) -> None:
    prepare_run_dir(config(tmp_path), tmp_path / "run")
    other = config(tmp_path, TEXT.replace('["v1"]', '["v2"]'))
    rd = prepare_run_dir(other, tmp_path / "run", force=True)
    assert rd.config_path.read_text() == other.text
    assert rd.config_hash() == config_digest(other.text)


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


COMPACT = """# the same sweep, respelled: a provider table, a model list, keys in another order
[[models]]
model = [{ id = "sim", name = "s" }]
provider = "sim"

[providers.sim]
concurrency = 8   # the default, written out

[run]
versions = ["v1"]
name = "night"
"""


def test_the_same_sweep_respelled_reopens_the_run_dir_and_shows_the_new_text(
    tmp_path: Path,
) -> None:
    rd = prepare_run_dir(config(tmp_path), tmp_path / "run")
    rd.log_path.write_text('{"job_id": "x"}\n')
    again = prepare_run_dir(config(tmp_path, COMPACT), tmp_path / "run")
    assert again.config_path.read_text() == COMPACT
    assert again.hash_path.read_text().strip() == config_digest(TEXT) == config_digest(COMPACT)
    assert again.log_path.read_text() == '{"job_id": "x"}\n'


def test_a_run_dir_made_before_the_digest_resumes_in_either_spelling(tmp_path: Path) -> None:
    # What vpbatch wrote before the digest: the text and the sha256 of the text.
    old = tmp_path / "run"
    old.mkdir()
    (old / "config.toml").write_text(TEXT)
    (old / "config.sha256").write_text(hashlib.sha256(TEXT.encode()).hexdigest() + "\n")
    (old / LOG_NAME).write_text('{"job_id": "x"}\n')
    prepare_run_dir(config(tmp_path), old)
    rd = prepare_run_dir(config(tmp_path, COMPACT), old)
    assert rd.hash_path.read_text().strip() == config_digest(TEXT)  # migrated
    assert rd.log_path.read_text() == '{"job_id": "x"}\n'


def test_a_run_dir_config_that_no_longer_reads_is_refused_unless_forced(tmp_path: Path) -> None:
    rd = prepare_run_dir(config(tmp_path), tmp_path / "run")
    rd.config_path.write_text("[run\n")
    with pytest.raises(RunDirError, match="no longer reads as a config.*--force"):
        prepare_run_dir(config(tmp_path), tmp_path / "run")
    assert prepare_run_dir(config(tmp_path), tmp_path / "run", force=True).config_hash() == \
        config_digest(TEXT)
