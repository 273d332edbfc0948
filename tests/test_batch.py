"""Provider batch APIs as a per-model mode, against the simulator's batch endpoints on 127.0.0.1.

Polls wait through `retry.sleep`, and the server's batch clock is `retry.now`: in test mode
a poll interval is recorded, not slept, and the simulated batch ends as that time passes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.from_thread
import numpy as np
import pytest

from vpbatch.config.schema import Config, load_config
from vpbatch.log.runlog import iter_log
from vpbatch.providers.registry import make_provider
from vpbatch.scoring.scorer import ScoreOptions
from vpbatch.scoring.scores_file import score_run
from vpbatch.sim.faults import FaultPlan
from vpbatch.sim.server import RunningServer, SimServerConfig, start_server
from vpbatch.sweep.batch import JOURNAL_NAME, BatchEntry, BatchJournal, batch_api_for
from vpbatch.sweep.engine import SweepSummary, sweep
from vpbatch.sweep.pipeline import policy_for
from vpbatch.transport import retry

pytestmark = pytest.mark.timeout(120)

ITEMS = 2
N_JOBS = ITEMS * 6
POLL = {"VPBATCH_BATCH_POLL_S": "60"}
KEY = "sk-batch-0123456789abcdefSECRET"


@pytest.fixture(autouse=True)
def _data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))


def write_config(path: Path, url: str, *, provider: str = "openai", mode: str = "batch",
                 items: int = ITEMS, name: str = "m", extra: str = "") -> Config:
    path.write_text(
        f'[run]\nname = "b"\nitems = {items}\n\n[[models]]\nname = "{name}"\n'
        f'provider = "{provider}"\nmodel = "sim"\nbase_url = "{url}"\nmode = "{mode}"\n{extra}'
    )
    return load_config(path, check_env=False)


@contextlib.asynccontextmanager
async def serving(**kw: Any) -> AsyncIterator[RunningServer]:
    kw.setdefault("batch_delay_s", 300.0)
    srv = await start_server(SimServerConfig(clock=retry.now, **kw))
    try:
        yield srv
    finally:
        await srv.close()


async def run(cfg: Config, run_dir: Path, env: dict[str, str] | None = None) -> SweepSummary:
    return await sweep(cfg, run_dir, handle_signals=False, progress=False,
                       env={**os.environ, **POLL, **(env or {})})


def rows(run_dir: Path) -> list[dict[str, Any]]:
    return list(iter_log(run_dir / "log.jsonl"))


def assert_each_job_once(got: list[dict[str, Any]], n: int = N_JOBS) -> None:
    ids = [r["job_id"] for r in got]
    assert len(ids) == n == len(set(ids))


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batch_model_is_answered_through_one_batch_with_its_id_in_every_record(
    tmp_path: Path, provider: str
) -> None:
    async def main() -> None:
        async with serving() as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url, provider=provider)
            with retry.testing() as waits:
                summary = await run(cfg, tmp_path / "run")
            assert summary.complete and summary.models["m"].ok == N_JOBS
            assert srv.stats.batches_created == 1 and srv.stats.batch_requests == N_JOBS
            assert srv.stats.requests == 0  # nothing went online
            assert waits and set(waits) == {60.0}  # polled at the configured interval

    anyio.run(main)
    got = rows(tmp_path / "run")
    assert_each_job_once(got)
    assert all(r["status"] == "ok" and r["rating"] in range(1, 7) for r in got)
    assert len({r["batch_id"] for r in got}) == 1 and got[0]["batch_id"]
    assert all(r["usage"]["prompt_tokens"] > 0 for r in got)
    journal = BatchJournal.in_run_dir(tmp_path / "run")
    assert [row["event"] for row in journal.rows()] == ["creating", "submitted", "collected"]
    assert journal.open_batches("m") == []


def test_unrated_batch_answers_fail_the_model_naming_the_cause(tmp_path: Path) -> None:
    async def main() -> SweepSummary:
        async with serving(faults=FaultPlan(p_digits=1.0)) as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url)
            with retry.testing():
                return await run(cfg, tmp_path / "run")

    summary = anyio.run(main)
    m = summary.models["m"]
    assert summary.exit_code == 3 and (m.ok, m.unrated, m.rated) == (N_JOBS, N_JOBS, 0)
    assert m.problem is not None and m.problem.startswith(
        f"{N_JOBS} of {N_JOBS} jobs failed or came back unrated (0 failed, {N_JOBS} unrated)")
    assert "answers are not one of the six phrases, e.g. '" in m.problem
    assert all(r["unrated"] == "unparseable" for r in rows(tmp_path / "run"))


def test_the_key_reaches_the_batch_api_but_no_file(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(require_key=KEY) as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url, extra='api_key_env = "BATCH_KEY"\n')
            with retry.testing():
                summary = await run(cfg, tmp_path / "run", {"BATCH_KEY": KEY})
            assert summary.complete and srv.stats.unauthorized == 0

    anyio.run(main)
    for f in (tmp_path / "run").iterdir():
        assert KEY not in f.read_text(errors="replace")


def test_a_rejected_key_stops_the_model_with_a_message_that_hides_the_key(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(require_key=KEY) as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url, extra='api_key_env = "BATCH_KEY"\n')
            with retry.testing():
                summary = await run(cfg, tmp_path / "run", {"BATCH_KEY": "sk-wrong-123456789"})
            stopped = summary.models["m"].stopped
            assert stopped is not None and "BATCH_KEY" in stopped and "sk-wrong" not in stopped
            assert srv.stats.batches_created == 0

    anyio.run(main)


def test_a_provider_without_a_batch_api_is_stopped_not_sent_online(tmp_path: Path) -> None:
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(f'[run]\nname = "b"\nitems = {ITEMS}\n\n[[models]]\nname = "m"\n'
                        'provider = "sim"\nmode = "batch"\n')
    cfg = load_config(cfg_path, check_env=False)
    summary = anyio.run(run, cfg, tmp_path / "run")
    stopped = summary.models["m"].stopped
    assert stopped is not None and "no batch API" in stopped
    assert rows(tmp_path / "run") == []


# -- resume ---------------------------------------------------------------------------------


async def crash_after_submit(cfg: Config, run_dir: Path, srv: RunningServer) -> None:
    """A sweep that dies while its batch runs (the cancel stands in for a crash: nothing
    after it runs, no results are collected)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(run, cfg, run_dir)
        with anyio.fail_after(60):
            while srv.stats.batch_polls < 3:
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    assert rows(run_dir) == [] and srv.stats.batches_created == 1


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("journaled", ["submitted", "creating"])
def test_a_resume_polls_the_batch_a_crash_left_running_and_never_creates_it_again(
    tmp_path: Path, provider: str, journaled: str
) -> None:
    """"creating": the crash came between the create and its journal line; the provider is
    asked which batch that was (OpenAI: by input file, Anthropic: by size and time)."""
    now = [0.0]

    async def main() -> None:
        srv = await start_server(SimServerConfig(clock=lambda: now[0], batch_delay_s=100.0))
        cfg = write_config(tmp_path / "c.toml", srv.url, provider=provider)
        try:
            with retry.testing():
                await crash_after_submit(cfg, tmp_path / "run", srv)
                if journaled == "creating":
                    keep_events(tmp_path / "run", ("creating",))
                now[0] = 1000.0  # the provider finishes the batch overnight
                summary = await run(cfg, tmp_path / "run")
            assert summary.complete and summary.models["m"].ok == N_JOBS
            assert srv.stats.batches_created == 1  # polled, not paid for twice
        finally:
            await srv.close()

    anyio.run(main)
    assert_each_job_once(rows(tmp_path / "run"))


