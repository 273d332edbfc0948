"""The exceptions a user sees (each names the problem and the fix), and the exit codes."""

from __future__ import annotations

import enum

__all__ = ["ExitCode", "VPBatchError", "DataError", "ConfigError", "LogError", "LogWriteError",
           "RunDirError", "RunDirBusy", "CorruptLinesWarning"]


class ExitCode(enum.IntEnum):
    """What `vpbatch` exits with; the one table (docs: Exit status; `vpbatch run --help`).

    An error class names its code in `exit_code`; a sweep's own outcome is judged by
    `SweepSummary.exit_code`. Scripts and schedulers branch on these, so they never change.
    """

    OK = 0  # every job answered, or failed within [run] fail_on_error
    ENVIRONMENT = 1  # stopped by its surroundings: disk full, I/O error, data or log unreadable
    USAGE = 2  # a config or usage error (nothing was sent for it)
    MODEL_FAILED = 3  # finished, but a model was stopped or failed beyond fail_on_error
    INTERRUPTED = 130  # SIGINT (Ctrl-C): 128 + 2; a resume continues
    TERMINATED = 143  # SIGTERM: 128 + 15; a resume continues


class VPBatchError(Exception):
    """Base of every error vpbatch reports to a user; the CLI prints it and exits non-zero."""

    exit_code: int = ExitCode.ENVIRONMENT


class DataError(VPBatchError):
    """The dataset is missing, corrupt or unreadable (names the file)."""


class ConfigError(VPBatchError):
    """A config is invalid (names the field and the fix)."""

    exit_code = ExitCode.USAGE


class LogError(VPBatchError):
    """A run log is unreadable beyond a torn last line."""


class LogWriteError(LogError):
    """An append to the log failed (a full disk, an I/O error): the sweep stops; resume later."""

    exit_code = ExitCode.ENVIRONMENT  # not the config's fault, nor the models'


class CorruptLinesWarning(UserWarning):
    """A log holds corrupt lines; every reader skips them and says so once (names the lines)."""


class RunDirError(VPBatchError):
    """A run dir does not match what was asked of it (another config, missing files)."""

    exit_code = ExitCode.USAGE


class RunDirBusy(RunDirError):
    """Another process holds the run dir's writer lock (names its PID and host)."""
