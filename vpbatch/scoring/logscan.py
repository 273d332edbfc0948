"""Log file -> columns: JSONL Record lines parsed a chunk at a time, without a dict per line.

Lines written by Record.to_json (fixed key order) are read column-wise: newlines are found
once, then each needed field is reached from the line start by 8-byte word scans (SWAR: one
uint64 holds 8 bytes). Job ids (32 hex) become exact 128-bit pairs and names exact strings;
any other line goes through orjson, and the log's one parser (LogReader.parse) decides whether
it is corrupt: skipped, and named in one warning per log. Big logs are read by threads, a byte
range each.

The scanner reads a line itself only when every field it reads is well formed, the line ends
in a brace, holds no control byte (a NUL run from a crash, a raw newline split) and is valid
UTF-8 (a flipped high bit); the last two are checked a chunk at a time, at almost no cost. Any
other line goes to orjson. Damage confined to the fields the scanner skips (usage, request,
...) of an otherwise well-formed line is the one kind it reads through; `run` and
`vpbatch log check`, which parse every line, find and move such a line.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vpbatch.log.reader import LogReader, line_numbers, warn_corrupt
from vpbatch.log.records import OK, TEMPLATE_KEY

__all__ = ["TEMPLATE_KEY", "COLUMNS", "LogColumns", "scan_log"]

CHUNK_BYTES = 1 << 22  # 4 MB at a time: per-row arrays stay in cache, calls stay amortised

# --- byte-level primitives (SWAR: one uint64 holds 8 bytes of the line) --------------------

_PAD = 1024  # slack past a chunk's data: word loads a little past a line end stay in the array
_SCAN_WORDS = 32  # strings up to 256 bytes are scanned word by word, longer ones by index
_NAME_WORDS = 16  # names up to 128 bytes take the vectorised path
_STRIDE = 32  # every _STRIDE-th line's names are scanned; the others compared with those
_NEWLINE, _QUOTE_BYTE, _BACKSLASH, _COMMA, _CLOSE_BRACE = b'\n"\\,}'
_NULL_TEXT = b"null"
_SPACE = 0x20  # bytes below it are control bytes: JSON escapes them all inside strings
_ASCII_END = 0x80


def _every_byte(value: int) -> np.uint64:
    """The word holding `value` in each of its 8 bytes."""
    return np.uint64(int.from_bytes(bytes([value]) * 8, "little"))


_ONES = _every_byte(0x01)
_HIGH = _every_byte(0x80)  # each byte's top bit: where the tests below flag a byte
_LOW7 = _every_byte(0x7F)
_LOW_NIBBLES = _every_byte(0x0F)
_HIGH_NIBBLES = _every_byte(0xF0)
_PLUS_6 = _every_byte(0x06)  # lifts a nibble of 10..15, and only those, past 15
_NIBBLE_CARRY = _every_byte(0x10)
_QUOTE = _every_byte(_QUOTE_BYTE)
_BACKSLASHES = _every_byte(_BACKSLASH)
_ZERO_DIGITS = _every_byte(ord("0"))
_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the name-column hash
_NULL = np.uint64(int.from_bytes(_NULL_TEXT, "little"))
_TEMPLATE_TRUE = f'"{TEMPLATE_KEY}":true'.encode()  # as orjson writes the key, set
_CHOICE = b',"answer_mode":"choice"'  # a line rated in choice mode (Record.to_json order)
_HEX_DIGITS = "0123456789abcdef"
_LOW64 = (1 << 64) - 1
_NAN = float("nan")


def _first_flag(z: np.ndarray) -> np.ndarray:
    """Byte index (0..7) of the lowest flagged byte of each nonzero word."""
    return (np.bitwise_count((z & (~z + np.uint64(1))) - np.uint64(1)) >> 3).astype(np.int64)


def _zero_bytes(x: np.ndarray) -> np.ndarray:
    """Flags (0x80) the zero bytes of x; exact up to the first zero, which is all we read."""
    return (x - _ONES) & ~x & _HIGH


def _nonzero_bytes(x: np.ndarray) -> np.ndarray:
    """Flags (0x80) every nonzero byte of x exactly (no carry crosses a byte)."""
    return (((x & _LOW7) + _LOW7) | x) & _HIGH


_32 = np.uint64(32)


def _at_least(c: int) -> np.uint64:
    """Added to a word of ASCII bytes, sets the top bit of exactly the bytes >= c (no carry
    crosses a byte: 0x7F + (0x80 - c) < 0x100)."""
    return _every_byte(0x80 - c)


_AT_LEAST_0, _PAST_9 = _at_least(ord("0")), _at_least(ord("9") + 1)
_AT_LEAST_A, _PAST_F = _at_least(ord("a")), _at_least(ord("f") + 1)


def _hex8(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, good) of 8 lowercase hex digits per word, first digit most significant."""
    # Per byte (ASCII only): a digit is >= "0" and not >= ":", a letter >= "a" and not >= "g".
    digit = (w + _AT_LEAST_0) & ~(w + _PAST_9)
    alpha = (w + _AT_LEAST_A) & ~(w + _PAST_F)
    good = (((digit | alpha) & _HIGH) == _HIGH) & ((w & _HIGH) == 0)
    # A digit's value is its low nibble; a letter's (bit 6 set) is its low nibble + 9.
    nib = (w & _LOW_NIBBLES) + np.uint64(9) * ((w >> np.uint64(6)) & _ONES)
    # Pairs, then quads, then all eight nibbles, most significant (first) digit on top.
    t = ((nib << np.uint64(4)) | (nib >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    t = ((t << np.uint64(8)) | (t >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    t = ((t << np.uint64(16)) | (t >> _32)) & np.uint64(0xFFFFFFFF)
    return t, good


# _MASKS[n] keeps the low n bytes of a word.
_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(9)], np.uint64)


class _Scan:
    """One chunk of complete lines as bytes, uint8 and unaligned-uint64 views."""

    __slots__ = ("data", "buf", "words", "size", "_quotes")

    def __init__(self, data: bytearray, size: int) -> None:
        self.data, self.size = data, size
        self.buf = np.frombuffer(data, np.uint8)
        # Every byte offset as the start of a little-endian uint64: one gather per 8 bytes.
        self.words = np.ndarray((len(data) - 7,), np.uint64, buffer=data, strides=(1,))
        self._quotes: np.ndarray | None = None

    def quotes(self) -> np.ndarray:
        """Offsets of every quote in the chunk (built only when a long string needs it)."""
        if self._quotes is None:
            self._quotes = np.flatnonzero(self.buf[: self.size] == _QUOTE_BYTE)
        return self._quotes

    def match(self, at: np.ndarray, text: bytes) -> np.ndarray:
        """Which rows hold `text` at `at`: one masked word compare per 8 bytes."""
        ok = np.ones(len(at), bool)
        for k in range(0, len(text), 8):
            piece = text[k : k + 8]
            word = self.words[at + k]
            if len(piece) < 8:
                word = word & np.uint64((1 << (8 * len(piece))) - 1)
            ok &= word == np.uint64(int.from_bytes(piece, "little"))
        return ok

    def holding(self, text: bytes, s: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Which of the lines [s, e) contain `text` (a C-speed find per line)."""
        find = self.data.find
        return np.array([find(text, a, b) >= 0 for a, b in zip(s.tolist(), e.tolist(),
                                                                strict=True)], bool)

    def escaped(self, q: np.ndarray) -> np.ndarray:
        """Whether the quote at each q is escaped (an odd run of backslashes before it)."""
        odd = np.zeros(len(q), bool)
        idx, back = np.flatnonzero(self.buf[q - 1] == _BACKSLASH), 1
        while len(idx):
            odd[idx] = ~odd[idx]
            back += 1
            idx = idx[self.buf[q[idx] - back] == _BACKSLASH]
        return odd

    def string_end(self, pos: np.ndarray, lim: np.ndarray) -> np.ndarray:
        """The closing quote of each JSON string whose text starts at pos; -1 if not before lim."""
        end = np.full(len(pos), -1, np.int64)
        # Most strings are short and hold no escaped quote: their first 24 bytes at once.
        for k in range(2, -1, -1):  # earliest word last, so its quote wins
            z = _zero_bytes(self.words[pos + 8 * k] ^ _QUOTE)
            end = np.where(z != 0, pos + 8 * k + _first_flag(z), end)
        unsure = np.flatnonzero((end < 0) | (self.buf[end - 1] == _BACKSLASH))
        if len(unsure):
            end[unsure] = self._scan_end(pos[unsure], lim[unsure])
        end[end >= lim] = -1
        return end

    def _scan_end(self, pos: np.ndarray, lim: np.ndarray) -> np.ndarray:
        """string_end word by word, stepping over escaped quotes."""
        end = np.full(len(pos), -1, np.int64)
        todo, p, lim_t = np.arange(len(pos)), pos.astype(np.int64), lim
        for _ in range(_SCAN_WORDS):
            if not len(todo):
                return end
            z = _zero_bytes(self.words[p] ^ _QUOTE)
            hit = np.flatnonzero(z)
            nxt = p + 8
            done = np.zeros(len(todo), bool)
            if len(hit):
                q = p[hit] + _first_flag(z[hit])
                esc = self.escaped(q)
                done[hit[~esc]] = True
                end[todo[hit[~esc]]] = q[~esc]
                nxt[hit[esc]] = q[esc] + 1
            keep = ~done & (nxt < lim_t)
            todo, p, lim_t = todo[keep], nxt[keep], lim_t[keep]
        if len(todo):
            end[todo] = self._indexed_end(p, lim_t)
        return end

    def _indexed_end(self, p: np.ndarray, lim: np.ndarray) -> np.ndarray:
        """string_end for long strings: next unescaped quote from the chunk's quote index."""
        qs = self.quotes()
        k = np.searchsorted(qs, p)
        end = np.full(len(p), -1, np.int64)
        idx = np.arange(len(p))
        while len(idx) and len(qs):
            kk = k[idx]
            q = qs[np.minimum(kk, len(qs) - 1)]
            inside = (kk < len(qs)) & (q < lim[idx])
            esc = inside & self.escaped(q)
            fin = inside & ~esc
            end[idx[fin]] = q[fin]
            k[idx[esc]] += 1
            idx = idx[esc]
        return end

    def number(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value, end, good): the unsigned integer of 1..7 digits at `at`, read in one word."""
        x = self.words[at] ^ _ZERO_DIGITS  # digits become bytes 0..9
        # A byte is a digit when its high nibble is 0 and its low nibble + 6 stays below 16.
        over_9 = ((x & _LOW_NIBBLES) + _PLUS_6) & _NIBBLE_CARRY
        stop = _nonzero_bytes((x & _HIGH_NIBBLES) | over_9)
        n = np.where(stop != 0, _first_flag(stop), 8)
        good = (n >= 1) & (n <= 7)
        shift = (np.uint64(8) * (np.uint64(8) - np.clip(n, 1, 7).astype(np.uint64)))
        v = (x & _MASKS[n]) << shift  # the digits in the top bytes, leading zeros below
        # Pairwise, then 4-wise, then 8-wise decimal combination of the eight digit bytes
        # (simdjson's eight-digit parse): each step multiplies the higher half by 10, 100, 10^4.
        v = (v * np.uint64(10)) + (v >> np.uint64(8))
        lo = v & np.uint64(0x000000FF000000FF)
        hi = (v >> np.uint64(16)) & np.uint64(0x000000FF000000FF)
        v = lo * np.uint64(100 + (1000000 << 32)) + hi * np.uint64(1 + (10000 << 32))
        v >>= np.uint64(32)
        return v.astype(np.int64), at + n, good

    def rating(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(value, end, good) for `null` or one digit 1..9 at `at`; NaN for null."""
        word = self.words[at]
        is_null = (word & _MASKS[len(_NULL_TEXT)]) == _NULL
        digit = (word & _MASKS[1]).astype(np.int64) - ord("0")
        after = (word >> np.uint64(8)) & _MASKS[1]  # the byte after the digit ends the value
        is_digit = (digit >= 1) & (digit <= 9) & ((after == _COMMA) | (after == _CLOSE_BRACE))
        value = np.where(is_digit, digit, np.nan)
        return value, at + np.where(is_null, len(_NULL_TEXT), 1), is_null | is_digit

    def value_end(
        self, at: np.ndarray, lim: np.ndarray, live: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(end, good) of the `null` or string value at `at`; strings scanned on `live` rows."""
        is_null = self.match(at, _NULL_TEXT)
        is_str = live & (self.buf[at] == _QUOTE_BYTE)
        end, good = at + len(_NULL_TEXT), is_null.copy()
        idx = np.flatnonzero(is_str)
        q = self.string_end(at[idx] + 1, lim[idx])
        good[idx] = q >= 0
        end[idx] = np.where(q >= 0, q + 1, at[idx])
        return end, good

    def hex128(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hi, lo, good): 32 lowercase hex digits at `at` as int(s[:16], 16), int(s[16:], 16)."""
        halves, good = [], np.ones(len(at), bool)
        for k in range(4):
            value, ok = _hex8(self.words[at + 8 * k])
            halves.append(value)
            good &= ok
        return (halves[0] << _32) | halves[1], (halves[2] << _32) | halves[3], good

    def name(self, pos: np.ndarray, lim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(end, words) of short unescaped strings at pos: their closing quote (-1 if none or
        escaped) and their bytes as (_NAME_WORDS, n) words, zero past the string's end."""
        n = len(pos)
        end = np.full(n, -1, np.int64)
        words = np.zeros((_NAME_WORDS, n), np.uint64)
        todo, p = np.arange(n), pos.astype(np.int64)
        used = 0
        for k in range(_NAME_WORDS):
            used = k + 1
            w = self.words[p]
            z = _zero_bytes(w ^ _QUOTE)
            found = z != 0
            at = np.where(found, _first_flag(z), 8)
            words[k, todo] = w & _MASKS[at]
            hit = np.flatnonzero(found)
            end[todo[hit]] = p[hit] + at[hit]
            keep = ~found & (p + 8 < lim)
            todo, p, lim = todo[keep], p[keep] + 8, lim[keep]
            if not len(todo):
                break
        # A backslash (an escape) anywhere in a name: leave the line to orjson.
        words = words[:used]
        slash = (_zero_bytes(words ^ _BACKSLASHES) != 0).any(axis=0)
        end[slash] = -1
        return end, words


# --- one chunk of Record lines ---------------------------------------------------------

# A line as Record.to_json writes it: the keys in field order, a value after each. The scanner
# reads a line by matching each key where the previous value ended.
_JOB_ID = b'{"job_id":"'
_HEX_ID = 32  # records.job_id writes 32 lowercase hex digits
_MODEL = b'","model":"'
_CONDITION = b'","condition":"'
_VERSION = b'","version":"'
_PORTRAIT_ID = b'","portrait_id":'
_OPTION_ID = b',"option_id":'
_REPEAT = b',"repeat":'
_STATUS = b',"status":"'
_OK, _FAILED = b'ok"', b'failed"'  # the status values, closing quote included
_RAW = b',"raw":'
_REASONING = b',"reasoning":'
_RATING = b',"rating":'
_RATING_STRICT = b',"rating_strict":'
_NO_EXTRA = b'"extra":{}}'  # how a line with no provenance ends
_NAMES_AT = len(_JOB_ID) + _HEX_ID + len(_MODEL)  # where the model name starts
_MIN_LINE = 100  # far below any Record line: the first key checks stay inside the line


@dataclass(slots=True)
class _Parsed:
    """The Record-shaped lines of a chunk (`fast`), their fields, their distinct name triples."""

    fast: np.ndarray  # (n,) bool over the chunk's lines; the rest go through orjson
    triple: np.ndarray  # per fast line, index into `names`
    names: list[tuple[str, str, str]]  # (model, condition, version), first-seen order
    first: np.ndarray  # per name triple, the chunk line it first appears on
    pid: np.ndarray
    oid: np.ndarray
    rating: np.ndarray
    ok: np.ndarray
    hi: np.ndarray
    lo: np.ndarray
    choice: np.ndarray
    rep: np.ndarray


def _fields(
    sc: _Scan, s: np.ndarray, e: np.ndarray, strict: bool, clean: np.ndarray
) -> dict[str, np.ndarray]:
    """Walk every `clean` line [s, e) through the Record key order, clearing `ok` where it
    deviates.

    `a` is each line's read position: a key is matched there, then `a` moves past the key
    and past the value after it.
    """
    at_id = s + len(_JOB_ID)
    ok = clean & (e - s >= _MIN_LINE) & sc.match(s, _JOB_ID) & sc.match(at_id + _HEX_ID, _MODEL)
    ok &= sc.buf[e - 1] == _CLOSE_BRACE
    hi, lo, good = sc.hex128(at_id)
    ok &= good
    out: dict[str, np.ndarray] = {"hi": hi, "lo": lo}
    out["span"], q, spans = _triples(sc, s, e, ok)  # q: the version's closing quote
    ok &= out["span"] >= 0
    out["spans"] = np.array(spans, object)
    a = np.where(ok, q, s) + len(_PORTRAIT_ID)  # _triples matched the key
    pid, a, good_p = sc.number(a)
    ok &= good_p & sc.match(a, _OPTION_ID)
    oid, a, good_o = sc.number(a + len(_OPTION_ID))
    ok &= good_o & sc.match(a, _REPEAT)
    rep, a, good_r = sc.number(a + len(_REPEAT))
    ok &= good_r & sc.match(a, _STATUS)
    a = a + len(_STATUS)
    st_ok, st_failed = sc.match(a, _OK), sc.match(a, _FAILED)
    ok &= st_ok | st_failed
    a = a + np.where(st_ok, len(_OK), len(_FAILED))
    for key in (_RAW, _REASONING):
        ok &= sc.match(a, key)
        a, good = sc.value_end(np.where(ok, a + len(key), s), e, ok)
        ok &= good
    ok &= sc.match(a, _RATING)
    r1, a, good1 = sc.rating(a + len(_RATING))
    ok &= good1 & sc.match(a, _RATING_STRICT)
    r2, a, good2 = sc.rating(a + len(_RATING_STRICT))
    ok &= good2 & (sc.buf[a] == _COMMA)
    choice = sc.match(a, _CHOICE)  # answer_mode follows the ratings (text lines: absent/text)
    rating = r2 if strict else r1
    # An unrated row may carry the importer's TEMPLATE_KEY: orjson reads the lines holding it.
    # Unescaped quotes around it only occur as a key, so a line without it has none.
    unsure = ok & ~(st_ok & ~np.isnan(rating)) & ~sc.match(e - len(_NO_EXTRA), _NO_EXTRA)
    idx = np.flatnonzero(unsure)
    ok[idx[sc.holding(_TEMPLATE_TRUE, s[idx], e[idx])]] = False
    out.update(ok=ok, pid=pid, oid=oid, rating=rating, status_ok=st_ok, choice=choice, rep=rep)
    return out


def _triples(
    sc: _Scan, s: np.ndarray, e: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
    """(span id per line or -1, end quote of its version, the distinct spans).

    A span is the bytes `model","condition":"...","version":"v` of a line. Lines come in runs
    of one span, so every _STRIDE-th line is scanned and each line is compared, in one pass of
    word compares, with the spans of the sampled lines before and after it: a byte-equal span
    followed by `","portrait_id":` names the same triple. Lines matching neither are scanned.
    """
    a0 = s + _NAMES_AT
    span, v_end = np.full(len(s), -1, np.int64), np.full(len(s), -1, np.int64)
    todo = np.flatnonzero(ok)
    sample = todo[::_STRIDE]
    q, group, reps = _scan_triples(sc, s[sample], e[sample])
    spans = [bytes(sc.data[a0[sample[r]] : q[r]]) for r in reps.tolist()]
    good = np.flatnonzero(group >= 0)
    if len(good):
        table, lens = _span_table([b + _PORTRAIT_ID for b in spans])
        sampled, kind = sample[good], group[good]
        for after in (0, 1):
            cand = np.searchsorted(sampled, todo, side="right") - 1 + after
            # Sorted candidates: each sampled line's span repeated over its run (no gather).
            runs = np.bincount(np.clip(cand, 0, len(good) - 1), minlength=len(good))
            want, n = table[:, kind].repeat(runs, axis=1), lens[kind].repeat(runs)
            same, base, short = np.ones(len(todo), bool), a0[todo], int(n.min(initial=0))
            for k, expected in enumerate(want):
                word = sc.words[base + 8 * k]
                if short < 8 * k + 8:  # some spans end in this word: keep only their bytes
                    word &= _MASKS[np.minimum(np.maximum(n - 8 * k, 0), 8)]
                same &= word == expected
            hit = todo[same]
            span[hit] = np.repeat(kind, runs)[same]
            v_end[hit] = a0[hit] + n[same] - len(_PORTRAIT_ID)
            todo = todo[~same]
    q, group, reps = _scan_triples(sc, s[todo], e[todo])
    named = group >= 0
    span[todo[named]], v_end[todo[named]] = group[named] + len(spans), q[named]
    spans += [bytes(sc.data[a0[todo[r]] : q[r]]) for r in reps.tolist()]
    return span, v_end, spans


def _span_table(spans: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """(words (K, n) of each byte string, zero-padded; lengths (n,))."""
    lens = np.array([len(b) for b in spans], np.int64)
    width = -(-int(lens.max()) // 8) * 8
    padded = b"".join(b.ljust(width, b"\0") for b in spans)
    table = np.frombuffer(padded, np.uint64).reshape(len(spans), width // 8).T.copy()
    return table, lens


def _scan_triples(
    sc: _Scan, s: np.ndarray, e: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(version end quote, group or -1, first row of each group) by scanning the three names."""
    a, key_words = s + _NAMES_AT, []
    ok = np.ones(len(s), bool)
    q = s
    for key in (_CONDITION, _VERSION, _PORTRAIT_ID):
        idx = np.flatnonzero(ok)
        q = np.full(len(s), -1, np.int64)
        q[idx], words = sc.name(a[idx], e[idx])
        ok &= q >= 0
        q = np.where(ok, q, s)  # a failed row keeps reading inside its own line
        ok &= sc.match(q, key)
        full = np.zeros((len(words), len(s)), np.uint64)
        full[:, idx] = words
        key_words += [(q - a).astype(np.uint64)[None], full]  # length, then the bytes
        a = q + len(key)
    idx = np.flatnonzero(ok)
    group = np.full(len(s), -1, np.int64)
    group[idx], reps = _group(np.concatenate(key_words)[:, idx])
    return q, group, idx[reps]


def _parse(
    sc: _Scan, s: np.ndarray, e: np.ndarray, strict: bool, clean: np.ndarray
) -> _Parsed:
    """Parse the Record-shaped lines among the `clean` [s, e) of a chunk without a dict per
    line."""
    f = _fields(sc, s, e, strict, clean)
    # A span that is not JSON (a control byte, bad UTF-8) leaves its lines to the log's parser.
    decoded = [_triple(b) for b in f["spans"]]
    f["ok"] &= np.array([d is not None for d in decoded] + [False])[f["span"]]
    idx = np.flatnonzero(f["ok"])
    span = f["span"][idx]
    first = np.full(len(f["spans"]), len(s), np.int64)
    np.minimum.at(first, span, idx)
    used = np.flatnonzero(first < len(s))  # spans of lines that passed every check
    local = np.full(len(f["spans"]), -1, np.int64)
    local[used] = np.arange(len(used))
    names = [d for d in (decoded[k] for k in used.tolist()) if d is not None]  # all of them
    return _Parsed(f["ok"], local[span], names, first[used], f["pid"][idx], f["oid"][idx],
                   f["rating"][idx], f["status_ok"][idx], f["hi"][idx], f["lo"][idx],
                   f["choice"][idx], f["rep"][idx])


def _group(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group of each column, first column of each group): equal columns <=> same group.

    Columns are grouped by a hash, then each is compared with its group's first member; on a
    hash collision (never seen) the columns are grouped by their bytes instead.
    """
    h = np.zeros(words.shape[1], np.uint64)
    for row in words:
        h = (h ^ row) * _MIX
        h ^= h >> np.uint64(31)
    order = np.argsort(h, kind="stable")
    hs = h[order]
    starts = np.ones(len(order), bool)
    starts[1:] = hs[1:] != hs[:-1]
    group = np.empty(len(order), np.int64)
    group[order] = np.cumsum(starts) - 1
    reps = order[starts]
    if (words == words[:, reps[group]]).all():
        # Number groups in order of first appearance, as the log lists them.
        by_first = np.argsort(reps, kind="stable")
        rank = np.empty(len(reps), np.int64)
        rank[by_first] = np.arange(len(reps))
        return rank[group], reps[by_first]
    seen: dict[bytes, int] = {}
    firsts: list[int] = []
    for i, column in enumerate(np.ascontiguousarray(words.T)):
        g = seen.setdefault(column.tobytes(), len(seen))
        if g == len(firsts):
            firsts.append(i)
        group[i] = g
    return group, np.array(firsts, np.int64)


def _triple(span: bytes) -> tuple[str, str, str] | None:
    """Decode one `model","condition":"...","version":"v` span exactly; None if not JSON."""
    try:
        d = orjson.loads(b'{"model":"' + span + b'"}')
    except orjson.JSONDecodeError:
        return None
    return str(d["model"]), str(d["condition"]), str(d["version"])


# --- rows of the whole log -------------------------------------------------------------

# Column -> its dtype: t triple index, pid/oid item, r rating (NaN
# if none), ok status ok, kept TEMPLATE_KEY set (read on unrated rows only: the only ones it
# matters for), (kind, hi, lo) job id, line number in the log, choice rated in choice mode,
# rep the job's repeat number (the trust panel's retest compares repeats).
COLUMNS = {"t": np.int32, "pid": np.int32, "oid": np.int32, "r": np.float32, "ok": bool,
           "kept": bool, "kind": np.uint8, "hi": np.uint64, "lo": np.uint64, "line": np.int64,
           "choice": bool, "rep": np.int32}


class LogColumns:
    """Columns of every log row (one entry per line), filled chunk by chunk.

    A row names its (model, condition, version) triple by index; job ids are (kind, hi, lo):
    kind 0 for 32-hex ids (their exact 128 bits), kind 1 for others (hi = index in `ids`).
    """

    __slots__ = ("key", "triples", "first", "ids", "parts", "n_lines", "corrupt")

    def __init__(self, strict: bool) -> None:
        self.key = "rating_strict" if strict else "rating"
        self.triples: dict[tuple[str, str, str], int] = {}
        self.first: list[int] = []  # per triple, the first line naming it
        self.ids: dict[str, int] = {}
        self.parts: list[dict[str, np.ndarray]] = []
        self.n_lines = 0
        # The corrupt lines skipped: file offsets while reading, line numbers once scan_log
        # returns (the cube cache keeps them, so a cached read warns too).
        self.corrupt: list[int] = []

    def _triple(self, name: tuple[str, str, str], line: int) -> int:
        t = self.triples.setdefault(name, len(self.triples))
        if t == len(self.first):
            self.first.append(line)
        elif line < self.first[t]:
            self.first[t] = line
        return t

    def add_rows(self, rows: Iterable[dict[str, Any]], lines: Iterable[int] | None = None) -> None:
        """Rows already parsed, one at a time (lines left to orjson, cube_from_rows, read_rows).

        `lines` numbers the rows in the log; by default they follow the rows added so far.
        """
        cols: dict[str, list[Any]] = {k: [] for k in COLUMNS}
        t, pid, oid, r, ok, kept, kind, hi, lo, line, choice, rep = cols.values()
        triples, first, ids, key = self.triples, self.first, self.ids, self.key
        numbers = itertools.count(self.n_lines) if lines is None else lines
        for d, n in zip(rows, numbers, strict=False):  # count() is endless
            # Every row names its axes, so a model whose answers all failed still shows up.
            name = (str(d["model"]), str(d["condition"]), str(d["version"]))
            k = triples.get(name)
            t.append(self._triple(name, n) if k is None or n < first[k] else k)
            pid.append(d["portrait_id"])
            oid.append(d["option_id"])
            good = d.get("status") == OK
            rating = d.get(key) if good else None
            ok.append(good)
            r.append(_NAN if rating is None else rating)
            kept.append(bool((d.get("extra") or {}).get(TEMPLATE_KEY, False)))
            choice.append(d.get("answer_mode") == "choice")
            rep.append(int(d.get("repeat") or 0))
            jid = str(d["job_id"])
            if len(jid) == 32 and not jid.strip(_HEX_DIGITS):  # as the vectorised path reads it
                value = int(jid, 16)
                kind.append(0)
                hi.append(value >> 64)
                lo.append(value & _LOW64)
            else:
                kind.append(1)
                hi.append(ids.setdefault(jid, len(ids)))
                lo.append(0)
            line.append(n)
        if lines is None:
            self.n_lines += len(t)
        if t:
            self.parts.append({k: np.array(v, np.float64 if k == "r" else COLUMNS[k])
                               for k, v in cols.items()})

    def add_chunk(self, reader: LogReader, offset: int, sc: _Scan, nl: np.ndarray) -> None:
        """The complete lines of a chunk at file `offset`: Record-shaped ones vectorised,
        others one by one."""
        # One compare finds the newlines and every byte a valid line might not hold: another
        # control byte (never, JSON escapes them) or a byte past ASCII (checked as UTF-8).
        # Read as signed bytes, exactly those are below 0x20 (past ASCII is negative).
        odd = np.flatnonzero(np.less(sc.buf[: sc.size].view(np.int8), _SPACE, out=nl[: sc.size]))
        byte = sc.buf[odd]
        is_nl = byte == _NEWLINE
        ends = odd[is_nl]
        starts = np.empty_like(ends)
        starts[:1], starts[1:] = 0, ends[:-1] + 1
        suspect = np.zeros(len(ends), bool)
        suspect[np.searchsorted(ends, odd[(byte < _SPACE) & ~is_nl])] = True
        high = odd[byte >= _ASCII_END]
        if len(high) and not _utf8_valid(byte[byte >= _ASCII_END], high):
            suspect[np.searchsorted(ends, _bad_utf8(sc))] = True  # rare: find them exactly
        keep = ends > starts  # blank lines carry nothing
        starts, ends, clean = starts[keep], ends[keep], ~suspect[keep]
        lines = np.arange(self.n_lines, self.n_lines + len(starts))
        self.n_lines += len(starts)
        got = _parse(sc, starts, ends, self.key == "rating_strict", clean)
        slow = np.flatnonzero(~got.fast)
        texts = [bytes(sc.data[starts[i] : ends[i]]) for i in slow.tolist()]
        # A line of blanks carries nothing; any other goes through the log's one parser.
        rows = [reader.parse(offset + int(starts[i]), text) if text.strip() else None
                for i, text in zip(slow.tolist(), texts, strict=True)]
        keep_rows = [i for i, r in enumerate(rows) if r is not None]
        if got.names:
            local = np.array([self._triple(name, int(lines[f]))
                              for name, f in zip(got.names, got.first, strict=True)], np.int64)
            n = len(got.pid)
            self.parts.append({
                "t": local[got.triple], "pid": got.pid, "oid": got.oid, "r": got.rating,
                "ok": got.ok, "kept": np.zeros(n, bool), "kind": np.zeros(n, np.uint8),
                "hi": got.hi, "lo": got.lo, "line": lines[got.fast], "choice": got.choice,
                "rep": got.rep.astype(np.int32)})
        if keep_rows:
            self.add_rows([rows[i] for i in keep_rows],  # type: ignore[misc]
                          lines[slow[keep_rows]].tolist())

    def absorb(self, other: LogColumns) -> None:
        """Append another reader's rows, which come after ours in the file."""
        remap = np.array([self._triple(name, other.first[t] + self.n_lines)
                          for name, t in other.triples.items()], np.int64)
        ids = np.array([self.ids.setdefault(j, len(self.ids)) for j in other.ids], np.uint64)
        for part in other.parts:
            part["t"] = remap[part["t"]] if len(remap) else part["t"]
            other_ids = part["kind"] == 1
            if other_ids.any():
                part["hi"][other_ids] = ids[part["hi"][other_ids].astype(np.int64)]
            part["line"] = part["line"] + self.n_lines
            self.parts.append(part)
        self.n_lines += other.n_lines
        self.corrupt += other.corrupt

    def columns(self) -> dict[str, np.ndarray]:
        """Every row's COLUMNS as one array each, in the order the rows were added."""
        if not self.parts:
            return {k: np.zeros(0, np.uint64 if k in ("hi", "lo") else np.int64)
                    for k in COLUMNS}
        return {k: np.concatenate([p[k] for p in self.parts]) for k in COLUMNS}


def _utf8_valid(b: np.ndarray, at: np.ndarray) -> bool:
    """Whether the non-ASCII bytes `b`, at chunk offsets `at` (all of them, in order), form
    valid UTF-8: each lead byte followed right away by its continuation bytes, and no
    continuation byte left over, overlong, surrogate or past U+10FFFF (RFC 3629)."""
    cont = b < 0xC0
    lead = np.flatnonzero(~cont)
    first = b[lead]
    need = 1 + (first >= 0xE0).astype(np.int64) + (first >= 0xF0)
    if ((first < 0xC2) | (first > 0xF4)).any() or int(need.sum()) != int(cont.sum()):
        return False
    for k in (1, 2, 3):
        has = lead[need >= k]
        nxt = has + k
        if len(nxt) and (nxt[-1] >= len(b) or (at[nxt] != at[has] + k).any()
                         or not cont[nxt].all()):
            return False
    # Every lead has its continuations, so every continuation byte belongs to one lead.
    second = b[lead + 1]
    return not (((first == 0xE0) & (second < 0xA0)) | ((first == 0xED) & (second > 0x9F))
                | ((first == 0xF0) & (second < 0x90)) | ((first == 0xF4) & (second > 0x8F))).any()


def _bad_utf8(sc: _Scan) -> list[int]:
    """Offsets in the chunk of bytes that are not valid UTF-8 (orjson refuses their lines)."""
    bad: list[int] = []
    pos = 0
    with memoryview(sc.data) as view:
        while pos < sc.size:
            try:
                str(view[pos : sc.size], "utf-8")
                break
            except UnicodeDecodeError as exc:
                bad.append(pos + exc.start)
                pos = sc.data.find(b"\n", pos + exc.start, sc.size) + 1 or sc.size
    return bad


def _read(
    path: Path, rows: LogColumns, chunk_bytes: int, start: int = 0, stop: int | None = None
) -> None:
    """Feed the complete lines of bytes [start, stop) to `rows`, a block at a time."""
    reader = LogReader(path, start, stop)
    nl = np.empty(0, bool)
    for buf, end, offset in reader.blocks(chunk_bytes, pad=_PAD):
        if len(nl) < end:
            nl = np.empty(len(buf), bool)
        rows.add_chunk(reader, offset, _Scan(buf, end), nl)
    rows.corrupt += reader.corrupt


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


def _read_part(path: Path, start: int, stop: int | None, strict: bool, chunk_bytes: int,
               plain: bool) -> LogColumns:
    """Bytes [start, stop) of the log as columns."""
    acc = LogColumns(strict)
    if plain:
        reader = LogReader(path, start, stop)
        acc.add_rows(reader.rows(warn=False))
        acc.corrupt += reader.corrupt
    else:
        _read(path, acc, chunk_bytes, start, stop)
    return acc


def scan_log(path: Path, strict: bool, *, workers: int = 1, chunk_bytes: int = CHUNK_BYTES,
             plain: bool = False) -> LogColumns:
    """Every line of the log at `path` as columns; `workers` > 1 reads byte ranges in parallel.

    `strict` picks which rating fills the "r" column: rating_strict, else rating. `plain`
    reads each line with orjson instead of the scanner (the baseline `make bench` measures).
    The ranges are read by threads: numpy releases the GIL for the scanner's array work, and
    threads need no start method (fork is unsafe on macOS) and send nothing between processes.
    """
    parts: list[tuple[int, int | None]] = [(0, None)]  # to the end, as it is when read
    if workers > 1:
        parts = list(itertools.pairwise(_split_points(path, workers)))
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        futures = [pool.submit(_read_part, path, a, b, strict, chunk_bytes, plain)
                   for a, b in parts]
        acc = futures[0].result()
        for future in futures[1:]:
            acc.absorb(future.result())
    if acc.corrupt:  # one warning for all the ranges read; then line numbers, kept
        acc.corrupt = line_numbers(path, acc.corrupt)
        warn_corrupt(path, acc.corrupt)
    return acc
