"""Answers that measure nothing: real `vpbatch run` processes against `vpbatch sim serve`.

The simulator answers 200 every time, but with answers no parser can rate (its answer faults:
the rating as a digit, content null after the whole max_tokens went on reasoning, OpenAI's
refusal field). Each sweep must stop within the breaker's N requests, exit 3 and name the
cause and the fix; a rated share below [run] min_rated fails the run too; and the log keeps
every answer paid for, once.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpbatch.config.schema import load_config
from vpbatch.demos.demo import SimProcess
from vpbatch.errors import ConfigError
from vpbatch.log.records import Record
from vpbatch.log.runlog import iter_log
from vpbatch.sweep.breaker import Breaker, BreakerPolicy
from vpbatch.sweep.outcome import Pending
from vpbatch.sweep.unrated import advice_for
from vpbatch.transport.records import Answer

pytestmark = pytest.mark.timeout(180)

ITEMS, VERSIONS = 100, ("v1", "v1_reversed")
GRID = ITEMS * len(VERSIONS)  # jobs of the one model
STOP_AFTER = 20  # [run] stop_after's default
CONCURRENCY = 8  # in flight when the breaker trips: they may still come back and be logged


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "VPBATCH_DATA": str(data_dir)}


@pytest.fixture
def serve(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[SimProcess]]:
    """The sim servers a test starts (`start`); every one is stopped at the end."""
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))  # SimProcess passes os.environ on
    started: list[SimProcess] = []
    yield started
    for srv in started:
        srv.stop()


def start(started: list[SimProcess], tmp_path: Path, *args: str) -> SimProcess:
    """A sim server on the port the last one in this test used (job ids include the URL)."""
    srv = SimProcess.start(["--seed", "5", *args], tmp_path / "sim.port")
    started.append(srv)
    return srv


def config(tmp_path: Path, url: str, model: str = "", run: str = "", name: str = "c.toml") -> Path:
    p = tmp_path / name
    versions = ", ".join(f'"{v}"' for v in VERSIONS)
    p.write_text(f'[run]\nname = "unrated"\nitems = {ITEMS}\nversions = [{versions}]\n{run}\n'
                 f'[[models]]\nname = "m"\nprovider = "openai"\nmodel = "sim"\n'
                 f'base_url = "{url}"\nconcurrency = {CONCURRENCY}\n{model}\n')
    return p


def vpbatch(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vpbatch", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=150)


def error_line(stderr: str) -> str:
    """The one closing line that names the failing model and why."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error: model m ")]
    assert len(lines) == 1, stderr
    return lines[0]


def rows(run_dir: Path) -> list[dict[str, object]]:
    return list(iter_log(run_dir / "log.jsonl"))


def stopped_early(
    tmp_path: Path, env: dict[str, str], srv: SimProcess, model: str = ""
) -> tuple[int, str]:
    """One model against `srv`: exit 3 within the breaker's N requests (plus what was in
    flight); every answer received is logged once, unrated. Returns (requests, error line)."""
    done = vpbatch(env, "run", config(tmp_path, srv.url, model), "--run-dir", tmp_path / "run")
    assert done.returncode == 3, done.stderr
    sent = srv.stats()["requests"]
    assert STOP_AFTER <= sent <= STOP_AFTER + CONCURRENCY
    logged = rows(tmp_path / "run")
    assert len(logged) == len({r["job_id"] for r in logged}) == sent  # all paid for: all kept
    assert all(r["status"] == "ok" and r["unrated"] for r in logged)
    return sent, error_line(done.stderr)


# -- three sweeps that measure nothing ----------------------------------------------------


def test_answers_that_are_all_digits_stop_the_model_and_suggest_choice_mode(
    tmp_path: Path, env: dict[str, str], serve: list[SimProcess]
) -> None:
    srv = start(serve, tmp_path, "--fault-digits", "1")
    sent, line = stopped_early(tmp_path, env, srv)
    assert "answers in a row could not be rated (all text neither parser can rate)" in line
    assert re.search(r"answers are not one of the six phrases, e\.g\. '[1-6]': try answer = "
                     r"\"choice\"", line), line
    assert f"{GRID - sent} jobs not sent" in line
    assert {r["unrated"] for r in rows(tmp_path / "run")} == {"unparseable"}
    status = vpbatch(env, "status", tmp_path / "run")
    assert status.returncode == 0, status.stderr
    assert f"  m: {sent} unrated: text neither parser can rate" in status.stdout


