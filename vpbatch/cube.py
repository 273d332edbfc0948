"""Log -> rating cube: a dense (model, condition, version, item) array the scorer reads.

Reading is the expensive part of scoring a big sweep, and a dict per line costs more than all
the scoring. So lines written by Record.to_json (fixed key order) are parsed column-wise in
32 MB chunks with numpy: quote positions locate every field, names and job ids become 64-bit
hashes. Any other line goes through orjson. Big logs are read by worker processes; the array
is filled with `np.bincount`, and cached beside the log keyed on its size and mtime.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from vpbatch.dims import VERSIONS
from vpbatch.errors import LogError

if TYPE_CHECKING:
    from vpbatch.dataset import Dataset

__all__ = ["RatingCube", "cube_from_log", "cube_from_rows", "TEMPLATE_KEY"]

CHUNK_BYTES = 1 << 25  # 32 MB at a time: big enough to amortise, small enough for RAM
CACHE_VERSION = 3
# Logs this big are read by worker processes, one byte range each (parsing is CPU-bound).
PARALLEL_MIN_BYTES = 1 << 27
MAX_WORKERS = 4
# Set by the importer on a failed official record that still carried its correlation lists
# (some of the authors' clients stored them on error rows, some did not).
TEMPLATE_KEY = "correlations_recorded"


@dataclass(slots=True)
class RatingCube:
    """Ratings (M, C, V, I), averaged over repeats; NaN where no answer was parsed."""

    models: list[str]
    conditions: list[str]
    versions: list[str]
    ratings: np.ndarray
    portrait_id: np.ndarray
    option_id: np.ndarray
    n_ok: int = 0  # distinct jobs with a parsed rating
    n_failed: int = 0  # distinct jobs that failed or came back unparseable
    failures: dict[str, int] = field(default_factory=dict)  # model -> failed jobs
    # (M, C, I) items the authors' averaging would drop: no rating in the first version and
    # no correlation lists on that version's failed record. None = derive from `ratings`.
    authors_dropped: np.ndarray | None = None


# Odd 64-bit multipliers of the span hash; fixed so every chunk and process hashes alike.
_MULT = np.random.default_rng(0x5EED).integers(1, 2**63, size=17, dtype=np.uint64) | np.uint64(1)
_MAX_SPAN = 128  # longer names or ids take the per-line path (16 words, one multiplier each)
_ALL = np.uint64(2**64 - 1)
_PAD = bytes(256)
_QUOTES = 38  # quotes per line looked at: the prefix (28) and up to the rating keys
# The keys a Record line starts with, and the index of each key's opening quote in the line
# (a string value adds two quotes, a number none).
_PREFIX = (("job_id", 0), ("model", 4), ("condition", 8), ("version", 12), ("portrait_id", 16),
           ("option_id", 18), ("repeat", 20), ("status", 22), ("raw", 26))


def _span_hash(buf: np.ndarray, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each buf[start:start+length], computed for all rows at once.

    Sums the span's 8-byte little-endian words (bytes past the end masked to zero) times odd
    constants. `buf` needs 8 bytes of slack past its last span.
    """
    if not len(start):
        return np.zeros(0, np.uint64)
    # Every byte offset as the start of an unaligned uint64: one gather per word, no copies.
    words = np.ndarray((len(buf) - 7,), np.uint64, buffer=buf, strides=(1,))
    h = np.zeros(len(start), np.uint64)
    for k in range(-(-int(length.max()) // 8)):
        word = words[np.minimum(start + 8 * k, len(words) - 1)]
        keep = np.clip(length - 8 * k, 0, 8).astype(np.uint64)
        partial = np.left_shift(np.uint64(1), np.minimum(keep, np.uint64(7)) * np.uint64(8))
        mask = np.where(keep == 8, _ALL, partial - np.uint64(1))
        h += (word & mask) * _MULT[k]
    return h ^ (length.astype(np.uint64) * _MULT[16])


def _bytes_hash(values: list[bytes]) -> np.ndarray:
    """_span_hash of whole byte strings (the per-line path hashes ids the same way)."""
    if not values:
        return np.zeros(0, np.uint64)
    if max(map(len, values)) > _MAX_SPAN:  # never on the vectorised path: any stable hash will do
        return np.array([int.from_bytes(hashlib.blake2b(v, digest_size=8).digest(), "little")
                         for v in values], np.uint64)
    lengths = np.array([len(v) for v in values], np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    buf = np.frombuffer(b"".join(values) + bytes(8), np.uint8)
    return _span_hash(buf, starts, lengths)


class _Rows:
    """Columns of every log row (one entry per line), filled chunk by chunk."""

    __slots__ = ("key", "models", "conds", "vers", "parts", "n_lines")

    def __init__(self, strict: bool) -> None:
        self.key = "rating_strict" if strict else "rating"
        self.models: dict[str, int] = {}
        self.conds: dict[str, int] = {}
        self.vers: dict[str, int] = {}
        self.parts: list[dict[str, np.ndarray]] = []
        self.n_lines = 0

    def add_dicts(self, rows: list[dict[str, Any]], lines: np.ndarray | None = None) -> None:
        """Rows already parsed (the per-line path, cube_from_rows)."""
        if not rows:
            return
        models, conds, vers, key = self.models, self.conds, self.vers, self.key
        cols: dict[str, list[Any]] = {k: [] for k in ("m", "c", "v", "pid", "oid", "r", "kept")}
        ok, jids = [], []
        for d in rows:
            # Every row names its axes, so a model whose answers all failed still shows up.
            cols["m"].append(models.setdefault(d["model"], len(models)))
            cols["c"].append(conds.setdefault(d["condition"], len(conds)))
            cols["v"].append(vers.setdefault(d["version"], len(vers)))
            cols["pid"].append(d["portrait_id"])
            cols["oid"].append(d["option_id"])
            good = d.get("status") == "ok"
            ok.append(good)
            rating = d.get(key) if good else None
            cols["r"].append(np.nan if rating is None else rating)
            cols["kept"].append(bool((d.get("extra") or {}).get(TEMPLATE_KEY, False)))
            jids.append(str(d["job_id"]).encode())
        if lines is None:
            lines = np.arange(self.n_lines, self.n_lines + len(rows))
            self.n_lines += len(rows)
        part = {k: np.asarray(v, np.float64 if k == "r" else np.int64) for k, v in cols.items()}
        part["kept"] = part["kept"].astype(bool)
        part.update(ok=np.asarray(ok, bool), jh=_bytes_hash(jids), line=lines)
        self.parts.append(part)

    def compact(self) -> None:
        """Merge the parts into one with narrow dtypes (what a worker sends back)."""
        if not self.parts:
            return
        narrow = {"m": np.int32, "c": np.int32, "v": np.int32, "pid": np.int32, "oid": np.int32,
                  "r": np.float32, "ok": bool, "kept": bool, "jh": np.uint64, "line": np.int64}
        self.parts = [{k: np.concatenate([p[k] for p in self.parts]).astype(t, copy=False)
                       for k, t in narrow.items()}]

    def absorb(self, other: _Rows) -> None:
        """Append another reader's rows, which come after ours in the file."""
        for col, mine, theirs in (("m", self.models, other.models),
                                  ("c", self.conds, other.conds), ("v", self.vers, other.vers)):
            remap = np.array([mine.setdefault(n, len(mine)) for n in theirs], np.int64)
            for part in other.parts:
                part[col] = remap[part[col]] if len(remap) else part[col]
        for part in other.parts:
            part["line"] = part["line"] + self.n_lines
            self.parts.append(part)
        self.n_lines += other.n_lines

    def add_chunk(self, path: Path, chunk: bytes, size: int) -> None:
        """The complete lines in chunk[:size]: Record-shaped ones vectorised, others one by one.

        Past `size` the chunk holds at least len(_PAD) more bytes (the next line, then zeros),
        so fixed offsets past a line's last quote never leave the buffer.
        """
        buf = np.frombuffer(chunk, np.uint8)
        ends = np.flatnonzero(buf[:size] == 10)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        keep = ends > starts  # blank lines carry nothing
        starts, ends = starts[keep], ends[keep]
        lines = np.arange(self.n_lines, self.n_lines + len(starts))
        self.n_lines += len(starts)
        fast, part = _vector_parse(buf, starts, ends, self.key)
        slow = np.flatnonzero(~fast)
        rows = [_load_line(path, chunk[starts[i] : ends[i]]) for i in slow]
        # Name every axis value in line order across both paths: models list as logged.
        tables = {"m": self.models, "c": self.conds, "v": self.vers}
        fields = {"m": "model", "c": "condition", "v": "version"}
        events = [(int(lines[i]), col, str(d[fields[col]]))
                  for i, d in zip(slow, rows, strict=True) for col in tables]
        if part is not None:
            fast_lines = lines[fast]
            for col, (names, first) in part.pop("names").items():
                events += [(int(fast_lines[f]), col, n) for n, f in zip(names, first, strict=True)]
        for _, col, name in sorted(events):
            tables[col].setdefault(name, len(tables[col]))
        if part is not None:
            part["line"] = lines[fast]
            for col, local in part.pop("local").items():
                part[col] = np.array([tables[col][n] for n in local], np.int64)[part[col]]
            self.parts.append(part)
        if rows:
            self.add_dicts(rows, lines[slow])


def _load_line(path: Path, line: bytes) -> dict[str, Any]:
    try:
        row: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise LogError(
            f"{path}: a line is not valid JSON ({exc}): {line[:80]!r}; move it aside or "
            "restore the file"
        ) from exc
    return row


def _words(buf: np.ndarray) -> np.ndarray:
    """Every byte offset of `buf` as the start of an unaligned little-endian uint64 (a view)."""
    return np.ndarray((len(buf) - 7,), np.uint64, buffer=buf, strides=(1,))


def _matches(buf: np.ndarray, at: np.ndarray, text: bytes) -> np.ndarray:
    """Which rows hold `text` at buf[at:]: one 8-byte compare per word instead of per byte."""
    words, ok = _words(buf), np.ones(len(at), bool)
    for k in range(0, len(text), 8):
        piece = text[k : k + 8]
        mask = np.uint64((1 << (8 * len(piece))) - 1)
        want = np.uint64(int.from_bytes(piece, "little"))
        ok &= (words[np.minimum(at + k, len(words) - 1)] & mask) == want
    return ok


def _digits(buf: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unsigned integers written in buf[a:b] (up to 8 digits) per row, and which held one."""
    n = b - a
    word = _words(buf)[np.clip(a, 0, len(buf) - 8)]
    value, good = np.zeros(len(a), np.int64), (n >= 1) & (n <= 8)
    for i in range(8):
        d = ((word >> np.uint64(8 * i)) & np.uint64(0xFF)).astype(np.int64) - 48
        inside = i < n
        good &= ~inside | ((d >= 0) & (d <= 9))
        value = np.where(inside, value * 10 + d, value)
    return value, good


def _vector_parse(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, key: str
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Parse lines written by Record.to_json without building a dict per line.

    Such a line starts with the fields job_id .. raw in dataclass order, so with the quote
    positions known, every field sits between fixed quotes. Lines that deviate in any checked
    way (other order, escapes in names, no rating) are flagged for the per-line path.
    """
    qs = np.flatnonzero(buf == 34)
    if len(qs) < 28 or not len(starts):
        return np.zeros(len(starts), bool), None
    k0 = np.searchsorted(qs, starts)
    fast = k0 + 28 < len(qs)
    # Gathered once, quote index major: each q(j) below is one contiguous row.
    quotes = qs[np.minimum(np.arange(_QUOTES)[:, None] + k0, len(qs) - 1)]

    def q(j: int) -> np.ndarray:
        return quotes[j]

    fast &= (q(0) == starts + 1) & (q(27) < ends)
    for name, j in _PREFIX:
        fast &= (q(j + 1) - q(j) == len(name) + 1) & (buf[q(j) + 1] == ord(name[0]))
        fast &= buf[q(j) + len(name)] == ord(name[-1])
    # A backslash anywhere in the prefix means an escape: leave the line to orjson.
    slashes = np.flatnonzero(buf == 92)
    fast &= np.searchsorted(slashes, starts) == np.searchsorted(slashes, q(26))
    fast &= (q(25) - q(24) == 3) | (q(25) - q(24) == 7)  # "ok" | "failed"
    spans = {"jid": (q(2) + 1, q(3)), "m": (q(6) + 1, q(7)), "c": (q(10) + 1, q(11)),
             "v": (q(14) + 1, q(15))}
    for a, b in spans.values():
        fast &= (b - a >= 1) & (b - a <= _MAX_SPAN)
    pid, good_p = _digits(buf, q(17) + 2, q(18) - 1)
    oid, good_o = _digits(buf, q(19) + 2, q(20) - 1)
    fast &= good_p & good_o
    rating, good_r, located = _rating_guess(buf, quotes, ends, key)
    miss = np.flatnonzero(fast & ~located)  # escaped quotes in the answer text, for instance
    if len(miss):
        rating[miss], good_r[miss] = _rating_after(buf, qs, q(27)[miss], ends[miss], key)
    fast &= good_r
    idx = np.flatnonzero(fast)
    if not len(idx):
        return fast, None
    part: dict[str, Any] = {"pid": pid[idx], "oid": oid[idx], "r": rating[idx],
                            "ok": q(25)[idx] - q(24)[idx] == 3,
                            "kept": np.zeros(len(idx), bool)}
    part["jh"] = _span_hash(buf, spans["jid"][0][idx], (spans["jid"][1] - spans["jid"][0])[idx])
    names: dict[str, tuple[list[str], np.ndarray]] = {}
    for col in ("m", "c", "v"):
        a, b = spans[col][0][idx], spans[col][1][idx]
        h = _span_hash(buf, a, b - a)
        _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        order = np.argsort(first)  # first-seen order, so models list as the log has them
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        first = first[order]
        names[col] = ([bytes(buf[a[i] : b[i]]).decode() for i in first], first)
        part[col] = rank[inverse.reshape(-1)]
    part["names"] = names
    part["local"] = {col: names[col][0] for col in names}
    return fast, part


def _rating_value(buf: np.ndarray, at: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """The 1-digit value after the key whose opening quote is at `at`, and where there is one."""
    v = at + len(key) + 3  # quote, key, quote, colon
    digit = buf[v].astype(np.int64) - 48
    good = (digit >= 1) & (digit <= 9) & ((buf[v + 1] == ord(",")) | (buf[v + 1] == ord("}")))
    return digit.astype(np.float64), good


def _rating_guess(
    buf: np.ndarray, quotes: np.ndarray, ends: np.ndarray, key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, is a digit, key located) where answer and reasoning hold no escaped quote.

    Then the key's opening quote is quote 30, 32, 34 or 36 of the line (raw and reasoning each
    null or a plain string; rating_strict two after rating); the first that matches is it.
    """
    n = quotes.shape[1]
    value, good, located = np.full(n, np.nan), np.zeros(n, bool), np.zeros(n, bool)
    text = f'"{key}":'.encode()
    for j in range(30, _QUOTES - 1, 2):
        at = quotes[j]
        hit = ~located & (at < ends) & (buf[at - 1] == ord(",")) & _matches(buf, at, text)
        v, digit = _rating_value(buf, at, key)
        value[hit], good[hit], located[hit] = v[hit], digit[hit], True
    return value, good, located


def _rating_after(
    buf: np.ndarray, qs: np.ndarray, after: np.ndarray, ends: np.ndarray, key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per line, the 1-digit value of the first `,"<key>":` after `after`; NaN-free rows only.

    `,"key":` cannot occur inside a JSON string (its quotes would be escaped), and in a
    Record line nothing nested comes between raw and the ratings, so the first hit is it.
    """
    k = np.flatnonzero(np.diff(qs) == len(key) + 1)
    k = k[(buf[qs[k] - 1] == ord(",")) & (buf[np.minimum(qs[k + 1] + 1, len(buf) - 1)] == ord(":"))]
    pos = qs[k]
    for i, ch in enumerate(key.encode()):
        pos = pos[buf[pos + 1 + i] == ch]
    j = np.searchsorted(pos, after)
    found = j < len(pos)
    at = pos[np.minimum(j, max(len(pos) - 1, 0))] if len(pos) else np.zeros_like(after)
    found &= at < ends
    value, digit = _rating_value(buf, at, key)
    return value, found & digit


def _read(path: Path, rows: _Rows, start: int = 0, stop: int | None = None) -> None:
    """Feed the complete lines of bytes [start, stop) to `rows` in big chunks.

    `start` must be a line start; a last line without its newline (a torn write) is ignored.
    """
    with open(path, "rb") as f:
        f.seek(start)
        left = stop - start if stop is not None else -1
        rest = b""
        while left != 0:
            block = f.read(CHUNK_BYTES if left < 0 else min(CHUNK_BYTES, left))
            if not block:
                return
            left = left - len(block) if left > 0 else left
            chunk = rest + block + _PAD  # the one copy per chunk, padding included
            cut = chunk.rfind(b"\n", 0, len(chunk) - len(_PAD))
            if cut < 0:
                rest = chunk[: -len(_PAD)]
                continue
            rest = chunk[cut + 1 : -len(_PAD)]
            rows.add_chunk(path, chunk, cut + 1)


def _split_points(path: Path, parts: int) -> list[int]:
    """Byte offsets cutting the file into `parts` ranges that start at line starts."""
    size = path.stat().st_size
    points = [0]
    with open(path, "rb") as f:
        for k in range(1, parts):
            f.seek(max(size * k // parts, points[-1]))
            f.readline()  # finish the line we landed in
            points.append(f.tell())
    return [*points, size]


def _read_part(path: Path, start: int, stop: int, strict: bool) -> _Rows:
    """One worker's share of the log, its columns merged and narrowed for the trip back."""
    acc = _Rows(strict)
    _read(path, acc, start, stop)
    acc.compact()
    return acc


def _read_parallel(path: Path, strict: bool, workers: int) -> _Rows:
    """Read byte ranges of the log in worker processes and stitch them in file order."""
    points = _split_points(path, workers)
    ctx = multiprocessing.get_context("fork")  # no re-import: workers start in milliseconds
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(_read_part, path, a, b, strict)
                   for a, b in zip(points, points[1:], strict=False)]
        shares = [f.result() for f in futures]
    acc = _Rows(strict)
    for share in shares:
        acc.absorb(share)
    return acc


def cube_from_rows(rows: list[dict[str, Any]], ds: Dataset, *, strict: bool = False) -> RatingCube:
    """A cube from already-parsed log rows (tests, merged logs)."""
    acc = _Rows(strict)
    acc.add_dicts(rows)
    return _build(acc, ds)


def _counting_rows(jh: np.ndarray, line: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Indices of the rows that count, one per job: its first ok row, else its last row.

    Jobs are told apart by a 64-bit hash of their id: ids that differ in one 8-byte word can
    never collide (odd multipliers), others with odds of 2^-64 per pair.
    """
    ordered = np.sort(jh)
    if not (ordered[1:] == ordered[:-1]).any():
        return np.arange(len(jh))  # no job logged twice: the usual case, and cheap
    order = np.argsort(line, kind="stable")
    jh_o, ok_o = jh[order], ok[order]
    ok_idx = np.flatnonzero(ok_o)
    _, first_ok = np.unique(jh_o[ok_idx], return_index=True)
    chosen = [order[ok_idx[first_ok]]]
    rev = np.arange(len(jh_o))[::-1]
    last_jh, last = np.unique(jh_o[rev], return_index=True)
    never_ok = ~np.isin(last_jh, jh_o[ok_idx])
    chosen.append(order[rev[last[never_ok]]])
    return np.concatenate(chosen)


def _build(acc: _Rows, ds: Dataset) -> RatingCube:
    cols = {k: np.concatenate([p[k] for p in acc.parts]) if acc.parts else np.zeros(0)
            for k in ("m", "c", "v", "pid", "oid", "r", "ok", "kept", "jh", "line")}
    sel = _counting_rows(cols["jh"], cols["line"], cols["ok"].astype(bool))
    m, c, v, r = (cols[k][sel] for k in ("m", "c", "v", "r"))
    m, c, v = (x.astype(np.int64) for x in (m, c, v))
    rated = cols["ok"][sel].astype(bool) & ~np.isnan(r)
    # Versions in the benchmark's order (v1 first: the authors' rule keys on it), others after.
    rank = {name: i for i, name in enumerate(VERSIONS)}
    names_v = sorted(acc.vers, key=lambda name: (rank.get(name, len(rank)), acc.vers[name]))
    remap = np.zeros(max(len(names_v), 1), np.int64)
    for new, name in enumerate(names_v):
        remap[acc.vers[name]] = new
    v = remap[v]
    item = ds.indices(cols["pid"][sel], cols["oid"][sel]) if len(sel) else sel
    shape = (len(acc.models), len(acc.conds), len(names_v), len(ds.portrait_id))
    size = int(np.prod(shape))
    flat = np.ravel_multi_index((m[rated], c[rated], v[rated], item[rated]), shape) if size else m
    total = np.bincount(flat, weights=r[rated], minlength=size)
    count = np.bincount(flat, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratings = (total / count).reshape(shape)  # mean over repeats; 0/0 -> NaN = missing
    names_m = list(acc.models)
    failed = ~rated
    per_model = np.bincount(m[failed], minlength=len(names_m))
    kept = np.zeros((shape[0], shape[1], shape[3]), bool)
    mark = failed & cols["kept"][sel].astype(bool) & (v == 0)
    kept[m[mark], c[mark], item[mark]] = True
    first_missing = np.isnan(ratings[:, :, 0, :]) if shape[2] else kept
    return RatingCube(
        models=names_m,
        conditions=list(acc.conds),
        versions=names_v,
        ratings=ratings,
        portrait_id=np.asarray(ds.portrait_id).copy(),
        option_id=np.asarray(ds.option_id).copy(),
        n_ok=int(rated.sum()),
        n_failed=int(failed.sum()),
        failures={names_m[i]: int(n) for i, n in enumerate(per_model) if n},
        authors_dropped=first_missing & ~kept,
    )


def _cache_path(log_path: Path, strict: bool) -> Path:
    return log_path.with_name(f".{log_path.name}.cube{'-strict' if strict else ''}.npz")


def _cache_key(log_path: Path, ds: Dataset) -> np.ndarray:
    st = os.stat(log_path)
    items = np.asarray(ds.portrait_id, np.int64) * 1000 + np.asarray(ds.option_id, np.int64)
    digest = np.frombuffer(hashlib.blake2b(items.tobytes(), digest_size=8).digest(), np.int64)
    return np.array([CACHE_VERSION, st.st_size, st.st_mtime_ns, int(digest[0])], np.int64)


def _load_cache(path: Path, key: np.ndarray) -> RatingCube | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if not np.array_equal(z["key"], key):
                return None
            meta = orjson.loads(z["meta"].tobytes())
            return RatingCube(
                models=meta["models"],
                conditions=meta["conditions"],
                versions=meta["versions"],
                ratings=z["ratings"],
                portrait_id=z["portrait_id"],
                option_id=z["option_id"],
                n_ok=meta["n_ok"],
                n_failed=meta["n_failed"],
                failures=meta["failures"],
                authors_dropped=z["authors_dropped"],
            )
    except (OSError, KeyError, ValueError):  # absent, stale format or torn: just re-read
        return None


def _dropped(cube: RatingCube) -> np.ndarray:
    if cube.authors_dropped is not None:
        return cube.authors_dropped
    return np.isnan(cube.ratings[:, :, 0, :])


def _save_cache(path: Path, key: np.ndarray, cube: RatingCube) -> None:
    meta = {
        "models": cube.models,
        "conditions": cube.conditions,
        "versions": cube.versions,
        "n_ok": cube.n_ok,
        "n_failed": cube.n_failed,
        "failures": cube.failures,
    }
    tmp = path.with_name(path.name + ".tmp.npz")
    try:
        np.savez(
            tmp,
            key=key,
            meta=np.frombuffer(orjson.dumps(meta), np.uint8),
            ratings=cube.ratings,
            portrait_id=cube.portrait_id,
            option_id=cube.option_id,
            authors_dropped=_dropped(cube),
        )
        os.replace(tmp, path)  # atomic: a reader never sees half a cache
    except OSError:  # a read-only run dir still scores, just without the cache
        tmp.unlink(missing_ok=True)


def cube_from_log(
    log_path: Path, ds: Dataset, *, strict: bool = False, cache: bool = True
) -> RatingCube:
    """Read a run log (deduplicated: a job's first ok row counts) into a RatingCube."""
    log_path = Path(log_path)
    if not log_path.exists():
        raise LogError(f"no log at {log_path}; run a sweep or import-official into that dir first")
    key = _cache_key(log_path, ds)
    cpath = _cache_path(log_path, strict)
    if cache:
        hit = _load_cache(cpath, key)
        if hit is not None:
            return hit
    workers = min(MAX_WORKERS, os.cpu_count() or 1)
    if workers > 1 and log_path.stat().st_size >= PARALLEL_MIN_BYTES:
        acc = _read_parallel(log_path, strict, workers)
    else:
        acc = _Rows(strict)
        _read(log_path, acc)
    cube = _build(acc, ds)
    if cache:
        _save_cache(cpath, key, cube)
    return cube
