"""The log scanner: Record lines become columns without a dict per line, as orjson reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

import vpbatch.scoring.logscan as logscan
from vpbatch.benchmark.dataset import Dataset, load_dataset
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.errors import CorruptLinesWarning
from vpbatch.log.records import Record, job_id
from vpbatch.scoring.logscan import TEMPLATE_KEY, scan_log


@pytest.fixture(scope="module")
def ds(data_dir: Path) -> Dataset:
    return load_dataset(data_dir)


def _record(ds: Dataset, i: int, rating: int | None = 4, **kw: Any) -> Record:
    kw.setdefault("job_id", job_id({"i": i}))
    kw.setdefault("status", "ok" if rating is not None else "failed")
    return Record(model=kw.pop("model", "m"), condition=kw.pop("condition", "vanilla"),
                  version=kw.pop("version", "v1"), portrait_id=int(ds.portrait_id[i]),
                  option_id=int(ds.option_id[i]), rating=rating, rating_strict=rating, **kw)


def _lines(records: list[Record], sort_keys: bool = False) -> bytes:
    if not sort_keys:
        return b"".join(r.to_json() for r in records)
    return b"".join(orjson.dumps(orjson.loads(r.to_json()), option=orjson.OPT_SORT_KEYS) + b"\n"
                    for r in records)


def _varied(ds: Dataset) -> list[Record]:
    texts = [None, "like me", '"Like me"', "a \\ b", "x" * 300, "tab\tnew\nline"]
    return [_record(ds, k % ds.n_items, None if k % 7 == 0 else k % 6 + 1,
                    job_id=job_id({"k": k}) if k % 5 else f"id-{k}",
                    model=["gpt", 'say "hi"', "modèle"][k % 3], version=VERSIONS[k % 6],
                    raw=texts[k % len(texts)], reasoning=texts[(k + 1) % len(texts)],
                    extra=[{}, {"http_status": 400}, {TEMPLATE_KEY: True}][k % 3])
            for k in range(300)]


def _as_table(cols: dict[str, np.ndarray], names: list[tuple[str, str, str]]) -> list[tuple]:
    t = [names[i] for i in cols["t"].tolist()]
    r = [None if np.isnan(x) else float(x) for x in cols["r"].tolist()]
    # The template flag is only read where it matters: on rows without a rating.
    kept = (cols["kept"] & ~(cols["ok"] & ~np.isnan(cols["r"]))).tolist()
    rest = [cols[k].tolist() for k in ("pid", "oid", "ok", "kind", "lo", "line")]
    return sorted(zip(cols["line"].tolist(), t, r, kept, *rest, strict=True))


def test_record_lines_take_the_vectorised_path(ds: Dataset) -> None:
    # The speed of `vpbatch score` on a big sweep rests on this: no line read one by one.
    records = [_record(ds, i % ds.n_items, i % 6 + 1, version=VERSIONS[i % 6],
                       raw='"Very" much ' * 30, usage={"prompt_tokens": 400},
                       request={"seed": 42}) for i in range(600)]
    data = _lines(records)
    mem = bytearray(data + bytes(logscan._PAD))
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    starts = np.r_[0, ends[:-1] + 1]
    parsed = logscan._parse(logscan._Scan(mem, len(data)), starts, ends, False,
                            np.ones(len(ends), bool))
    assert parsed.fast.all()
    assert parsed.rating.tolist() == [i % 6 + 1 for i in range(600)]


def test_a_hex_job_id_becomes_its_exact_128_bits(tmp_path: Path, ds: Dataset) -> None:
    jid = "0123456789abcdef" + "fedcba9876543210"
    (tmp_path / "log.jsonl").write_bytes(_lines([_record(ds, 0, job_id=jid)]))
    cols = scan_log(tmp_path / "log.jsonl", False).columns()
    assert (cols["kind"].tolist(), cols["hi"].tolist(), cols["lo"].tolist()) == (
        [0], [int(jid[:16], 16)], [int(jid[16:], 16)])


@pytest.mark.parametrize("strict", [False, True])
def test_record_order_and_sorted_keys_give_the_same_columns(
    tmp_path: Path, ds: Dataset, strict: bool
) -> None:
    records = _varied(ds)
    (tmp_path / "a.jsonl").write_bytes(_lines(records))
    (tmp_path / "b.jsonl").write_bytes(_lines(records, sort_keys=True))
    a, b = scan_log(tmp_path / "a.jsonl", strict), scan_log(tmp_path / "b.jsonl", strict)
    assert _as_table(a.columns(), list(a.triples)) == _as_table(b.columns(), list(b.triples))


def test_workers_and_small_chunks_give_the_same_columns(tmp_path: Path, ds: Dataset) -> None:
    (tmp_path / "log.jsonl").write_bytes(_lines(_varied(ds)))
    one = scan_log(tmp_path / "log.jsonl", False)
    many = scan_log(tmp_path / "log.jsonl", False, workers=3, chunk_bytes=1 << 10)
    assert _as_table(one.columns(), list(one.triples)) == _as_table(many.columns(),
                                                                    list(many.triples))


def test_a_torn_last_line_is_left_out(tmp_path: Path, ds: Dataset) -> None:
    data = _lines([_record(ds, 0), _record(ds, 1)])
    (tmp_path / "log.jsonl").write_bytes(data[:-20])
    assert scan_log(tmp_path / "log.jsonl", False).columns()["line"].tolist() == [0]


def _damaged(ds: Dataset) -> tuple[bytes, list[int]]:
    """Record lines, some damaged where the scanner's key walk does not look: a NUL in the
    usage, a byte that is not UTF-8 in the answer, a whole line of NULs; (log, their lines)."""
    lines = [r.to_json() for r in (_record(ds, i, i % 6 + 1, raw="like me",
                                           usage={"prompt_tokens": 400}) for i in range(12))]
    lines[1] = lines[1].replace(b'"prompt_tokens":400', b'"prompt_tokens":4\x000')
    lines[4] = lines[4].replace(b"like me", b"like m\xe9")
    lines[9] = b"\0" * 300 + b"\n"
    return b"".join(lines), [2, 5, 10]


@pytest.mark.parametrize(("workers", "chunk"), [(1, logscan.CHUNK_BYTES), (3, 1 << 10)])
def test_corrupt_lines_the_key_walk_would_accept_are_skipped_and_named_once(
    tmp_path: Path, ds: Dataset, workers: int, chunk: int
) -> None:
    data, bad = _damaged(ds)
    log = tmp_path / "log.jsonl"
    log.write_bytes(data)
    with pytest.warns(CorruptLinesWarning) as seen:
        fast = scan_log(log, False, workers=workers, chunk_bytes=chunk)
        plain = scan_log(log, False, plain=True)  # orjson per line: the reference
    assert len(seen) == 1 and f"{log}: skipped 3 corrupt lines (lines 2, 5, 10;" in str(
        seen[0].message)
    assert fast.corrupt == plain.corrupt == bad
    rows = _as_table(fast.columns(), list(fast.triples))
    assert [r[0] for r in rows] == [0, 2, 3, 5, 6, 7, 8, 10, 11]  # lines 2, 5, 10 left out
    assert [r[2] for r in rows] == [float(i % 6 + 1) for i in (0, 2, 3, 5, 6, 7, 8, 10, 11)]


def test_the_vectorised_utf8_check_agrees_with_python_on_every_kind_of_sequence() -> None:
    rng = np.random.default_rng(0)
    samples = [bytes(rng.integers(0x80, 0x100, rng.integers(1, 6))) for _ in range(3000)]
    samples += ["é".encode(), "’".encode(), "😀".encode(), b"\xed\xa0\x80", b"\xe0\x9f\xbf",
                b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xc3", b"\xa9"]
    for tail in samples:
        data = b'{"raw":"a' + tail + b'b"}'
        buf = np.frombuffer(data, np.uint8)
        at = np.flatnonzero(buf >= 0x80)
        try:
            data.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        assert logscan._utf8_valid(buf[at], at) == valid, tail
