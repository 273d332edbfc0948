"""`vpbatch data fetch|path|verify` against a mirror of the official files on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import lzma
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from aiohttp import web

from vpbatch.benchmark import layout
from vpbatch.benchmark.dataset import TAGGED_PATH, load_dataset
from vpbatch.benchmark.ensure import FetchProgress, absent, ensure_data, needed_files
from vpbatch.benchmark.fetch import (
    OfflineError,
    check,
    fetch,
    fetch_async,
    file_sha256,
    local_file,
)
from vpbatch.benchmark.layout import (
    CORE,
    OUTPUTS_GROUP,
    ManifestFile,
    cache_dir,
    load_manifest,
    prompt_template,
)
from vpbatch.errors import DataError
from vpbatch.transport import retry

PROMPT = prompt_template("v2", "reddit")
REPO = Path(__file__).resolve().parent.parent


class Mirror:
    """Serves the shared data like raw.githubusercontent.com does (outputs decompressed)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.tampered: set[str] = set()
        self.cut: set[str] = set()
        self.busy: dict[str, int] = {}  # path -> how many 503s to answer before serving
        self.busy_retry_after = "0"  # the Retry-After those 503s carry
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        rel = request.match_info["path"]
        self.requests.append(rel)
        if self.busy.get(rel, 0) > 0:
            self.busy[rel] -= 1
            return web.Response(status=503, headers={"Retry-After": self.busy_retry_after})
        p = self.root / rel
        xz = p.with_name(p.name + ".xz")
        if p.is_file():
            body = p.read_bytes()
        elif xz.is_file():
            body = lzma.decompress(xz.read_bytes())
        else:
            return web.Response(status=404)
        if rel in self.tampered:
            body = body.replace(b"e", b"E", 1)
        if rel in self.cut:  # promise the whole file, send half, hang up
            resp = web.StreamResponse(headers={"Content-Length": str(len(body))})
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
            assert request.transport is not None
            request.transport.close()
            return resp
        return web.Response(body=body)


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[Mirror]:
    mirror = Mirror(data_dir)
    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    mirror.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    ready = threading.Event()
    app = web.Application()
    app.router.add_get("/{path:.*}", mirror.handle)
    runner = web.AppRunner(app)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.SockSite(runner, sock).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield mirror
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def mirror(server: Mirror, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Mirror:
    """A clean mirror, an empty cache and no VPBATCH_DATA."""
    server.requests.clear()
    server.tampered.clear()
    server.cut.clear()
    server.busy.clear()
    server.busy_retry_after = "0"
    monkeypatch.delenv("VPBATCH_DATA", raising=False)
    monkeypatch.setenv("VPBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VPBATCH_DATA_URL", server.url)
    return server


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, reliably."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _core() -> list[str]:
    return [f.path for f in load_manifest().files if f.group == CORE]


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vpbatch", "data", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )


def test_manifest_pins_the_commit_of_the_data_readme(data_dir: Path) -> None:
    m = load_manifest()
    assert m.repository == "holi-lab/ValuePortrait"
    readme = data_dir / "README.md"  # ../shared's copy has it; a fetched cache has not
    if readme.exists():
        assert f"`{m.commit}`" in readme.read_text()
    assert len(_core()) == 18
    # The survey a human percentile needs is fetched and verified like the items.
    assert {layout.SURVEY, layout.VALUE_SCORES} <= set(_core())
    assert sum(f.group == OUTPUTS_GROUP for f in m.files) == 33 * 6


@pytest.mark.slow
def test_official_copy_verifies_including_outputs(data_dir: Path) -> None:
    # The shared outputs are .xz of the upstream .json: hashed decompressed.
    assert check(data_dir, with_outputs=True) == len(load_manifest().files)


def test_fetch_fills_the_cache_with_verified_files(mirror: Mirror) -> None:
    result = fetch()
    assert result.dest == cache_dir()
    assert sorted(result.fetched) == sorted(_core()) and result.present == []
    assert check(cache_dir()) == 18
    assert _leftovers(cache_dir()) == []
    assert load_dataset(cache_dir()).n_items == 520


def test_second_fetch_downloads_nothing(mirror: Mirror) -> None:
    fetch()
    mirror.requests.clear()
    result = fetch()
    assert result.fetched == [] and sorted(result.present) == sorted(_core())
    assert mirror.requests == []


def test_fetch_replaces_only_a_corrupt_local_file(mirror: Mirror) -> None:
    fetch()
    (cache_dir() / PROMPT).write_text("edited")
    mirror.requests.clear()
    assert fetch().fetched == [PROMPT]
    assert mirror.requests == [PROMPT]
    check(cache_dir())


def test_tampered_download_is_discarded_and_named(mirror: Mirror) -> None:
    mirror.tampered.add(TAGGED_PATH)
    with pytest.raises(DataError, match=r"query-response-tagged\.json from .* does not match"):
        fetch()
    assert not (cache_dir() / TAGGED_PATH).exists()
    assert _leftovers(cache_dir()) == []


def test_cut_connection_leaves_no_partial_file(mirror: Mirror) -> None:
    mirror.cut.add(TAGGED_PATH)

    async def go() -> None:
        await fetch_async(attempts=1)

    with pytest.raises(DataError, match=r"downloading data/query-response-tagged.* failed"):
        anyio.run(go)
    assert not (cache_dir() / TAGGED_PATH).exists()
    assert _leftovers(cache_dir()) == []


def test_busy_server_is_retried_after_its_retry_after(mirror: Mirror) -> None:
    mirror.busy[PROMPT] = 2
    only = [f for f in load_manifest().files if f.path == PROMPT]

    async def go() -> None:
        with retry.testing() as waits:
            await fetch_async(files=only, attempts=3)
        assert waits == [0.5, 1.0]  # Retry-After 0 is shorter than the backoff: backoff wins

    anyio.run(go)
    assert mirror.requests == [PROMPT] * 3
    check_file = cache_dir() / PROMPT
    assert file_sha256(check_file) == only[0].sha256


def test_a_retry_after_past_a_minute_is_cut_to_a_minute(mirror: Mirror) -> None:
    mirror.busy[PROMPT] = 1
    mirror.busy_retry_after = "3600"
    only = [f for f in load_manifest().files if f.path == PROMPT]

    async def go() -> None:
        with retry.testing() as waits:
            await fetch_async(files=only, attempts=3)
        assert waits == [60.0]

    anyio.run(go)
    assert mirror.requests == [PROMPT] * 2


def test_a_busy_server_past_the_attempts_is_named_with_its_last_answer(mirror: Mirror) -> None:
    mirror.busy[PROMPT] = 5
    only = [f for f in load_manifest().files if f.path == PROMPT]

    async def go() -> None:
        with retry.testing():
            await fetch_async(files=only, attempts=3)

    with pytest.raises(DataError, match=r"reddit_prompt\.txt .* failed 3 times \(last: .*HTTP 503"):
        anyio.run(go)
    assert mirror.requests == [PROMPT] * 3
    assert not (cache_dir() / PROMPT).exists()


def test_not_found_fails_at_once_naming_the_file(mirror: Mirror) -> None:
    ghost = ManifestFile(path="data/nope.json", sha256="0" * 64, size=1, group=CORE)

    async def go() -> None:
        await fetch_async(files=[ghost], attempts=3)

    with pytest.raises(DataError, match=r"HTTP 404 for data/nope\.json"):
        anyio.run(go)
    assert mirror.requests == ["data/nope.json"]


def test_many_missing_files_name_the_first_few_and_count_the_rest(mirror: Mirror) -> None:
    ghosts = [ManifestFile(path=f"data/nope{i}.json", sha256="0" * 64, size=1, group=CORE)
              for i in range(40)]

    async def go() -> None:
        await fetch_async(files=ghosts, attempts=1)

    with pytest.raises(DataError) as err:
        anyio.run(go)
    msg = str(err.value)
    assert msg.startswith("40 files failed to download:") and msg.count("HTTP 404") == 5
    assert "... and 35 more like these" in msg and len(msg.splitlines()) == 7


def test_a_good_file_survives_a_failed_refetch(mirror: Mirror) -> None:
    fetch()
    good = (cache_dir() / PROMPT).read_bytes()
    (cache_dir() / PROMPT).write_bytes(good + b" ")
    mirror.tampered.add(PROMPT)
    with pytest.raises(DataError, match="reddit_prompt.txt"):
        fetch()
    assert (cache_dir() / PROMPT).read_bytes() == good + b" "  # untouched, not half-replaced


def test_refused_connection_says_offline(mirror: Mirror, refusing_port: int) -> None:
    with pytest.raises(OfflineError, match=rf"127\.0\.0\.1:{refusing_port} \(connection refused\)"):
        fetch(url=f"http://127.0.0.1:{refusing_port}")


def test_outputs_are_fetched_as_the_upstream_json(mirror: Mirror, data_dir: Path) -> None:
    outputs = [f for f in load_manifest().files if f.group == OUTPUTS_GROUP]
    wanted = [f for f in outputs if "o3-mini" in f.path][:1]
    wanted += [f for f in load_manifest().files if ":thinking_v1_" in f.path]  # ":" in the URL

    async def go() -> None:
        await fetch_async(files=wanted)

    anyio.run(go)
    for f in wanted:
        got = cache_dir() / f.path
        assert got.suffix == ".json" and file_sha256(got) == f.sha256
        src = local_file(data_dir, f)  # ../shared's .xz, or a fetched .json
        assert src is not None
        want = lzma.decompress(src.read_bytes()) if src.suffix == ".xz" else src.read_bytes()
        assert got.read_bytes() == want


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPBATCH_")}
    env["VPBATCH_CACHE"] = str(tmp_path / "cache")
    env.update(extra)
    return env


def test_cli_path_prints_the_resolved_dir(tmp_path: Path, data_dir: Path) -> None:
    out = _cli("path", env=_env(tmp_path, VPBATCH_DATA=str(data_dir)))
    assert out.returncode == 0 and out.stdout.strip() == str(data_dir.resolve())
    out = _cli("path", "--data", str(data_dir), env=_env(tmp_path))
    assert out.returncode == 0 and out.stdout.strip() == str(data_dir.resolve())


def test_cli_path_without_data_says_how_to_get_it(tmp_path: Path) -> None:
    out = _cli("path", env=_env(tmp_path))
    assert out.returncode == 1
    assert out.stderr.startswith("error: no Value Portrait data found")
    assert "Traceback" not in out.stderr


def test_cli_fetch_then_path_finds_the_cache(tmp_path: Path, server: Mirror) -> None:
    env = _env(tmp_path, VPBATCH_DATA_URL=server.url)
    fetched = _cli("fetch", env=env)
    assert fetched.returncode == 0, fetched.stderr
    assert "18 fetched" in fetched.stderr
    out = _cli("path", env=env)
    assert out.stdout.strip() == fetched.stdout.strip()
    assert re.search(r"cache/[0-9a-f]{40}$", out.stdout.strip())


def test_cli_fetch_offline_is_one_clear_line(tmp_path: Path, refusing_port: int) -> None:
    out = _cli("fetch", env=_env(tmp_path, VPBATCH_DATA_URL=f"http://127.0.0.1:{refusing_port}"))
    assert out.returncode == 1
    assert "error: cannot reach" in out.stderr and "offline" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_verify_names_a_tampered_file(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "copy"
    for rel in _core():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((data_dir / rel).read_bytes())
    assert _cli("verify", "--data", str(root), env=_env(tmp_path)).returncode == 0
    (root / PROMPT).write_bytes((root / PROMPT).read_bytes().replace(b"Title", b"Titel"))
    (root / TAGGED_PATH).unlink()
    out = _cli("verify", "--data", str(root), env=_env(tmp_path, VPBATCH_DATA=str(root)))
    assert out.returncode == 1
    assert f"{root / PROMPT}: mismatch" in out.stderr
    assert "query-response-tagged.json" in out.stderr


# -- first use: `make run` / `make test` in a fresh clone ----------------------------------------
GPT4O = "gpt-4o-2024-05-13"


def test_first_use_fills_the_cache_with_a_progress_line(mirror: Mirror) -> None:
    out = io.StringIO()
    root = ensure_data(models=[GPT4O], stream=out)
    assert root == cache_dir()
    wanted = needed_files(models=[GPT4O])
    assert len(wanted) == len(_core()) + 6
    assert sorted(mirror.requests) == sorted(f.path for f in wanted)
    check(root)
    assert absent(root, wanted) == []
    text = out.getvalue()
    mb = sum(f.size for f in wanted) / 1e6
    assert text.startswith(f"no Value Portrait data found (VPBATCH_DATA is not set): fetching "
                           f"{len(wanted)} files ({mb:.1f} MB) from {mirror.url} into {root}\n")
    assert re.search(rf"fetching data: {len(wanted)}/{len(wanted)} files .* 100% ", text)


def test_first_use_sends_nothing_once_the_cache_holds_it(mirror: Mirror) -> None:
    ensure_data(models=[GPT4O], stream=io.StringIO())
    mirror.requests.clear()
    out = io.StringIO()
    assert ensure_data(models=[GPT4O], stream=out) == cache_dir()
    assert mirror.requests == [] and out.getvalue() == ""


def test_first_use_refetches_a_truncated_file_only(mirror: Mirror) -> None:
    ensure_data(stream=io.StringIO())
    (cache_dir() / TAGGED_PATH).write_bytes(b"{")
    mirror.requests.clear()
    ensure_data(stream=io.StringIO())
    assert mirror.requests == [TAGGED_PATH]
    check(cache_dir())


def test_vpbatch_data_wins_and_nothing_is_fetched(mirror: Mirror, data_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))
    assert ensure_data(with_outputs=True) == data_dir.resolve()
    assert mirror.requests == [] and not cache_dir().exists()


def test_an_explicit_root_lacking_recordings_says_how_to_fill_it(
    mirror: Mirror, tmp_path: Path
) -> None:
    fetch(tmp_path / "core")  # the 16 core files only
    with pytest.raises(DataError, match=r"lacks 6 file\(s\).*data fetch --with-outputs --dest"):
        ensure_data(tmp_path / "core", models=[GPT4O])
    assert not cache_dir().exists()


def test_first_use_offline_fails_at_once_saying_what_to_set(
    mirror: Mirror, refusing_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPBATCH_DATA_URL", f"http://127.0.0.1:{refusing_port}")
    out = io.StringIO()
    with pytest.raises(DataError) as err:
        ensure_data(with_outputs=True, stream=out)
    msg = str(err.value)
    assert out.getvalue() == ""  # the error alone is the message
    assert msg.startswith(f"no Value Portrait data found, and 127.0.0.1:{refusing_port} cannot "
                          "be reached (connection refused). Set VPBATCH_DATA")
    assert "VPBATCH_DATA_URL to a mirror" in msg


def test_the_progress_line_is_throttled_off_a_terminal() -> None:
    files = [f for f in load_manifest().files if f.group == CORE]
    now = [0.0]
    out = io.StringIO()
    p = FetchProgress(files, out, interval=10.0, clock=lambda: now[0])
    for i, f in enumerate(files):
        now[0] = i  # one file a second: a line every 10 s, not one per chunk
        p.on_bytes(f, f.size // 2)
        p.on_file(f, "fetched")
    p.close()
    lines = out.getvalue().splitlines()
    n, mb = len(files), sum(f.size for f in files) / 1e6
    assert len(lines) == 2 and lines[-1].startswith(
        f"fetching data: {n}/{n} files  {mb:.1f} MB/{mb:.1f} MB  100%")


def _fresh_clone(tmp_path: Path) -> Path:
    """The tracked files of this checkout, alone in a directory with no ../shared beside."""
    clone = tmp_path / "clone" / "vpbatch"
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listed, cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not src.is_symlink():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, clone / rel)
        elif src.is_symlink():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            (clone / rel).symlink_to(os.readlink(src))
    return clone


def _demo_in(clone: Path, tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "small.toml"
    config.write_text(f"""
[run]
name = "small"
versions = ["v1"]

[[models]]
name = "{GPT4O}"
provider = "openai"
model = "replay:{GPT4O}"
base_url = "${{SIM_URL}}"

[[models]]
name = "sim-default"
provider = "openai"
model = "sim:default"
base_url = "${{SIM_URL}}"
""")
    env = _env(tmp_path, VPBATCH_DATA_URL=url, PYTHONPATH=str(clone))
    return subprocess.run(
        [sys.executable, "-m", "vpbatch.demos.demo", "--config", str(config), "--run-dir",
         str(tmp_path / "run"), "--faults", "0", "--no-report"],
        cwd=clone, capture_output=True, text=True, env=env, timeout=300, check=False,
    )


@pytest.mark.slow
def test_a_fresh_clone_runs_the_demo_by_fetching_its_data(tmp_path: Path, server: Mirror) -> None:
    clone = _fresh_clone(tmp_path)
    assert not (clone.parent / "shared").exists()
    server.requests.clear()
    n = len(needed_files(models=[GPT4O]))  # the core files and gpt-4o's 6 recordings
    done = _demo_in(clone, tmp_path, server.url)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"no Value Portrait data found (VPBATCH_DATA is not set): fetching {n} files" in (
        done.stderr)
    assert f"fetching data: {n}/{n} files" in done.stderr
    assert f"results: {tmp_path / 'run'}/" in done.stdout
    assert len(server.requests) == n
    again = _demo_in(clone, tmp_path, server.url)  # the cache is used; nothing fetched again
    assert again.returncode == 0 and "fetching" not in again.stderr and len(server.requests) == n


def test_a_fresh_clone_offline_stops_at_once_with_one_message(
    tmp_path: Path, refusing_port: int
) -> None:
    clone = _fresh_clone(tmp_path)
    done = _demo_in(clone, tmp_path, f"http://127.0.0.1:{refusing_port}")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Value Portrait data found, and ")
    assert "Set VPBATCH_DATA" in lines[0] and "VPBATCH_DATA_URL" in lines[0]
    assert not (tmp_path / "run" / "log.jsonl").exists()