def keep_events(run_dir: Path, events: tuple[str, ...]) -> None:
    path = run_dir / JOURNAL_NAME
    lines = [ln for ln in path.read_bytes().splitlines(keepends=True)
             if json.loads(ln)["event"] in events]
    path.write_bytes(b"".join(lines))


def test_an_intent_the_provider_never_saw_is_abandoned_and_its_jobs_sent(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving() as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url)
            BatchJournal.in_run_dir(tmp_path / "run").creating(BatchEntry(
                "m", "openai", "", ["x"], extra={"input_file_id": "file-never"}, token="t1"))
            with retry.testing():
                summary = await run(cfg, tmp_path / "run")
            assert summary.complete and srv.stats.batches_created == 1

    anyio.run(main)
    journal = BatchJournal.in_run_dir(tmp_path / "run")
    assert [r["event"] for r in journal.rows()] == [
        "creating", "abandoned", "creating", "submitted", "collected"]
    assert journal.unconfirmed("m") == []


def test_jobs_already_answered_are_never_put_in_a_new_batch(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving() as srv:
            online = write_config(tmp_path / "a.toml", srv.url, mode="online", items=1)
            with retry.testing():
                await run(online, tmp_path / "run")
                batched = write_config(tmp_path / "a.toml", srv.url, items=ITEMS)
                summary = await sweep(batched, tmp_path / "run", handle_signals=False,
                                      progress=False, force=True, env={**os.environ, **POLL})
            assert summary.models["m"].skipped == 6
            assert srv.stats.batch_requests == N_JOBS - 6

    anyio.run(main)
    assert_each_job_once(rows(tmp_path / "run"))


@pytest.mark.parametrize("at", ["creating", "submitted"])
def test_kill_9_between_submit_and_results_loses_nothing_and_pays_once(
    tmp_path: Path, at: str
) -> None:
    """A real `vpbatch run` subprocess, SIGKILLed once the journal shows `at`; then resumed."""
    with anyio.from_thread.start_blocking_portal() as portal:
        srv = portal.call(start_server, SimServerConfig(batch_delay_s=1.0))
        try:
            write_config(tmp_path / "c.toml", srv.url, items=ITEMS)
            cmd = [sys.executable, "-m", "vpbatch", "run", str(tmp_path / "c.toml"),
                   "--run-dir", str(tmp_path / "run"), "--quiet"]
            env = {**os.environ, "VPBATCH_BATCH_POLL_S": "0.1"}
            journal = tmp_path / "run" / JOURNAL_NAME
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            try:
                deadline = time.monotonic() + 60
                while not (journal.exists() and at.encode() in journal.read_bytes()):
                    assert proc.poll() is None and time.monotonic() < deadline
                    time.sleep(0.002)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            assert srv.stats.batches_created <= 1
            assert not (tmp_path / "run" / "log.jsonl").exists() or rows(tmp_path / "run") == []
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
            assert done.returncode == 0, done.stderr
            assert srv.stats.batches_created == 1 and srv.stats.batch_requests == N_JOBS
        finally:
            portal.call(srv.close)
    got = rows(tmp_path / "run")
    assert_each_job_once(got)
    assert all(r["status"] == "ok" for r in got)


def test_sigint_while_a_batch_runs_exits_at_once_and_the_resume_collects_it(
    tmp_path: Path,
) -> None:
    """Ctrl-C does not wait hours for a batch: the run exits 130 and the batch stays journaled."""
    with anyio.from_thread.start_blocking_portal() as portal:
        srv = portal.call(start_server, SimServerConfig(batch_delay_s=1.0))
        try:
            write_config(tmp_path / "c.toml", srv.url, items=ITEMS)
            cmd = [sys.executable, "-m", "vpbatch", "run", str(tmp_path / "c.toml"),
                   "--run-dir", str(tmp_path / "run")]
            env = {**os.environ, "VPBATCH_BATCH_POLL_S": "0.1"}
            journal = tmp_path / "run" / JOURNAL_NAME
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while not (journal.exists() and b"submitted" in journal.read_bytes()):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.002)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
            assert proc.returncode == 130 and "resume with: vpbatch run" in err
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=90)
            assert done.returncode == 0, done.stderr
            assert srv.stats.batches_created == 1
        finally:
            portal.call(srv.close)
    assert_each_job_once(rows(tmp_path / "run"))


