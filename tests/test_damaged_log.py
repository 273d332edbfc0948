"""A damaged log and a full disk, with real processes: `vpbatch sim serve` and `vpbatch ...`.

A corrupt line is skipped by every reader with one warning, moved aside by `run`, and only its
job is sent again; `vpbatch log check` reports without changing anything; a sweep whose disk
fills stops with every written line intact, and a resume after space is freed finishes the grid
with no job twice.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vpbatch.demos.demo import SimProcess
from vpbatch.log.runlog import iter_log

pytestmark = pytest.mark.timeout(300)

ITEMS, CONCURRENCY = 10, 4
N_JOBS = ITEMS * 6  # six versions
BAD = (10, 30)  # the corrupt lines' numbers, 1-based, in the middle of the log


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[SimProcess]:
    os.environ.setdefault("VPBATCH_DATA", str(data_dir))
    srv = SimProcess.start(["--seed", "3"], tmp_path_factory.mktemp("sim") / "port")
    try:
        yield srv
    finally:
        srv.stop()


def config(where: Path, url: str, model: str = "sim") -> Path:
    """A sweep of N_JOBS; another `model` makes requests the server has not seen yet."""
    p = where / "c.toml"
    p.write_text(f'[run]\nname = "damaged"\nitems = {ITEMS}\n\n[[models]]\nname = "m"\n'
                 f'provider = "openai"\nmodel = "{model}"\nbase_url = "{url}"\n'
                 f"concurrency = {CONCURRENCY}\n")
    return p


def vpbatch(*args: str | Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vpbatch", *map(str, args)],
                          capture_output=True, text=True, timeout=240, **kw)


def job_ids(run_dir: Path) -> list[str]:
    return [str(r["job_id"]) for r in iter_log(run_dir / "log.jsonl")]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, server: SimProcess) -> Path:
    """A finished sweep's run dir (copy it before changing it)."""
    where = tmp_path_factory.mktemp("finished")
    done = vpbatch("run", config(where, server.url), "--run-dir", where / "run", "--quiet")
    assert done.returncode == 0, done.stderr
    assert len(job_ids(where / "run")) == N_JOBS
    return where / "run"


def damage(run_dir: Path) -> tuple[list[bytes], list[bytes]]:
    """Make lines BAD corrupt (a NUL-filled block, a line cut short and continued by the next
    write); (the log's lines before, the corrupt lines as written)."""
    log = run_dir / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    a, b = BAD[0] - 1, BAD[1] - 1
    bad = [b"\0" * (len(lines[a]) - 1) + b"\n", lines[b][:57] + b"\n"]
    log.write_bytes(b"".join(bad[BAD.index(k + 1)] if k + 1 in BAD else x
                             for k, x in enumerate(lines)))
    return lines, bad


def warnings_in(stderr: str) -> list[str]:
    return [x for x in stderr.splitlines() if x.startswith("warning:")]


