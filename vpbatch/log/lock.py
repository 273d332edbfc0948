"""One writer per run dir: an exclusive OS file lock held for a whole `run`, import or merge.

Two sweeps appending to one log would each send (and pay for) the jobs the other is sending.
`flock` on RUN_DIR/vpbatch.lock excludes them; the kernel drops the lock when its process
exits, however it exits (kill -9 included), so a stale lock never needs cleaning. The file
itself stays (deleting it would let two processes lock two different files) and names the
current holder, so a refused writer can say who holds it. Readers (status, score, report)
never take it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from vpbatch.errors import RunDirBusy, RunDirError

__all__ = ["LOCK_NAME", "run_dir_lock", "holder"]

LOCK_NAME = "vpbatch.lock"


@contextlib.contextmanager
def run_dir_lock(path: Path, command: str) -> Iterator[Path]:
    """Hold RUN_DIR's writer lock for the block (creating the dir); RunDirBusy if it is held."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path} exists and is not a directory; choose another --run-dir")
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunDirError(f"cannot lock {lock} ({exc.strerror}); check the file "
                                  "system supports locks, or use a local --run-dir") from exc
            raise RunDirBusy(
                f"{path} is in use by {holder(lock)}; one sweep per run dir, or both would "
                "send and log the same jobs. Wait for it to finish or stop it (then resume); "
                "`vpbatch status` works meanwhile") from None
        me = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
              "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(me) + b"\n", 0)
        yield lock
    finally:
        os.close(fd)  # releases the lock


def holder(lock: Path) -> str:
    """Who holds a run dir's lock, as written by the holder when it took the lock."""
    try:
        doc = orjson.loads(lock.read_bytes())
        return (f"`vpbatch {doc['command']}` (pid {doc['pid']} on host {doc['host']}, "
                f"since {doc['since']})")
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        # It took the lock a moment ago and has not written its name yet.
        return "another vpbatch process"
