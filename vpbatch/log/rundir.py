"""Run directories: the config as run (with its digest), the log, scores and reports.

A run dir belongs to one config: resuming with another is refused (unless forced), since
mixing two grids in one log makes `status` totals and scores mean nothing. "One config" is
what the config means (`config_digest`: expanded and normalised), not its text: the same sweep
respelled (a model list for 33 tables, comments, key order) resumes. Even forced, a model
label never gets answers in a second answer mode: its scores would average two methods.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpbatch.config.digest import differences, digest, normal_form
from vpbatch.config.schema import Config, config_meaning, load_config
from vpbatch.errors import ConfigError, RunDirError
from vpbatch.log.runlog import LOG_NAME, iter_log

__all__ = [
    "RunDir",
    "CONFIG_NAME",
    "HASH_NAME",
    "SOURCE_NAME",
    "SCORES_NAME",
    "RUNS_ROOT",
    "prepare_run_dir",
    "open_run_dir",
    "write_config",
]

CONFIG_NAME = "config.toml"
HASH_NAME = "config.sha256"
SOURCE_NAME = "config.source"  # the directory the config came from: its relative paths' base
SCORES_NAME = "scores.json"
RUNS_ROOT = Path("runs")


@dataclass(slots=True)
class RunDir:
    path: Path
    config_path: Path
    hash_path: Path
    log_path: Path
    scores_path: Path
    report_md_path: Path
    report_html_path: Path
    # Set by prepare_run_dir: a log is there and the config means what it meant when that log
    # was written, so the sweep resumes it (and checks its job ids, sweep.idcheck).
    resumes: bool = False

    @classmethod
    def at(cls, path: Path) -> RunDir:
        p = Path(path)
        return cls(p, p / CONFIG_NAME, p / HASH_NAME, p / LOG_NAME, p / SCORES_NAME,
                   p / "report.md", p / "report.html")

    def config_meaning(self) -> dict[str, Any] | None:
        """What the config as run means (`config_meaning`), or None when there is no config.

        Computed afresh from config.toml, never read from config.sha256: so a run dir made
        before the digest existed (its config.sha256 hashes the text) compares by meaning too,
        and so does one whose config a later vpbatch reads with more defaults.
        """
        if not self.config_path.exists():
            return None
        try:
            return config_meaning(self.config_path.read_text(encoding="utf-8"),
                                  source=self.config_path)
        except (ConfigError, UnicodeDecodeError) as exc:
            raise RunDirError(
                f"{self.config_path} no longer reads as a config ({exc}); pass --force to "
                "replace it with the config you give, or use a new --run-dir"
            ) from None

    def config_hash(self) -> str | None:
        """The digest of the config as run, or None when this dir has no config."""
        meaning = self.config_meaning()
        if meaning is not None:
            return digest(meaning)
        if self.hash_path.exists():  # a hash without its config: comparable, if to nothing
            return self.hash_path.read_text(encoding="ascii").strip()
        return None

    def load_config(
        self, *, env: Mapping[str, str] = os.environ, check_env: bool = False,
        check_data: bool = False,
    ) -> Config:
        """The config as run; relative paths in it resolve where the original file lived.

        Keys, dataset and base_urls are not checked: status and reports send nothing.
        """
        if not self.config_path.exists():
            raise RunDirError(f"{self.path} has no {CONFIG_NAME}; it was not made by "
                              "`vpbatch run` (pass the run dir that was)")
        src = self.path / SOURCE_NAME
        base = Path(src.read_text(encoding="utf-8").strip()) if src.exists() else None
        return load_config(self.config_path, env=env, check_env=check_env, base_dir=base,
                           check_data=check_data, check_urls=False)


def _atomic_write(path: Path, text: str) -> None:
    # Write-then-rename: a crash never leaves a half-written config beside a valid hash.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_config(rd: RunDir, cfg: Config) -> None:
    """Copy the config text, its digest and the directory it came from into the run dir."""
    rd.path.mkdir(parents=True, exist_ok=True)
    _atomic_write(rd.config_path, cfg.text)
    _atomic_write(rd.hash_path, digest(_meaning(cfg)) + "\n")
    if cfg.source is not None:
        _atomic_write(rd.path / SOURCE_NAME, str(Path(cfg.source).resolve().parent) + "\n")


def prepare_run_dir(cfg: Config, run_dir: Path | None, *, force: bool = False) -> RunDir:
    """Create or reopen the run dir for this config (default runs/<run.name>)."""
    rd = RunDir.at(run_dir if run_dir is not None else RUNS_ROOT / cfg.run.name)
    if rd.path.exists() and not rd.path.is_dir():
        raise RunDirError(f"{rd.path} exists and is not a directory; choose another --run-dir")
    meaning = _meaning(cfg)
    new = digest(meaning)
    try:
        was = rd.config_meaning()
        old = rd.config_hash()
    except RunDirError:
        if not force:
            raise
        was, old = None, None  # forced: the unreadable config is replaced
    if old is None and rd.log_path.exists() and not force:
        raise RunDirError(
            f"{rd.path} holds a {LOG_NAME} but no {CONFIG_NAME}, so it cannot be checked "
            "against this config; choose another --run-dir, or pass --force to adopt it"
        )
    if old is not None and old != new and not force:
        what = "; ".join(differences(was, meaning)) if was is not None else "its config is gone"
        raise RunDirError(
            f"{rd.path} was created from another config (digest {old[:12]} there, {new[:12]} "
            f"now; changed: {what}); use a new --run-dir, or pass --force to continue it with "
            "this config (finished jobs whose requests did not change are still skipped)"
        )
    if old != new and rd.log_path.exists():
        _check_answer_modes(rd, cfg)  # before the new config replaces the old one
    if old != new or not _holds(rd, cfg.text, new):
        write_config(rd, cfg)  # the same sweep respelled: the run dir shows the new spelling
    rd.resumes = old == new and rd.log_path.exists()
    return rd


def _meaning(cfg: Config) -> dict[str, Any]:
    """The config's meaning as written: read from its text, so that changes made to the loaded
    dataclasses afterwards (the demo points base_url at its server) do not count."""
    if cfg.text.strip():
        return config_meaning(cfg.text, source=cfg.source)
    return normal_form(cfg)  # built in code, not read from a file


def _holds(rd: RunDir, text: str, digest: str) -> bool:
    """Whether the run dir's config files are already this text and this digest."""
    try:
        return (rd.config_path.read_text(encoding="utf-8") == text
                and rd.hash_path.read_text(encoding="ascii").strip() == digest)
    except (OSError, UnicodeDecodeError):
        return False


