"""When things go wrong: real `vpbatch` processes against a loopback server that misbehaves.

One aiohttp server (in a thread of the test process) answers each base_url according to its
first path segment: /ok answers, /reject gives the same 400 to every request, /html a web page
with status 200, /hang never answers, /huge 5 MB answers, /flaky* refuses every 25th request;
a mode in `fixed` answers like /ok (the server was fixed). Each test checks the exit code, how
many requests the server received (a handful, not the grid), the message, and that the work
already done is intact.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from loopback import serve

from vpbatch.log.lock import LOCK_NAME
from vpbatch.log.records import Record
from vpbatch.log.runlog import iter_log
from vpbatch.sweep.breaker import Breaker, BreakerPolicy, advice
from vpbatch.transport.records import FailureKind, ProviderError

pytestmark = pytest.mark.timeout(180)

ITEMS, VERSIONS = 100, ("v1", "v1_reversed")
GRID = ITEMS * len(VERSIONS)  # jobs of one model
STOP_AFTER = 20  # [run] stop_after's default: failures in a row that stop a model
UNSUPPORTED = {"error": {
    "message": "Unsupported parameter: 'temperature' is not supported with this model.",
    "type": "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}}
# LiteLLM 1.x, its proxy key missing: an authentication failure as HTTP 500.
LITELLM_NO_KEY = {"error": {"message": "Authentication Error, No api key passed in.",
                            "type": "auth_error", "param": "None", "code": "500"}}
HTML = b"<!doctype html><html><head><title>Open WebUI</title></head><body>app</body></html>"


def chat(text: str) -> dict[str, object]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 4}}


class Misbehaving:
    """The loopback server, run in a thread; counts requests per mode."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.fixed: set[str] = set()  # modes that answer like /ok from now on
        self.gate = threading.Event()  # /ok answers only once this is set (tests that hold)
        self.gate.set()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/v1"

    def start(self) -> Misbehaving:
        self._thread.start()
        assert self._ready.wait(30), "the loopback server did not start"
        return self

    def stop(self) -> None:
        self.gate.set()
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _main(self) -> None:
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{mode}/v1/chat/completions", self._handle)
        async with serve(app) as root:
            self.port = int(root.rsplit(":", 1)[1])
            self._ready.set()
            await self._stop.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        await request.read()
        self.requests[mode] += 1
        if mode.startswith("flaky") and self.requests[mode] % 25 == 0:
            return web.json_response({"error": {"message": "the flaky server said no"}},
                                     status=400)
        if mode == "ok" or mode in self.fixed or mode.startswith("flaky"):
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
            return web.json_response(chat("Somewhat like me."))
        if mode == "reject":
            return web.json_response(UNSUPPORTED, status=400)
        if mode == "html":
            return web.Response(body=HTML, content_type="text/html")
        if mode == "litellm-nokey":
            return web.json_response(LITELLM_NO_KEY, status=500)
        if mode == "stream":  # a streaming-only server: SSE chunks whatever was asked
            chunk = orjson.dumps({"object": "chat.completion.chunk", "choices": [
                {"index": 0, "delta": {"content": "Like me."}, "finish_reason": None}]})
            return web.Response(body=b"data: " + chunk + b"\n\ndata: [DONE]\n\n",
                                content_type="text/event-stream")
        if mode == "hang":
            assert self._stop is not None
            await self._stop.wait()
        if mode == "huge":
            return web.json_response(chat("Like me. " + "and so on " * 520_000))
        return web.Response(status=404)


@pytest.fixture
def server() -> Iterator[Misbehaving]:
    srv = Misbehaving().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "VPBATCH_DATA": str(data_dir)}


def model(name: str, url: str, extra: str = "") -> str:
    return (f'[[models]]\nname = "{name}"\nprovider = "openai"\nmodel = "x"\n'
            f'base_url = "{url}"\nconcurrency = 8\n{extra}\n')


def config(tmp_path: Path, *models: str, run: str = "", name: str = "c.toml") -> Path:
    p = tmp_path / name
    versions = ", ".join(f'"{v}"' for v in VERSIONS)
    p.write_text(f'[run]\nname = "field"\nitems = {ITEMS}\nversions = [{versions}]\n{run}\n'
                 + "".join(models))
    return p


def vpbatch(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "vpbatch", *map(str, args)]


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=150)


def rows(run_dir: Path) -> list[dict[str, object]]:
    return list(iter_log(run_dir / "log.jsonl"))


