"""The log is the commit point: torn tails are cut, duplicates count once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vpbatch.errors import CorruptLinesWarning
from vpbatch.log.records import FAILED, TEXT_CAP, Record
from vpbatch.log.repair import CORRUPT_NAME
from vpbatch.log.runlog import RunLog, read_log
from vpbatch.sweep.outcome import Pending
from vpbatch.transport.records import Answer


def rec(jid: str, status: str = "ok") -> Record:
    return Record(job_id=jid, model="m", condition="vanilla", version="v1",
                  portrait_id=1001, option_id=1, status=status, raw="like me", rating=5)


def test_appended_records_read_back(tmp_path: Path) -> None:
    with RunLog(tmp_path / "log.jsonl") as log:
        log.append(rec("a"))
        log.append(rec("b"))
    assert [r.job_id for r in read_log(tmp_path / "log.jsonl")] == ["a", "b"]


def test_torn_last_line_is_cut_on_open(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with RunLog(path) as log:
        log.append(rec("a"))
    with open(path, "ab") as f:
        f.write(b'{"job_id": "b", "mod')
    log = RunLog(path)
    assert log.is_done("a") and not log.is_done("b")
    log.append(rec("c"))
    log.close()
    assert [r.job_id for r in read_log(path)] == ["a", "c"]


def damaged(path: Path) -> tuple[bytes, bytes]:
    """A log of jobs a..e whose lines 2 and 4 are corrupt; (the log before, the two lines)."""
    bad = (b'{"job_id": "b", "mod', b"\0" * 40)
    with open(path, "wb") as f:
        f.write(rec("a").to_json() + bad[0] + b"\n" + rec("c").to_json() + bad[1] + b"\n"
                + rec("e").to_json())
    return path.read_bytes(), b"".join(x + b"\n" for x in bad)


def test_corrupt_lines_are_skipped_with_one_warning_naming_file_lines_and_count(
    tmp_path: Path
) -> None:
    path = tmp_path / "log.jsonl"
    damaged(path)
    with pytest.warns(CorruptLinesWarning) as seen:
        assert [r.job_id for r in read_log(path)] == ["a", "c", "e"]
        assert [r.job_id for r in read_log(path)] == ["a", "c", "e"]  # read again: no repeat
    assert len(seen) == 1
    assert f"{path}: skipped 2 corrupt lines (lines 2, 4;" in str(seen[0].message)


def test_a_json_line_that_is_no_record_is_corrupt_too(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'[1, 2]\n{"model": "m"}\n' + rec("a").to_json())
    with pytest.warns(CorruptLinesWarning, match=r"2 corrupt lines \(lines 1, 2;"):
        assert [r.job_id for r in read_log(path)] == ["a"]


def test_opening_for_append_moves_corrupt_lines_aside_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    before, bad = damaged(path)
    with pytest.warns(CorruptLinesWarning, match=r"moved 2 corrupt lines \(lines 2, 4\) to "):
        log = RunLog(path)
    assert not log.is_done("b") and log.is_done("c")
    log.append(rec("f"))
    log.close()
    assert (tmp_path / CORRUPT_NAME).read_bytes() == bad
    valid = [x + b"\n" for x in before.split(b"\n")[:-1] if x + b"\n" not in bad]
    assert path.read_bytes() == b"".join(valid) + rec("f").to_json()
    assert not list(tmp_path.glob("*.tmp"))
def test_duplicate_job_ids_count_once(tmp_path: Path) -> None:
    with RunLog(tmp_path / "log.jsonl") as log:
        log.append(rec("a"))
        log.append(rec("a"))
    assert len(read_log(tmp_path / "log.jsonl")) == 1


def test_an_answer_supersedes_an_earlier_failure(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with RunLog(path) as log:
        log.append(rec("a", FAILED))
        assert log.is_done("a") and not log.is_done("a", retry_failed=True)
        log.append(rec("a"))
    assert read_log(path)[0].status == "ok"


def test_the_logged_request_keeps_every_parameter_and_only_a_digest_of_the_prompt() -> None:
    from vpbatch.log.records import loggable_request

    body = {"model": "m", "temperature": 0.0, "seed": 42, "max_tokens": 64,
            "messages": [{"role": "system", "content": "p"}, {"role": "user", "content": "q"}]}
    logged = loggable_request(body)
    assert {k: logged[k] for k in ("model", "temperature", "seed", "max_tokens")} == {
        "model": "m", "temperature": 0.0, "seed": 42, "max_tokens": 64}
    assert "messages" not in logged and len(logged["prompt_sha256"]) == 64
    other = dict(body, messages=[{"role": "user", "content": "q"}])
    assert loggable_request(other)["prompt_sha256"] != logged["prompt_sha256"]


def test_a_huge_answer_is_rated_in_full_and_logged_as_a_bounded_prefix(tmp_path: Path) -> None:
    text = "Not like me at all. " + "blah " * 100_000  # 500 kB: a runaway generation
    pending = Pending("a" * 32, "m", "vanilla", "v1", 1, 1, 0, {})
    rec = pending.answered(Answer(text, "r" * 200_000, "stop"))
    assert rec.rating == 1  # parsed on the full text
    with RunLog(tmp_path / "log.jsonl") as log:
        log.append(rec)
    line = (tmp_path / "log.jsonl").read_bytes()
    assert len(line) < 3 * TEXT_CAP  # bounded whatever the server sent
    (back,) = read_log(tmp_path / "log.jsonl")
    assert back.raw == text[:TEXT_CAP] and back.rating == 1
    cut = back.extra["truncated"]
    assert cut["raw"] == {"chars": len(text),
                          "sha256": hashlib.sha256(text.encode()).hexdigest()}
    assert cut["reasoning"]["chars"] == 200_000 and len(back.reasoning or "") == TEXT_CAP


def test_a_huge_error_message_is_bounded_too() -> None:
    rec = Record(job_id="b" * 32, model="m", condition="vanilla", version="v1", portrait_id=1,
                 option_id=1, status=FAILED, error="x" * 1_000_000, finish_reason="y" * 10_000)
    assert len(rec.to_json()) < 4_000 and rec.extra["truncated"]["error"]["chars"] == 1_000_000