# -- per-request outcomes --------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_errored_lines_permanent_ones_fail_with_reason_transient_ones_go_in_the_next_batch(
    tmp_path: Path, provider: str
) -> None:
    faults = FaultPlan(p_500=0.4, max_faulty_attempts=1)

    async def main() -> None:
        async with serving(batch_p_invalid=0.25, faults=faults) as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url, provider=provider, items=6)
            with retry.testing():
                summary = await run(cfg, tmp_path / "run")
            assert summary.complete
            assert srv.stats.faults.get("500", 0) > 0
            assert srv.stats.batches_created == 2  # the 500s went again, once

    anyio.run(main)
    got = rows(tmp_path / "run")
    assert_each_job_once(got, 36)
    failed = [r for r in got if r["status"] == "failed"]
    assert failed and all(r["error_kind"] == "permanent" and "invalid request" in r["error"]
                          and r["extra"]["http_status"] == 400 for r in failed)
    assert len({r["batch_id"] for r in got if r["status"] == "ok"}) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_expired_batch_requeues_its_unrun_jobs_into_the_next_batch(
    tmp_path: Path, provider: str
) -> None:
    async def main() -> None:
        async with serving(batch_expire_after=5) as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url, provider=provider)
            with retry.testing():
                summary = await run(cfg, tmp_path / "run")
            assert summary.complete and summary.models["m"].ok == N_JOBS
            assert srv.stats.batches_created == 3  # 12 jobs: 5 answered, 5, then the last 2

    anyio.run(main)
    assert_each_job_once(rows(tmp_path / "run"))