def _check_answer_modes(rd: RunDir, cfg: Config) -> None:
    """Refuse a config that asks a logged model for answers in the other mode."""
    want = {m.name: m.answer or "text" for m in cfg.models}
    for row in iter_log(rd.log_path):
        name = row.get("model")
        had = row.get("answer_mode") or "text"  # lines older than answer modes are text
        if name in want and had != want[name]:
            raise RunDirError(
                f"model {name!r} already has {had}-mode answers in {rd.log_path}, and this "
                f"config asks it for {want[name]} mode; one label never mixes the two modes: "
                f'give the {want[name]}-mode model its own name (e.g. name = '
                f'"{name}-{want[name]}"), or use a new --run-dir'
            )


def open_run_dir(path: Path) -> RunDir:
    """An existing run dir (for status, score, report); RunDirError if it is not one."""
    rd = RunDir.at(Path(path))
    if not rd.path.is_dir():
        raise RunDirError(f"{rd.path} does not exist; pass a run dir made by `vpbatch run` "
                          "(runs/<name>) or `vpbatch import-official`")
    if not rd.config_path.exists() and not rd.log_path.exists():
        raise RunDirError(f"{rd.path} is not a run dir (no {CONFIG_NAME} or {LOG_NAME}); pass "
                          "a dir made by `vpbatch run` or `vpbatch import-official`")
    return rd