def test_answers_cut_off_after_reasoning_stop_the_model_and_say_to_raise_max_tokens(
    tmp_path: Path, env: dict[str, str], serve: list[SimProcess]
) -> None:
    srv = start(serve, tmp_path, "--fault-length", "1", "--think-tokens", "5000")
    _, line = stopped_early(tmp_path, env, srv, "reasoning = true\nmax_tokens = 4096")
    assert "(all cut off at max_tokens before any rateable text)" in line
    assert ("the model spent its whole max_tokens on reasoning: raise max_tokens (now 4096) "
            "or lower the reasoning effort") in line
    logged = rows(tmp_path / "run")
    assert all(r["raw"] == "" and r["finish_reason"] == "length" and r["reasoning"]
               and r["usage"]["reasoning_tokens"] == 4096 for r in logged)  # type: ignore[index]


def test_answers_that_are_all_refusals_stop_the_model_and_quote_the_refusal(
    tmp_path: Path, env: dict[str, str], serve: list[SimProcess]
) -> None:
    srv = start(serve, tmp_path, "--fault-refusal", "1")
    _, line = stopped_early(tmp_path, env, srv)
    assert "(all refusals): the model refuses: 'I'm sorry, I can't help with that.'" in line
    assert {r["raw"] for r in rows(tmp_path / "run")} == {"I'm sorry, I can't help with that."}


# -- after the fix --------------------------------------------------------------------------


def test_raising_max_tokens_asks_every_job_again_and_the_run_completes(
    tmp_path: Path, env: dict[str, str], serve: list[SimProcess]
) -> None:
    srv = start(serve, tmp_path, "--fault-length", "1", "--think-tokens", "5000")
    sent, _ = stopped_early(tmp_path, env, srv, "reasoning = true\nmax_tokens = 4096")
    fixed = config(tmp_path, srv.url, "reasoning = true\nmax_tokens = 8192", name="fixed.toml")
    plain = vpbatch(env, "run", fixed, "--run-dir", tmp_path / "run")
    assert plain.returncode == 2 and "--force" in plain.stderr  # another config: say so first
    done = vpbatch(env, "run", fixed, "--run-dir", tmp_path / "run", "--force")
    assert done.returncode == 0, done.stderr
    # max_tokens is in every request, so every job is new: the grid is asked once, in full.
    assert srv.stats()["requests"] - sent == GRID
    assert "m: 200/200 done (200 answered, 0 failed, 0 already in the log)" in done.stderr
    assert "rated share 100.0%" in done.stderr
    logged = rows(tmp_path / "run")
    old = [r for r in logged if r["unrated"]]
    assert len(old) == sent and len(logged) == sent + GRID  # the paid-for answers are kept


def test_a_plain_resume_sends_only_the_unsent_jobs_and_never_asks_an_unrated_one_again(
    tmp_path: Path, env: dict[str, str], serve: list[SimProcess]
) -> None:
    sent, _ = stopped_early(tmp_path, env, start(serve, tmp_path, "--fault-refusal", "1"))
    serve.pop().stop()
    srv = start(serve, tmp_path)  # the server answers properly now, at the same address
    done = vpbatch(env, "run", tmp_path / "c.toml", "--run-dir", tmp_path / "run")
    assert srv.stats()["requests"] == GRID - sent
    # The unrated answers still count: more of them than fail_on_error's 5% allows.
    assert done.returncode == 3
    line = error_line(done.stderr)
    assert (f"{sent} of {GRID} jobs failed or came back unrated (0 failed, {sent} unrated), "
            "more than fail_on_error = 0.05 allows (10)") in line
    assert "run again with --force" in line
    ids = [r["job_id"] for r in rows(tmp_path / "run")]
    assert len(ids) == len(set(ids)) == GRID


# -- the tolerances -------------------------------------------------------------------------


def test_unrated_answers_count_toward_fail_on_error(
    tmp_path: Path, env: dict[str, str], serve: list[SimProcess]
) -> None:
    srv = start(serve, tmp_path, "--p-refuse", "0.1")
    done = vpbatch(env, "run", config(tmp_path, srv.url, run="min_rated = 0"),
                   "--run-dir", tmp_path / "a")
    assert done.returncode == 3, done.stderr
    unrated = sum(1 for r in rows(tmp_path / "a") if r["unrated"] == "refusal")
    assert 10 < unrated < 40  # about a tenth of 200
    assert (f"{unrated} of {GRID} jobs failed or came back unrated (0 failed, {unrated} "
            "unrated), more than fail_on_error = 0.05 allows") in error_line(done.stderr)
    assert f"the commonest this run: unrated: refusal ({unrated} jobs): the model refuses: " \
        "'I'm an AI assistant" in error_line(done.stderr)
    tolerant = config(tmp_path, srv.url, run="min_rated = 0\nfail_on_error = 0.5", name="t.toml")
    ok = vpbatch(env, "run", tolerant, "--run-dir", tmp_path / "b")
    assert ok.returncode == 0, ok.stderr