def test_jobs_still_expiring_after_the_last_round_are_logged_as_transient_failures(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with serving(batch_expire_after=2) as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url)
            with retry.testing():
                summary = await run(cfg, tmp_path / "run")
            assert summary.models["m"].ok == 6 and summary.models["m"].failed == N_JOBS - 6

    anyio.run(main)
    failed = [r for r in rows(tmp_path / "run") if r["status"] == "failed"]
    assert all(r["error_kind"] == "transient" and "batch_expired" in r["error"]
               and "3 batch rounds" in r["error"] for r in failed)


def test_a_chunk_size_splits_the_jobs_into_several_batches(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving() as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url)
            with retry.testing():
                summary = await run(cfg, tmp_path / "run", {"VPBATCH_BATCH_SIZE": "5"})
            assert summary.complete and srv.stats.batches_created == 3

    anyio.run(main)
    assert len({r["batch_id"] for r in rows(tmp_path / "run")}) == 3


# -- scores ----------------------------------------------------------------------------------


def test_scores_of_a_batch_run_equal_an_online_run_of_the_same_sim_model(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving() as srv:
            with retry.testing():
                for mode in ("online", "batch"):
                    cfg = write_config(tmp_path / f"{mode}.toml", srv.url, mode=mode, items=20)
                    assert (await run(cfg, tmp_path / mode)).complete

    anyio.run(main)
    online, batch = rows(tmp_path / "online"), rows(tmp_path / "batch")
    assert {r["job_id"]: r["rating"] for r in online} == {r["job_id"]: r["rating"] for r in batch}
    _, a, _ = score_run(tmp_path / "online", ScoreOptions())
    _, b, _ = score_run(tmp_path / "batch", ScoreOptions())
    for fam in a.score:
        np.testing.assert_array_equal(a.score[fam], b.score[fam])


# -- the journal -----------------------------------------------------------------------------


def test_the_journal_lists_submitted_batches_until_collected_and_survives_a_torn_line(
    tmp_path: Path,
) -> None:
    j = BatchJournal(tmp_path / JOURNAL_NAME)
    j.submitted(BatchEntry("m", "openai", "batch_1", ["a", "b"]))
    j.submitted(BatchEntry("m", "openai", "batch_2", ["c"]))
    j.submitted(BatchEntry("other", "openai", "batch_3", ["d"]))
    j.collected("m", "batch_1")
    with open(j.path, "ab") as f:
        f.write(b'{"event": "collected", "model": "m", "batch_')  # a write cut by kill -9
    assert [(e.batch_id, e.job_ids) for e in j.open_batches("m")] == [("batch_2", ["c"])]
    j.collected("m", "batch_2")  # the next line starts where the torn one began
    assert [json.loads(line)["batch_id"] for line in j.path.read_bytes().splitlines()[-2:]] == [
        "batch_1", "batch_2"]
    assert j.open_batches("m") == []



@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_recovery_pages_back_through_newer_batches_to_the_one_a_crash_left(
    tmp_path: Path, provider: str
) -> None:
    async def main() -> None:
        async with serving() as srv, aiohttp.ClientSession() as session:
            m = write_config(tmp_path / "c.toml", srv.url, provider=provider).models[0]
            api = batch_api_for(make_provider(m, session, {}), policy_for(m))
            assert api is not None
            body = {"model": "sim", "max_tokens": 8,
                    "messages": [{"role": "user", "content": "hi"}]}
            one = [api.line("job-1", body)]
            extra = await api.prepare(one)
            target = await api.create(one, extra, set())
            for i in range(120):  # newer batches (another size), two pages of them
                two = [api.line(f"n{i}-a", body), api.line(f"n{i}-b", body)]
                await api.create(two, await api.prepare(two), set())
            assert await api.recover(extra, set()) == target
            # Anthropic matches by size and time, so a batch already journaled is no match;
            # OpenAI's input file id names the batch exactly.
            again = await api.recover(extra, {target})
            assert again == (target if provider == "openai" else None)

    anyio.run(main)


def test_a_batch_logged_in_full_before_its_collected_line_is_closed_not_polled(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with serving() as srv:
            cfg = write_config(tmp_path / "c.toml", srv.url)
            with retry.testing():
                await run(cfg, tmp_path / "run")
                keep_events(tmp_path / "run", ("creating", "submitted"))  # crash before it
                polls = srv.stats.batch_polls
                summary = await run(cfg, tmp_path / "run")
            assert summary.models["m"].skipped == N_JOBS
            assert srv.stats.batch_polls == polls and srv.stats.batches_created == 1

    anyio.run(main)
    assert BatchJournal.in_run_dir(tmp_path / "run").open_batches("m") == []
