"""The exceptions a user sees: each names the problem and the fix."""

from __future__ import annotations

__all__ = ["VPBatchError", "DataError", "ConfigError", "LogError", "RunDirError", "RunDirBusy"]


class VPBatchError(Exception):
    """Base of every error vpbatch reports to a user; the CLI prints it and exits non-zero."""

    exit_code = 1


class DataError(VPBatchError):
    """The dataset is missing, corrupt or unreadable (names the file)."""


class ConfigError(VPBatchError):
    """A config is invalid (names the field and the fix)."""

    exit_code = 2


class LogError(VPBatchError):
    """A run log is unreadable beyond a torn last line."""


class RunDirError(VPBatchError):
    """A run dir does not match what was asked of it (another config, missing files)."""

    exit_code = 2


class RunDirBusy(RunDirError):
    """Another process holds the run dir's writer lock (names its PID and host)."""
