"""`vpbatch data fetch|verify`: the official files at a pinned commit, checked by sha256.

The package ships `data/manifest.json`: the repository, the pinned commit and, per file, its
path, size and sha256. Fetch downloads into a temp file beside the target, hashes while
streaming and renames only a verified file into place, so a cut connection, a full disk or a
tampered mirror never leaves a half or wrong file under the real name.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import anyio

from vpbatch.benchmark.layout import CORE, ManifestFile, cache_dir, load_manifest
from vpbatch.errors import DataError
from vpbatch.transport import retry
from vpbatch.transport.records import FailureKind, ProviderError
from vpbatch.transport.retry import RetryPolicy

if TYPE_CHECKING:  # aiohttp is imported only to download: `data path` and scoring stay fast
    import aiohttp
    from yarl import URL

__all__ = [
    "Problem",
    "FetchResult",
    "base_url",
    "file_sha256",
    "local_file",
    "verify",
    "check",
    "fetch",
    "fetch_async",
    "OfflineError",
    "OnBytes",
]

_RAW_URL = "https://raw.githubusercontent.com/{repository}/{commit}"
_CHUNK = 1 << 16


class OfflineError(DataError):
    """The file server cannot be reached at all (no network, DNS failure, refused)."""

    def __init__(self, host: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.host = host
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    kind: str  # "missing" | "mismatch" | "unreadable"
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.kind} ({self.detail})"


@dataclass(slots=True)
class FetchResult:
    dest: Path
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # already there with the right sha256


def base_url() -> str:
    """$VPBATCH_DATA_URL (a mirror, or a test server), else GitHub raw at the pinned commit."""
    env = os.environ.get("VPBATCH_DATA_URL")
    if env:
        return env.rstrip("/")
    m = load_manifest()
    return _RAW_URL.format(repository=m.repository, commit=m.commit)


def file_sha256(path: Path) -> str:
    """sha256 of a file's content; a `.xz` file is hashed decompressed (= the upstream .json)."""
    h = hashlib.sha256()
    opener = lzma.open if path.suffix == ".xz" else open
    with opener(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def local_file(root: Path, mf: ManifestFile) -> Path | None:
    """The local copy of a manifest file: the path itself, or its `.xz` (outputs only)."""
    p = root / mf.path
    if p.is_file():
        return p
    xz = p.with_name(p.name + ".xz")
    return xz if xz.is_file() else None


def verify(root: Path, files: Iterable[ManifestFile]) -> list[Problem]:
    """Every file that is missing, unreadable or not byte-identical to the manifest's."""
    problems: list[Problem] = []
    for mf in files:
        p = local_file(root, mf)
        if p is None:
            problems.append(Problem(root / mf.path, "missing", "run `vpbatch data fetch`"))
            continue
        try:
            digest = file_sha256(p)
        except (OSError, lzma.LZMAError, EOFError) as exc:
            problems.append(Problem(p, "unreadable", str(exc)))
            continue
        if digest != mf.sha256:
            problems.append(
                Problem(p, "mismatch", f"sha256 {digest[:12]}…, expected {mf.sha256[:12]}…")
            )
    return problems


def check(root: Path, *, with_outputs: bool = False) -> int:
    """Check the core files and the outputs present (all outputs if `with_outputs`).

    Returns how many files were checked; raises DataError naming every bad one.
    """
    files = [
        mf
        for mf in load_manifest().files
        if mf.group == CORE or with_outputs or local_file(root, mf) is not None
    ]
    problems = verify(root, files)
    if problems:
        lines = "\n  ".join(str(p) for p in problems)
        raise DataError(
            f"{len(problems)} data file(s) under {root} failed verification:\n  {lines}\n"
            "Re-fetch them with `vpbatch data fetch` (or restore your copy)."
        )
    return len(files)


def _url(base: str, path: str) -> URL:
    from yarl import URL

    # Quote once ourselves (":" in "claude-3.7-sonnet:thinking") and stop yarl re-quoting.
    return URL(f"{base}/{quote(path, safe='/')}", encoded=True)


def _offline(
    url: URL, exc: aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError
) -> OfflineError:
    import aiohttp

    host = urlsplit(str(url)).netloc
    err = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else None
    if not isinstance(exc, aiohttp.ClientConnectorError):
        reason = "no answer to the connection"
    elif isinstance(err, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(err, socket.gaierror):
        reason = "host name not resolved"
    else:
        reason = err.strerror if err is not None and err.strerror else str(exc)
    return OfflineError(
        host, reason,
        f"cannot reach {host} ({reason}): offline, or the server is down. Run `vpbatch data fetch` "
        "on a machine with internet access, or point --data / VPBATCH_DATA at a copy of the "
        "Value Portrait data (VPBATCH_DATA_URL sets a mirror)."
    )


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # some filesystems refuse to open directories; the rename still happened
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_MAX_RETRY_AFTER = 60.0  # a file server asking to wait longer: better failed and fetched later


def _http_error(url: URL, status: int, headers: Mapping[str, str], raw: bytes) -> ProviderError:
    """An HTTP failure classified where the providers' are (429/5xx retried, 404 not)."""
    from vpbatch.transport.failures import classify_status

    err = classify_status(status, headers, raw, provider=str(url), key=None, key_env=None)
    if err.retry_after is not None:
        err.retry_after = min(err.retry_after, _MAX_RETRY_AFTER)
    return err


OnBytes = Callable[[ManifestFile, int], None]  # (file, bytes of it received so far)


async def _download(
    session: aiohttp.ClientSession, url: URL, mf: ManifestFile, dest: Path,
    on_bytes: OnBytes | None = None,
) -> None:
    """Stream one file into a temp file, hashing it, and rename it into place if it matches."""
    target = dest / mf.path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
    h = hashlib.sha256()
    try:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise _http_error(url, resp.status, resp.headers, await resp.read())
            # Chunks are small and local disk writes fast, so writing inline is fine here.
            with open(tmp, "wb") as f:
                got = 0
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    h.update(chunk)
                    f.write(chunk)
                    if on_bytes is not None:
                        got += len(chunk)
                        on_bytes(mf, got)
                f.flush()
                os.fsync(f.fileno())
        if h.hexdigest() != mf.sha256:
            raise DataError(
                f"{mf.path} from {url} does not match the manifest (sha256 {h.hexdigest()[:12]}…, "
                f"expected {mf.sha256[:12]}…); the download was discarded. Retry, or check "
                "VPBATCH_DATA_URL points at the official files"
            )
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


async def _fetch_one(
    session: aiohttp.ClientSession, base: str, mf: ManifestFile, dest: Path, policy: RetryPolicy,
    on_bytes: OnBytes | None = None,
) -> None:
    """Download one file through the retry loop; every way it can fail ends as a DataError."""
    import aiohttp

    url = _url(base, mf.path)

    async def attempt(n: int) -> None:
        try:
            await _download(session, url, mf, dest, on_bytes)
        except aiohttp.ClientConnectorError as exc:
            raise _offline(url, exc) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            # No answer to the connect at all (a firewall dropping packets): offline too, and
            # worth no retry, so a first run without network fails in seconds, not minutes.
            raise _offline(url, exc) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError) as exc:
            # A cut transfer is worth another try; a bad hash (a DataError) is not.
            raise ProviderError(FailureKind.TRANSIENT, f"{type(exc).__name__}: {exc}") from exc

    try:
        await retry.retrying(policy, attempt)
    except retry.GaveUp as gave_up:
        err = gave_up.error
        if err.kind is FailureKind.PERMANENT:
            raise DataError(
                f"{url} answered HTTP {err.status} for {mf.path}; check the pinned commit "
                "or VPBATCH_DATA_URL"
            ) from err
        raise DataError(
            f"downloading {mf.path} from {url} failed {gave_up.attempts} times "
            f"(last: {err.message}); retry `vpbatch data fetch` later"
        ) from err


async def fetch_async(
    dest: Path | None = None,
    *,
    with_outputs: bool = False,
    files: Sequence[ManifestFile] | None = None,
    url: str | None = None,
    concurrency: int = 8,
    attempts: int = 3,
    backoff: float = 0.5,
    on_file: Callable[[ManifestFile, str], None] | None = None,
    on_bytes: OnBytes | None = None,
    connect_timeout: float = 20,
) -> FetchResult:
    """Download every missing or wrong file into `dest` (default: the cache); skip good ones."""
    import aiohttp

    from vpbatch.transport.session import client_session

    dest = Path(dest) if dest is not None else cache_dir()
    todo = list(files) if files is not None else list(load_manifest().select(
        with_outputs=with_outputs))
    base = url.rstrip("/") if url else base_url()
    result = FetchResult(dest=dest)
    need = [mf for mf in todo if verify(dest, [mf])]
    result.present = [mf.path for mf in todo if mf not in need]
    errors: list[DataError] = []
    # No jitter: a handful of files, not a crowd of clients to spread out.
    policy = RetryPolicy(attempts=attempts, base=backoff, cap=_MAX_RETRY_AFTER, jitter=False)
    limiter = anyio.CapacityLimiter(concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=60)

    async def one(mf: ManifestFile) -> None:
        async with limiter:
            try:
                await _fetch_one(session, base, mf, dest, policy, on_bytes)
            except DataError as exc:
                errors.append(exc)
                if isinstance(exc, OfflineError):
                    tg.cancel_scope.cancel()  # every other file would say the same
                return
        result.fetched.append(mf.path)
        if on_file is not None:
            on_file(mf, "fetched")

    async with client_session(timeout=timeout) as session, anyio.create_task_group() as tg:
        for mf in need:
            tg.start_soon(one, mf)
    if errors:
        offline = [e for e in errors if isinstance(e, OfflineError)]
        if offline or len(errors) == 1:
            raise (offline or errors)[0]
        raise DataError(_many_failed(errors))
    return result


_SHOWN = 5  # failures named one by one; a mirror lacking a whole folder fails hundreds alike


def _many_failed(errors: Sequence[Exception]) -> str:
    """One message for several failed files: the first few whole, the rest counted."""
    lines = [str(e) for e in errors[:_SHOWN]]
    if len(errors) > _SHOWN:
        lines.append(f"... and {len(errors) - _SHOWN} more like these; the files fetched so far "
                     "are kept, and a rerun fetches only what is missing")
    return f"{len(errors)} files failed to download:\n  " + "\n  ".join(lines)


def fetch(
    dest: Path | None = None,
    *,
    with_outputs: bool = False,
    url: str | None = None,
    on_file: Callable[[ManifestFile, str], None] | None = None,
    files: Sequence[ManifestFile] | None = None,
    on_bytes: OnBytes | None = None,
    connect_timeout: float = 20,
) -> FetchResult:
    """Blocking `fetch_async` for the CLI."""

    async def main() -> FetchResult:
        return await fetch_async(dest, with_outputs=with_outputs, url=url, on_file=on_file,
                                 files=files, on_bytes=on_bytes,
                                 connect_timeout=connect_timeout)

    return anyio.run(main)