def test_two_corrupt_lines_are_skipped_by_every_reader_then_moved_and_only_their_jobs_resent(
    tmp_path: Path, finished: Path, server: SimProcess
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    before, bad = damage(run_dir)
    lost = {str(json.loads(before[k - 1])["job_id"]) for k in BAD}
    named = f"{run_dir / 'log.jsonl'}: skipped 2 corrupt lines (lines {BAD[0]}, {BAD[1]};"

    readers = {
        "status": ("status", run_dir),
        "score": ("score", run_dir),
        "score, from the cube cache": ("score", run_dir),
        "report": ("report", run_dir, "--boot", "0"),
        "merge": ("merge", tmp_path / "merged", run_dir),
    }
    for what, args in readers.items():
        done = vpbatch(*args)
        assert done.returncode == 0, (what, done.stderr)
        assert warnings_in(done.stderr) == [f"warning: {named} not a JSON record). `vpbatch "
                                            "run` moves them to log.corrupt.jsonl and sends their "
                                            "jobs again; `vpbatch log check RUN_DIR` reports the "
                                            "log's health"], what
    assert len(job_ids(tmp_path / "merged")) == N_JOBS - 2  # merge keeps the valid lines only
    assert (run_dir / "log.jsonl").read_bytes() == b"".join(  # no reader changed the log
        bad[BAD.index(k + 1)] if k + 1 in BAD else x for k, x in enumerate(before))

    sent = server.stats()["requests"]
    resumed = vpbatch("run", run_dir / "config.toml", "--run-dir", run_dir, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert warnings_in(resumed.stderr) == [
        f"warning: {run_dir / 'log.jsonl'}: moved 2 corrupt lines (lines {BAD[0]}, {BAD[1]}) to "
        f"{run_dir / 'log.corrupt.jsonl'}; the jobs they held are sent again"]
    assert server.stats()["requests"] - sent == len(lost) == 2  # those jobs, and no other
    assert (run_dir / "log.corrupt.jsonl").read_bytes() == b"".join(bad)
    after = (run_dir / "log.jsonl").read_bytes().splitlines(keepends=True)
    kept = [x for k, x in enumerate(before) if k + 1 not in BAD]
    assert after[: len(kept)] == kept  # every valid line, byte for byte, in order
    assert set(job_ids(run_dir)[len(kept):]) == lost
    assert sorted(job_ids(run_dir)) == sorted(str(json.loads(x)["job_id"]) for x in before)

    check = vpbatch("log", "check", run_dir)
    assert check.returncode == 0 and check.stdout.splitlines()[-1] == "healthy", check.stdout


def test_log_check_reports_a_healthy_a_corrupt_and_a_torn_log_and_changes_nothing(
    tmp_path: Path, finished: Path
) -> None:
    healthy = vpbatch("log", "check", finished)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.splitlines()[1:] == [
        f"lines:         {N_JOBS}", f"valid lines:   {N_JOBS}", "duplicates:    none",
        "corrupt lines: none", "torn tail:     none", "healthy"]

    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    log = run_dir / "log.jsonl"
    first = log.read_bytes().splitlines(keepends=True)[0]
    with open(log, "ab") as f:
        f.write(first + first[:30])  # a job logged twice, then a write cut short
    torn = vpbatch("log", "check", run_dir)
    assert torn.returncode == 0, torn.stdout  # both normal after retries and crashes
    assert torn.stdout.splitlines()[1:5] == [
        f"lines:         {N_JOBS + 1}", f"valid lines:   {N_JOBS + 1}",
        "duplicates:    1 jobs with more than one line (1 extra lines; a job counts once)",
        "corrupt lines: none"]
    assert torn.stdout.splitlines()[5].startswith("torn tail:     30 bytes after the last newline")

    damage(run_dir)
    before = log.read_bytes()
    corrupt = vpbatch("log", "check", run_dir)
    assert corrupt.returncode == 1
    out = corrupt.stdout.splitlines()
    assert out[2:5] == [f"valid lines:   {N_JOBS - 1}",
                        "duplicates:    1 jobs with more than one line (1 extra lines; a job "
                        "counts once)", f"corrupt lines: 2 (lines {BAD[0]}, {BAD[1]})"]
    assert out[-1].startswith("corrupt: every reader skips those lines; `vpbatch run` moves")
    assert log.read_bytes() == before and not (run_dir / "log.corrupt.jsonl").exists()


# -- a full disk --------------------------------------------------------------------------------

# The disk holds the run dir's small files (a page each on tmpfs) and ~20 log lines of 60.
SMALL_DISK_KB, FILE_LIMIT = 32, 14_000


def _namespaces_work() -> bool:
    """Whether this machine lets us mount a tmpfs in a user and mount namespace."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=16k t /mnt"],
                           capture_output=True)
    return probe.returncode == 0


FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size={small}k tmpfs "$DISK" || exit 99
"$PY" -m vpbatch run "$CFG" --run-dir "$DISK/run" --quiet 2>"$OUT/err1"; echo $? >"$OUT/rc1"
cp -a "$DISK/run" "$OUT/full"
mount -o remount,size=64m tmpfs "$DISK"  # space is freed
"$PY" -m vpbatch run "$CFG" --run-dir "$DISK/run" --quiet 2>"$OUT/err2"; echo $? >"$OUT/rc2"
cp -a "$DISK/run" "$OUT/done"
"""


def _on_a_small_tmpfs(cfg: Path, out: Path) -> None:
    """Both runs inside a private mount namespace, on a tmpfs that is full, then grown."""
    disk = out / "disk"
    disk.mkdir()
    env = {**os.environ, "DISK": str(disk), "PY": sys.executable, "CFG": str(cfg),
           "OUT": str(out)}
    done = subprocess.run(["unshare", "-rm", "sh", "-c",
                           FULL_DISK_SCRIPT.format(small=SMALL_DISK_KB)],
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr


def _under_a_file_size_limit(cfg: Path, out: Path) -> None:
    """Where no tmpfs can be mounted: RLIMIT_FSIZE makes the kernel refuse writes past a size
    (EFBIG, SIGXFSZ ignored), the same failure of a real write as ENOSPC, which vpbatch treats
    alike; the resume runs without the limit (space freed)."""
    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # ignored signals stay so across exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, resource.RLIM_INFINITY))

    run_dir = out / "disk" / "run"
    for k, pre in ((1, limited), (2, None)):
        done = vpbatch("run", cfg, "--run-dir", run_dir, "--quiet", preexec_fn=pre)
        (out / f"rc{k}").write_text(str(done.returncode))
        (out / f"err{k}").write_text(done.stderr)
        shutil.copytree(run_dir, out / ("full" if k == 1 else "done"))


@pytest.mark.parametrize("disk", ["tmpfs", "file size limit"])
def test_a_full_disk_stops_the_sweep_keeping_every_line_and_a_resume_finishes_it_exactly(
    tmp_path: Path, server: SimProcess, disk: str
) -> None:
    if disk == "tmpfs" and not _namespaces_work():
        pytest.skip("no user+mount namespaces here (unshare -rm); the file size limit case "
                    "covers the same failure")
    # Another simulated respondent per case: requests the server has not seen yet.
    cfg = config(tmp_path, server.url, model="sim:achiever" if disk == "tmpfs" else "sim:explorer")
    out = tmp_path / "out"
    out.mkdir()
    sent = server.stats()
    (_on_a_small_tmpfs if disk == "tmpfs" else _under_a_file_size_limit)(cfg, out)

    assert (out / "rc1").read_text().strip() == "1"
    err = (out / "err1").read_text()
    cause = "No space left on device (ENOSPC)" if disk == "tmpfs" else "File too large (EFBIG)"
    assert f"cannot append to {out / 'disk' / 'run' / 'log.jsonl'}: {cause}" in err, err
    assert "every line already written is kept. Free space on that disk, then run the same " \
           "command again to resume" in err
    full = (out / "full" / "log.jsonl").read_bytes()
    assert full.endswith(b"\n")  # no part of the failed line is left behind
    written = job_ids(out / "full")
    assert 0 < len(written) < N_JOBS and len(set(written)) == len(written)

    assert (out / "rc2").read_text().strip() == "0", (out / "err2").read_text()
    done = out / "done" / "log.jsonl"
    assert done.read_bytes().startswith(full)  # the lines before the failure, unchanged
    ids = job_ids(out / "done")
    assert len(ids) == len(set(ids)) == N_JOBS  # every job once: none lost, none twice
    assert {r["status"] for r in iter_log(done)} == {"ok"}
    now = server.stats()
    assert now["distinct_requests"] - sent["distinct_requests"] == N_JOBS
    # Only answers that arrived after the disk filled, never logged, were asked for twice.
    assert now["requests"] - sent["requests"] - N_JOBS <= CONCURRENCY
