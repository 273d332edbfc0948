"""First use: find the data root, or fetch into the cache what it lacks, with a progress line.

`make run`, `make test` and the demo call `ensure_data` so that a fresh clone works by itself.
An explicit root (`--data`, `run.data`, `$VPBATCH_DATA`, which `make` sets to
`../shared/valueportrait` when it exists) always wins and is never written to; only the cache
is filled. Offline, it fails at once with one message that says what to set.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

from vpbatch.benchmark.fetch import OfflineError, fetch, local_file
from vpbatch.benchmark.layout import (
    CORE,
    ManifestFile,
    cache_dir,
    load_manifest,
    resolve_data_dir,
)
from vpbatch.errors import DataError

__all__ = ["ensure_data", "needed_files", "absent", "FetchProgress"]


def needed_files(
    *, with_outputs: bool = False, models: Iterable[str] = ()
) -> tuple[ManifestFile, ...]:
    """The core files, plus every recording (`with_outputs`) or those of `models` only."""
    m = load_manifest()
    if with_outputs:
        return m.select(with_outputs=True)
    return tuple(f for f in m.files if f.group == CORE) + m.outputs_of(models)


def absent(root: Path, files: Iterable[ManifestFile]) -> list[ManifestFile]:
    """Files missing under `root`, or of the wrong size: a stat each, no hashing."""
    out = []
    for mf in files:
        p = local_file(root, mf)
        # A .xz copy (../shared's outputs) has another size than the upstream .json.
        if p is None or (p.suffix != ".xz" and p.stat().st_size != mf.size):
            out.append(mf)
    return out


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class FetchProgress:
    """One progress line for a download: files, bytes, rate and ETA.

    Redrawn in place on a terminal (at most 4 times a second); elsewhere (CI, a log file) a
    line every `interval` seconds and a last one, so a log is not flooded.
    """

    __slots__ = ("files", "total", "got", "done", "stream", "tty", "interval", "header",
                 "_clock", "_t0", "_last")

    def __init__(
        self, files: Sequence[ManifestFile], stream: TextIO, *, interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic, header: str | None = None,
    ) -> None:
        # Printed with the first byte received: offline, the error alone is the message.
        self.header = header
        self.files = len(files)
        self.total = sum(f.size for f in files)
        self.got: dict[str, int] = {}  # bytes per file; a retried download restarts its count
        self.done = 0
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = 0.25 if self.tty else interval
        self._clock = clock
        self._t0 = clock()
        self._last = self._t0

    def _start(self) -> None:
        if self.header is not None:
            self.stream.write(self.header + "\n")
            self.header = None

    def on_bytes(self, mf: ManifestFile, got: int) -> None:
        self._start()
        self.got[mf.path] = got
        now = self._clock()
        if now - self._last >= self.interval:
            self._last = now
            self._show()

    def on_file(self, mf: ManifestFile, status: str) -> None:
        self._start()
        self.done += 1
        self.got[mf.path] = mf.size

    def line(self) -> str:
        got = sum(self.got.values())
        elapsed = self._clock() - self._t0
        rate = got / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * got / self.total if self.total else 100.0
        eta = f"  eta {int((self.total - got) / rate)}s" if rate > 0 and got < self.total else ""
        return (f"fetching data: {self.done}/{self.files} files  {_mb(got)}/{_mb(self.total)}"
                f"  {pct:.0f}%  {_mb(rate)}/s{eta}")

    def _show(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._start()
        self._show()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _explicit(explicit: str | Path | None) -> bool:
    return (explicit is not None and str(explicit) != "") or bool(os.environ.get("VPBATCH_DATA"))


def ensure_data(
    explicit: str | Path | None = None,
    *,
    with_outputs: bool = False,
    models: Iterable[str] = (),
    stream: TextIO | None = None,
) -> Path:
    """The data root holding what is asked (core; recordings of `models`, or all of them).

    An explicit root (`explicit`, else $VPBATCH_DATA) must already hold it; else the cache is
    filled from the pinned commit ($VPBATCH_DATA_URL: a mirror), showing progress on `stream`.
    """
    files = needed_files(with_outputs=with_outputs, models=models)
    if _explicit(explicit):
        root = resolve_data_dir(explicit)
        missing = absent(root, files)
        if missing:
            raise DataError(
                f"{root} lacks {len(missing)} file(s) this needs, e.g. {missing[0].path}; "
                f"run `vpbatch data fetch{' --with-outputs' if with_outputs or models else ''} "
                f"--dest {root}`, or unset VPBATCH_DATA to use the cache, which is filled "
                "on first use"
            )
        return root
    root = cache_dir()
    missing = absent(root, files)
    if not missing:
        return root
    out = stream if stream is not None else sys.stderr
    m = load_manifest()
    where = os.environ.get("VPBATCH_DATA_URL") or f"{m.repository}@{m.commit[:7]}"
    progress = FetchProgress(missing, out, header=(
        f"no Value Portrait data found (VPBATCH_DATA is not set): fetching {len(missing)} "
        f"files ({_mb(sum(f.size for f in missing))}) from {where} into {root}"))
    try:
        # A short connect timeout: a machine without network should hear so in seconds.
        fetch(root, files=missing, on_file=progress.on_file, on_bytes=progress.on_bytes,
              connect_timeout=10)
    except OfflineError as exc:
        raise DataError(
            f"no Value Portrait data found, and {exc.host} cannot be reached ({exc.reason}). "
            "Set VPBATCH_DATA to a copy of the data (the folder holding data/ and "
            f"lm_evaluation/), or VPBATCH_DATA_URL to a mirror of {m.repository} at commit "
            f"{m.commit[:7]}; then run again"
        ) from exc
    progress.close()
    return root
