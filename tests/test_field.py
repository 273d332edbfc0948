"""When things go wrong: real `vpbatch` processes against a loopback server that misbehaves.

One aiohttp server (in a thread of the test process) answers each base_url according to its
first path segment: /ok answers, /reject gives the same 400 to every request, /html a web page
with status 200, /hang never answers, /huge 5 MB answers. Each test checks the exit code, how
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

from vpbatch.log.lock import LOCK_NAME
from vpbatch.log.runlog import iter_log

pytestmark = pytest.mark.timeout(180)

ITEMS, VERSIONS = 100, ("v1", "v1_reversed")
GRID = ITEMS * len(VERSIONS)  # jobs of one model
UNSUPPORTED = {"error": {
    "message": "Unsupported parameter: 'temperature' is not supported with this model.",
    "type": "invalid_request_error", "param": "temperature", "code": "unsupported_parameter"}}
HTML = b"<!doctype html><html><head><title>Open WebUI</title></head><body>app</body></html>"


def chat(text: str) -> dict[str, object]:
    return {"id": "chatcmpl-1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 4}}


class Misbehaving:
    """The loopback server, run in a thread; counts requests per mode."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
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
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        mode = request.match_info["mode"]
        await request.read()
        self.requests[mode] += 1
        if mode == "ok":
            while not self.gate.is_set():
                await asyncio.sleep(0.01)
            return web.json_response(chat("Somewhat like me."))
        if mode == "reject":
            return web.json_response(UNSUPPORTED, status=400)
        if mode == "html":
            return web.Response(body=HTML, content_type="text/html")
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
