"""kill -9 a running sweep at several points, resume: every job once, scores as if never killed.

Real processes only: `vpbatch sim serve` and `vpbatch run` as subprocesses, SIGKILL between.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vpbatch.demos.demo import SimProcess
from vpbatch.log.runlog import iter_log
from vpbatch.scoring.scorer import ScoreOptions
from vpbatch.scoring.scores_file import score_run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ITEMS, CONCURRENCY = 30, 8
N_JOBS = ITEMS * 6


@pytest.fixture
def server(tmp_path: Path, data_dir: Path) -> Iterator[SimProcess]:
    os.environ.setdefault("VPBATCH_DATA", str(data_dir))
    # Fixed latency keeps requests in flight at every kill; answers depend on the request only.
    srv = SimProcess.start(["--latency-ms", "150", "--seed", "7"], tmp_path / "sim.port")
    try:
        yield srv
    finally:
        srv.stop()


def settled_requests(srv: SimProcess) -> int:
    """The server's request count once it has read all that a dead client had sent.

    The dead client's bytes were in the server's sockets before it died, and /stats is served
    by the same event loop after them; two equal counts in a row (at most 10 s) make sure.
    """
    deadline = time.monotonic() + 10
    last, now = -1, srv.stats()["requests"]
    while now != last:
        assert time.monotonic() < deadline, "the server's request count never settled"
        last, now = now, srv.stats()["requests"]
    return int(now)


def config(tmp_path: Path, url: str, name: str = "c.toml", extra: str = "") -> Path:
    p = tmp_path / name
    p.write_text(
        f'[run]\nname = "crash"\nitems = {ITEMS}\n\n[[models]]\nname = "m"\n'
        f'provider = "openai"\nmodel = "sim"\nbase_url = "{url}"\n'
        f"concurrency = {CONCURRENCY}\n{extra}"
    )
    return p


def run_cmd(cfg: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "vpbatch", "run", str(cfg), "--run-dir", str(run_dir),
            "--quiet"]


def lines(run_dir: Path) -> int:
    log = run_dir / "log.jsonl"
    return log.read_bytes().count(b"\n") if log.exists() else 0


def run_and_kill(cmd: list[str], run_dir: Path, at_lines: int) -> None:
    """Start a sweep and SIGKILL it once the log holds `at_lines` lines."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while lines(run_dir) < at_lines and proc.poll() is None:
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_kill_9_at_several_points_then_resume_logs_every_job_once(
    tmp_path: Path, server: SimProcess
) -> None:
    cfg = config(tmp_path, server.url)
    crashed = tmp_path / "crashed"
    in_flight = 0
    for at in (1, 50, 110):
        before_req, before_lines = server.stats()["requests"], lines(crashed)
        run_and_kill(run_cmd(cfg, crashed), crashed, at)
        sent = settled_requests(server) - before_req
        in_flight += sent - (lines(crashed) - before_lines)  # asked for, never logged
        assert lines(crashed) < N_JOBS, "the sweep finished before it could be killed"
    done = subprocess.run(run_cmd(cfg, crashed), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    rows = list(iter_log(crashed / "log.jsonl"))
    ids = [r["job_id"] for r in rows]
    assert len(ids) == N_JOBS == len(set(ids))  # exactly once, even before dedupe
    assert all(r["status"] == "ok" for r in rows)
    st = server.stats()
    assert st["distinct_requests"] == N_JOBS  # the server saw every job
    resent = st["requests"] - st["distinct_requests"]
    print(f"in flight at the kills: {in_flight}; re-sent: {resent}")
    assert resent <= in_flight <= 3 * CONCURRENCY

    clean = tmp_path / "clean"
    assert subprocess.run(run_cmd(cfg, clean), capture_output=True).returncode == 0
    _, a, cube_a = score_run(crashed, ScoreOptions())
    _, b, cube_b = score_run(clean, ScoreOptions())
    assert cube_a.n_ok == cube_b.n_ok == N_JOBS  # as counted by the scorer
    for fam in a.score:
        np.testing.assert_array_equal(a.score[fam], b.score[fam])
        np.testing.assert_array_equal(a.raw[fam], b.raw[fam])
    ratings = {r["job_id"]: r["rating"] for r in rows}
    assert ratings == {r["job_id"]: r["rating"] for r in iter_log(clean / "log.jsonl")}


def test_kill_9_during_retries_still_logs_every_job_once(tmp_path: Path, data_dir: Path) -> None:
    os.environ.setdefault("VPBATCH_DATA", str(data_dir))
    faulty = ["--latency-ms", "50", "--fault-500", "0.1", "--fault-429", "0.03",
              "--retry-after", "0.2", "--fault-drop", "0.05", "--max-faulty-attempts", "2",
              "--seed", "11"]
    srv = SimProcess.start(faulty, tmp_path / "sim.port")
    try:
        cfg = config(tmp_path, srv.url)
        run_dir = tmp_path / "run"
        for at in (20, 100):
            run_and_kill(run_cmd(cfg, run_dir), run_dir, at)
        done = subprocess.run(run_cmd(cfg, run_dir), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        st = srv.stats()
    finally:
        srv.stop()
    rows = list(iter_log(run_dir / "log.jsonl"))
    assert len(rows) == N_JOBS == len({r["job_id"] for r in rows})
    assert all(r["status"] == "ok" for r in rows)
    assert st["distinct_requests"] == N_JOBS and sum(st["faults"].values()) > 0