def wait_for(what: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Poll (bounded) until `what` holds; fail at once if the process ended first."""
    deadline = time.monotonic() + timeout
    while not what():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def holds_lock(run_dir: Path, pid: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return bool(orjson.loads((run_dir / LOCK_NAME).read_bytes())["pid"] == pid)
        except (OSError, orjson.JSONDecodeError):
            return False
    return check


# -- one sweep per run dir --------------------------------------------------------------------


def test_a_second_run_on_a_busy_run_dir_exits_at_once_naming_the_holder(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    cfg = config(tmp_path, model("m", server.url("ok")))
    run_dir = tmp_path / "run"
    server.gate.clear()  # the first run's requests wait: it is mid-sweep while we look
    first = subprocess.Popen(vpbatch("run", cfg, "--run-dir", run_dir, "--quiet"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(holds_lock(run_dir, first.pid), first)
        wait_for(lambda: server.requests["ok"] >= 8, first)
        second = run(vpbatch("run", cfg, "--run-dir", run_dir), env)
        assert second.returncode == 2
        msg = second.stderr.strip()
        assert f"pid {first.pid} on host {socket.gethostname()}" in msg and "vpbatch run" in msg
        assert "one sweep per run dir" in msg and msg.count("\n") == 0
        imported = run(vpbatch("import-official", tmp_path, "--run-dir", run_dir), env)
        merged = run(vpbatch("merge", run_dir, run_dir), env)
        for refused in (imported, merged):
            assert refused.returncode == 2 and f"pid {first.pid}" in refused.stderr
        status = run(vpbatch("status", run_dir), env)  # readers are never locked out
        assert status.returncode == 0, status.stderr
        assert server.requests["ok"] == 8  # the refused ones sent nothing
    finally:
        server.gate.set()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    ids = [r["job_id"] for r in rows(run_dir)]
    assert len(ids) == len(set(ids)) == GRID == server.requests["ok"]


def test_a_killed_sweep_leaves_no_lock_behind(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    cfg = config(tmp_path, model("m", server.url("ok")))
    run_dir = tmp_path / "run"
    server.gate.clear()
    first = subprocess.Popen(vpbatch("run", cfg, "--run-dir", run_dir, "--quiet"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_for(holds_lock(run_dir, first.pid), first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    server.gate.set()
    again = run(vpbatch("run", cfg, "--run-dir", run_dir, "--quiet"), env)
    assert again.returncode == 0, again.stderr
    assert len({r["job_id"] for r in rows(run_dir)}) == GRID


# -- a config that cannot work ------------------------------------------------------------------


def test_an_empty_port_is_a_config_error_before_anything_is_sent(
    tmp_path: Path, env: dict[str, str]
) -> None:
    cfg = config(tmp_path, model("m", "http://127.0.0.1:/v1"))
    done = run(vpbatch("run", cfg, "--run-dir", tmp_path / "run"), env)
    assert done.returncode == 2
    assert "models[0] (m).base_url: 'http://127.0.0.1:/v1' has an empty or zero port" in done.stderr
    assert not (tmp_path / "run").exists()


# -- a model whose every request fails the same way -------------------------------------------


def failed_lines(run_dir: Path, name: str) -> list[dict[str, object]]:
    return [r for r in rows(run_dir) if r["model"] == name and r["status"] == "failed"]


def stop_line(stderr: str, name: str) -> str:
    """The one closing line that names a stopped model and why."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith(f"error: model {name} ")]
    assert len(lines) == 1, stderr
    return lines[0]


def stopped_early(
    tmp_path: Path, server: Misbehaving, env: dict[str, str], mode: str, extra: str = ""
) -> tuple[int, str]:
    """One model against /mode: it must exit 3 after a handful of requests, not the grid.

    Returns the requests the server received and the model's closing error line.
    """
    cfg = config(tmp_path, model("m", server.url(mode), extra))
    done = run(vpbatch("run", cfg, "--run-dir", tmp_path / "run"), env)
    assert done.returncode == 3, done.stderr
    sent = server.requests[mode]
    assert STOP_AFTER <= sent <= STOP_AFTER + 8  # the breaker, plus what was in flight
    return sent, stop_line(done.stderr, "m")


def test_the_same_400_on_every_request_stops_that_model_early_and_the_others_go_on(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    cfg = config(tmp_path, model("good", server.url("ok")), model("o3", server.url("reject")))
    run_dir = tmp_path / "run"
    done = run(vpbatch("run", cfg, "--run-dir", run_dir), env)
    assert done.returncode == 3, done.stderr
    # Each job once, and one more request: the job whose 400 named temperature, re-sent
    # without it, refused again (providers.adapt: the switch was futile and is undone).
    sent = len(failed_lines(run_dir, "o3"))
    assert server.requests["reject"] == sent + 1
    assert STOP_AFTER <= sent <= STOP_AFTER + 8  # the breaker, plus what was in flight
    line = stop_line(done.stderr, "o3")
    assert "jobs in a row failed (all with: openai HTTP 400: Unsupported parameter: " \
        "'temperature' is not supported with this model.)" in line
    assert "change what it names in this model's config" in line
    assert f"{GRID - sent} jobs not sent" in line
    assert "error: model good" not in done.stderr  # the other model went on, to the end
    assert len([r for r in rows(run_dir) if r["model"] == "good"]) == GRID


def test_a_resume_after_the_fix_sends_the_pending_jobs_and_retry_failed_the_failed_ones(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    cfg = config(tmp_path, model("o3", server.url("reject")))
    run_dir = tmp_path / "run"
    assert run(vpbatch("run", cfg, "--run-dir", run_dir, "--quiet"), env).returncode == 3
    failed = {r["job_id"] for r in failed_lines(run_dir, "o3")}
    server.fixed.add("reject")  # the server now takes the request
    before = server.requests["reject"]
    resumed = run(vpbatch("run", cfg, "--run-dir", run_dir, "--quiet"), env)
    assert server.requests["reject"] - before == GRID - len(failed)  # the pending ones only
    # Every job is in the log now, but more than 5% of them failed: not a success yet.
    assert resumed.returncode == 3
    assert f"{len(failed)} of {GRID} jobs failed" in stop_line(resumed.stderr, "o3")
    assert "--retry-failed" in resumed.stderr
    before = server.requests["reject"]
    again = run(vpbatch("run", cfg, "--run-dir", run_dir, "--retry-failed", "--quiet"), env)
    assert again.returncode == 0, again.stderr
    assert server.requests["reject"] - before == len(failed)
    answered = [r["job_id"] for r in rows(run_dir) if r["status"] == "ok"]
    assert len(answered) == len(set(answered)) == GRID and failed <= set(answered)


def test_an_html_page_with_status_200_stops_the_model_after_a_handful_of_requests(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    sent, line = stopped_early(tmp_path, server, env, "html")
    assert f"{server.url('html')}/chat/completions answered 200 with a body that is not " \
        "JSON, not a chat completion (Content-Type: text/html" in line
    assert "check base_url" in line
    assert len(failed_lines(tmp_path / "run", "m")) == sent  # each once: a page is not retried


def test_a_gateway_answering_a_missing_key_with_500_stops_the_model_at_once_naming_api_key_env(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    cfg = config(tmp_path, model("m", server.url("litellm-nokey")))
    done = run(vpbatch("run", cfg, "--run-dir", tmp_path / "run"), env)
    assert done.returncode == 3, done.stderr
    assert server.requests["litellm-nokey"] <= 8  # what was in flight, not 175 retries
    assert "No api key passed in" in done.stderr and "set api_key_env" in done.stderr
    assert "check its logs" not in done.stderr


def test_a_streaming_only_server_is_told_apart_from_a_wrong_base_url(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    _, line = stopped_early(tmp_path, server, env, "stream")
    assert "a stream of server-sent events" in line and "stream = false" in line
    assert "doubled /v1" not in line


def test_a_server_that_never_answers_stops_the_model_after_a_handful_of_timeouts(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    _, line = stopped_early(tmp_path, server, env, "hang", "timeout_read = 0.3")
    assert "requests in a row got no answer (all with: openai: POST " in line
    assert "timed out" in line and "read 0.3s" in line and "raise timeout_read" in line
    # No job ran out of retries: each was abandoned unlogged, and a resume sends it again.
    assert rows(tmp_path / "run") == [] and f"{GRID} jobs not sent" in line


def test_a_base_url_where_nothing_listens_stops_the_model_before_any_job_runs_out_of_retries(
    tmp_path: Path, env: dict[str, str]
) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = config(tmp_path, model("m", f"http://127.0.0.1:{port}/v1"))
    done = run(vpbatch("run", cfg, "--run-dir", tmp_path / "run"), env)
    assert done.returncode == 3, done.stderr
    line = stop_line(done.stderr, "m")
    assert "requests in a row got no answer (all with: openai: POST " in line
    assert "Cannot connect" in line and "Nothing answers at base_url" in line
    # Stopped by the refused attempts, not after 20 jobs spent their retries: nothing logged.
    assert rows(tmp_path / "run") == [] and f"{GRID} jobs not sent" in line


def test_five_megabyte_answers_are_refused_unread_and_the_log_stays_small(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    sent, line = stopped_early(tmp_path, server, env, "huge")
    assert "larger than max_response_bytes = 1,048,576 bytes" in line
    log = tmp_path / "run" / "log.jsonl"
    assert len(failed_lines(tmp_path / "run", "m")) == sent
    assert log.stat().st_size < 2_000 * sent  # not 5 MB a line


# -- how many failures a run tolerates -----------------------------------------------------------


def test_a_few_failures_within_fail_on_error_exit_0_and_beyond_it_exit_3(
    tmp_path: Path, server: Misbehaving, env: dict[str, str]
) -> None:
    # /flaky* refuses every 25th request: 8 of the 200 jobs fail, 4%.
    cfg = config(tmp_path, model("m", server.url("flaky-a")))
    within = run(vpbatch("run", cfg, "--run-dir", tmp_path / "a"), env)
    assert within.returncode == 0, within.stderr
    assert len(failed_lines(tmp_path / "a", "m")) == GRID // 25
    strict = config(tmp_path, model("m", server.url("flaky-b")), run="fail_on_error = 3",
                    name="strict.toml")
    beyond = run(vpbatch("run", strict, "--run-dir", tmp_path / "b"), env)
    assert beyond.returncode == 3
    line = stop_line(beyond.stderr, "m")
    assert f"{GRID // 25} of {GRID} jobs failed, more than fail_on_error = 3 allows" in line
    assert "openai HTTP 400: the flaky server said no" in line
    assert len([r for r in rows(tmp_path / "b") if r["status"] == "ok"]) == GRID - GRID // 25


# -- the breaker's rule, on its own --------------------------------------------------------------


def line(error: str | None) -> Record:
    """A job's log line: answered when `error` is None, else failed with that error."""
    if error is None:
        return Record("j", "m", "vanilla", "v1", 1, 1, raw="Like me.")
    return Record("j", "m", "vanilla", "v1", 1, 1, status="failed", error_kind="transient",
                  error=error, extra={"http_status": 503})


def test_an_answer_between_failures_starts_the_count_again() -> None:
    breaker = Breaker(BreakerPolicy(3))
    assert [breaker.logged(line(e)) for e in ("a", "b", None, "c", "d")] == [None] * 5
    why = breaker.logged(line("e"))
    assert why is not None and why.startswith("3 jobs in a row failed (1 of them with: ")
    assert "check its logs" in why  # the advice for a 5xx


def test_one_cause_is_recognised_whatever_the_attempts_and_request_ids() -> None:
    breaker = Breaker(BreakerPolicy(2))
    busy = "HTTP 503: busy, request {} (gave up after {} attempts)"
    breaker.logged(line(busy.format("req_8f3a2b9c0d1e", 8)))
    why = breaker.logged(line(busy.format("req_77aa00bb11cc", 3)))
    assert why is not None and "(all with: HTTP 503: busy, request …)" in why


def refused() -> ProviderError:
    return ProviderError(FailureKind.TRANSIENT, "POST http://h/v1: ClientConnectorError: "
                         "Cannot connect to host h:80", unreachable=True)


def test_refused_connections_stop_a_model_that_never_answered() -> None:
    breaker = Breaker(BreakerPolicy(3))
    assert [breaker.no_answer(refused()) for _ in range(2)] == [None, None]
    why = breaker.no_answer(refused())
    assert why is not None and "Nothing answers at base_url" in why


def test_a_host_that_does_not_resolve_is_told_apart_from_a_server_that_is_down() -> None:
    dns = ("openai: POST https://api.openai.com/v1/chat/completions: ClientConnectorDNSError: "
           "Cannot connect to host api.openai.com:443 ssl:default [Name or service not known]")
    assert "does not resolve" in advice(dns, None)
    down = "POST http://h: ClientConnectorError: Cannot connect to host h:80"
    assert "start the server" in advice(down, None)


def test_refused_connections_after_an_answer_are_a_restart_and_do_not_count() -> None:
    breaker = Breaker(BreakerPolicy(3))
    breaker.logged(line(None))
    assert all(breaker.no_answer(refused()) is None for _ in range(100))


def test_stop_after_0_never_stops_a_model() -> None:
    breaker = Breaker(BreakerPolicy(0))
    assert all(breaker.logged(line("same")) is None for _ in range(1000))