def test_a_rated_share_below_min_rated_exits_3_and_the_summary_names_the_model(
    tmp_path: Path, env: dict[str, str], serve: list[SimProcess]
) -> None:
    srv = start(serve, tmp_path, "--p-refuse", "0.1")
    cfg = config(tmp_path, srv.url, run="fail_on_error = 0.5")
    done = vpbatch(env, "run", cfg, "--run-dir", tmp_path / "run")
    assert done.returncode == 3, done.stderr
    rated = sum(1 for r in rows(tmp_path / "run") if not r["unrated"])
    share = f"{rated / GRID:.1%}"
    why = f"rated share {share} ({rated} of {GRID} jobs have a rated answer) is below " \
        "min_rated = 0.95"
    assert f"FAILED m: {why}" in done.stderr
    assert f"error: model m failed: {why}" in error_line(done.stderr)
    per_model = config(tmp_path, srv.url, "min_rated = 0.5", run="fail_on_error = 0.5",
                       name="own.toml")
    ok = vpbatch(env, "run", per_model, "--run-dir", tmp_path / "own")
    assert ok.returncode == 0, ok.stderr
    assert f"rated share {share}" in ok.stderr


# -- the rule on its own ----------------------------------------------------------------------


def answered(raw: str | None, *, finish: str = "stop", refusal: bool = False,
             mode: str = "text", reasoning_tokens: int = 0) -> Record:
    """The log line of one answer, classified as the sweep classifies it."""
    job = Pending("j", "m", "vanilla", "v1", 1001, 1, 0, {"max_tokens": 64}, mode)
    usage = {"reasoning_tokens": reasoning_tokens} if reasoning_tokens else {}
    return job.answered(Answer(raw or "", None, finish, usage, refusal=refusal))


@pytest.mark.parametrize(("raw", "finish", "cause"), [
    ("Somewhat like me.", "stop", None),
    ("Like me. Because I value", "length", None),  # cut off, but it named its phrase first
    ("", "stop", "empty"),
    ("", "length", "length"),
    ("Well, considering the", "length", "length"),
    ("I'm sorry, I can't help with that.", "stop", "refusal"),
    ("5", "stop", "unparseable"),
])
def test_an_answer_is_unrated_when_neither_parser_can_rate_it(
    raw: str, finish: str, cause: str | None
) -> None:
    assert answered(raw, finish=finish).unrated == cause


def test_a_refusal_field_is_never_rated_even_when_it_names_a_phrase() -> None:
    rec = answered("I can't say whether this is like me.", refusal=True)
    assert (rec.rating, rec.rating_strict, rec.unrated) == (None, None, "refusal")


def test_an_unrated_answer_between_failures_continues_the_streak_and_a_rated_one_ends_it() -> None:
    breaker = Breaker(BreakerPolicy(3))
    failed = Record("j", "m", "vanilla", "v1", 1, 1, status="failed", error_kind="transient",
                    error="HTTP 503: busy", extra={"http_status": 503})
    assert breaker.logged(answered("5")) is None
    assert breaker.logged(answered("Like me.")) is None  # rated: the count starts again
    assert [breaker.logged(r) for r in (answered("5"), failed)] == [None, None]
    why = breaker.logged(answered("4"))
    assert why is not None and why.startswith(
        "3 jobs in a row failed or came back unrated (2 of them text neither parser can rate)")


def test_choice_mode_answers_that_are_not_the_schema_point_at_the_server() -> None:
    why = advice_for(answered("Somewhat like me", mode="choice"))
    assert why.startswith("answers are not a JSON object naming one of the six phrases, "
                          "e.g. 'Somewhat like me': check that the server honours")


def test_an_answer_cut_off_with_text_says_to_raise_max_tokens() -> None:
    why = advice_for(answered("Well, considering the", finish="length"))
    assert why == ("answers are cut off at max_tokens (now 64) before they name a phrase, "
                   "e.g. 'Well, considering the': raise max_tokens")


def test_min_rated_above_one_is_a_config_error_naming_the_fix(tmp_path: Path) -> None:
    cfg = config(tmp_path, "http://127.0.0.1:9/v1", run="min_rated = 1.5")
    with pytest.raises(ConfigError, match=r"run\.min_rated: is a share of the jobs, at most 1, "
                       r"got 1\.5.*0 turns the check off"):
        load_config(cfg, check_env=False)
