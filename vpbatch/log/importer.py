"""Turn the authors' recorded outputs into a run dir: one log line per recorded answer.

Reads `<provider>/<model>_<version>_results.json[.xz]` anywhere under a directory. The files'
field types vary by provider (ids and numbers as strings, correlation lists as JSON-encoded
strings, error rows with no `raw_response`), so every field is coerced here and nowhere else.
Files are decoded in a process pool (xz and JSON decoding dominate) and written in bulk; the
whole tree is read before anything is written, so a bad file leaves the run dir untouched.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vpbatch.benchmark.dims import VANILLA, VERSIONS
from vpbatch.benchmark.parser import parse_official, parse_strict, split_reasoning
from vpbatch.errors import DataError, LogWriteError
from vpbatch.log.lock import run_dir_lock
from vpbatch.log.records import FAILED, OK, TEMPLATE_KEY, Record, job_id
from vpbatch.log.runlog import LOG_NAME, RunLog

__all__ = [
    "ImportSummary",
    "import_official",
    "find_output_files",
    "load_output_file",
    "read_output_rows",
    "BadOutputFile",
    "PROVENANCE_NAME",
]

PROVENANCE_NAME = "import.json"
# The authors' parser raised this when no phrase matched; the answer text follows it.
_UNPARSED_PREFIX = "Could not parse valid Likert response from: "
_CORRELATION_KEYS = ("correlations", "bfi_correlations", "higher_pvq_correlations")
_FILE_RE = re.compile(
    r"^(?P<model>.+)_(?P<version>" + "|".join(sorted(VERSIONS, key=len, reverse=True))
    + r")_results\.json(?:\.xz)?$"
)


class BadOutputFile(DataError):
    """A recorded-outputs file that cannot be read; the message says what is wrong with it."""


@dataclass
class ImportSummary:
    """What an import read, wrote and skipped."""

    files: int
    records: int  # records read from the files
    models: list[str]
    bad: list[tuple[Path, str]]
    written: int = 0  # new log lines (records already in the log are not written again)
    already: int = 0  # records skipped because the log had them
    failed: int = 0  # records with no answer text (API errors, empty answers)
    unparsed: int = 0  # answers the official parser could not score
    seconds: float = 0.0
    per_file: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class _FileResult:
    """One file's records as ready-to-append log lines (built in a worker process)."""

    path: Path
    model: str
    version: str
    lines: list[tuple[str, bytes]]  # (job_id, JSON line)
    failed: int = 0
    unparsed: int = 0
    error: str | None = None


def find_output_files(outputs_dir: Path) -> list[Path]:
    """Every `<model>_<version>_results.json[.xz]` under a directory, sorted.

    Where both `.json` and `.json.xz` exist for one file, the plain `.json` is used.
    """
    found: dict[Path, Path] = {}
    for p in sorted(outputs_dir.rglob("*_results.json*")):
        if not p.is_file() or not p.name.endswith((".json", ".json.xz")):
            continue
        key = p.with_name(p.name.removesuffix(".xz"))
        if key not in found or p.suffix == ".json":
            found[key] = p
    return sorted(found.values())


def _as_int(value: Any, what: str) -> int:
    """An id or rating stored as int, "12", 12.0 or "12.0"; anything else is a bad file."""
    if isinstance(value, bool):
        raise BadOutputFile(f"{what} is a boolean ({value!r})")
    if isinstance(value, int):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise BadOutputFile(f"{what} is not a number: {value!r}") from None
    if not f.is_integer():
        raise BadOutputFile(f"{what} is not a whole number: {value!r}")
    return int(f)


def _as_text(value: Any) -> str | None:
    """Free text as str; empty and missing become None, other JSON types become JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    return orjson.dumps(value).decode()


def _answer_text(row: dict[str, Any]) -> tuple[str | None, str | None]:
    """(answer text, the authors' error message): error rows keep their text in the message."""
    error = row.get("error")
    error_text = None if error is None else str(error)
    raw = row.get("raw_response")
    if raw is not None:
        return (raw if isinstance(raw, str) else str(raw)), error_text
    if error_text is not None and error_text.startswith(_UNPARSED_PREFIX):
        return error_text[len(_UNPARSED_PREFIX) :], error_text
    return None, error_text


_Parsed = tuple[int | None, int | None, str | None]


def _parse(answer: str, memo: dict[str, _Parsed]) -> _Parsed:
    """(official, strict, strict reason); memoised because most answers repeat verbatim."""
    hit = memo.get(answer)
    if hit is None:
        strict = parse_strict(answer)
        hit = memo[answer] = (parse_official(answer), strict.rating, strict.reason)
    return hit


def _record(
    row: dict[str, Any], model: str, version: str, rel: str, ts: float, memo: dict[str, _Parsed]
) -> Record:
    """One recorded answer as a log Record (raises BadOutputFile on unusable ids)."""
    pid = _as_int(row.get("portrait_id"), "portrait_id")
    oid = _as_int(row.get("option_id"), "option_id")
    text, error = _answer_text(row)
    answer, think = split_reasoning(text)
    reasoning = "\n\n".join(r for r in (_as_text(row.get("reasoning")), think) if r) or None
    numeric = row.get("numeric_response")
    extra: dict[str, Any] = {
        "source": "official",
        "file": rel,
        "numeric_response": None if numeric in (None, "") else _as_int(numeric, "numeric_response"),
        "parsed_response": _as_text(row.get("parsed_response")),
    }
    identity = {"source": "official", "model": model, "version": version, "portrait_id": pid,
                "option_id": oid, "condition": VANILLA, "repeat": 0}
    rec = Record(job_id=job_id(identity), model=model, condition=VANILLA, version=version,
                 portrait_id=pid, option_id=oid, raw=text if text is None else answer,
                 reasoning=reasoning, ts=ts, extra=extra)
    # The authors average with the item's v1 record as its template: an unrated v1 record
    # without correlation lists drops the item from their scores, so the scorer must know.
    has_correlations = any(k in row for k in _CORRELATION_KEYS)
    if text is None or not answer.strip():
        extra[TEMPLATE_KEY] = has_correlations
        # No answer came back (API error, empty content): nothing to parse, a failure.
        rec.status, rec.error_kind = FAILED, "permanent"
        rec.error = error or "no answer text recorded"
        return rec
    if error is not None:
        extra["error"] = error  # the authors' parse failure, kept for provenance
    rec.rating, rec.rating_strict, rec.strict_reason = _parse(answer, memo)
    if rec.rating is None or rec.rating_strict is None:
        extra[TEMPLATE_KEY] = has_correlations
    return rec


def read_output_rows(path: Path) -> list[dict[str, Any]]:
    """The records of one authors' outputs file (.json or .json.xz, maybe JSON-in-a-string)."""
    try:
        if path.suffix == ".xz":
            with lzma.open(path) as f:
                blob = f.read()
        else:
            blob = path.read_bytes()
    except (lzma.LZMAError, EOFError) as exc:
        raise BadOutputFile(f"not a readable xz file ({exc})") from None
    try:
        rows = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise BadOutputFile(f"not valid JSON ({exc})") from None
    if isinstance(rows, str):  # a JSON-encoded JSON document
        try:
            rows = orjson.loads(rows)
        except orjson.JSONDecodeError as exc:
            raise BadOutputFile(f"a JSON string that is not a JSON document ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise BadOutputFile("expected a JSON list of records (objects)")
    return rows


def load_output_file(path: Path, root: Path, ts: float = 0.0) -> _FileResult:
    """Read one results file into log lines; problems come back in `error`, never raised."""
    m = _FILE_RE.match(path.name)
    model, version = (m["model"], m["version"]) if m else ("", "")
    res = _FileResult(path=path, model=model, version=version, lines=[])
    try:
        if m is None:
            raise BadOutputFile(
                f"name is not <model>_<version>_results.json with version in {VERSIONS}")
        rel = path.relative_to(root).as_posix()
        memo: dict[str, _Parsed] = {}
        for i, row in enumerate(read_output_rows(path)):
            try:
                rec = _record(row, model, version, rel, ts, memo)
            except BadOutputFile as exc:
                raise BadOutputFile(f"record {i}: {exc}") from None
            res.failed += rec.status == FAILED
            res.unparsed += rec.status == OK and rec.rating is None
            # orjson serialises the dataclass itself: byte-identical to Record.to_json (a
            # test checks) but without dataclasses.asdict's deep copy, 20x faster.
            res.lines.append((rec.job_id, orjson.dumps(rec) + b"\n"))
    except (BadOutputFile, OSError) as exc:
        res.lines, res.error = [], str(exc)
    return res


def _load_all(paths: list[Path], root: Path, ts: float, workers: int) -> list[_FileResult]:
    if workers <= 1 or len(paths) <= 1:
        return [load_output_file(p, root, ts) for p in paths]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        # Few large chunks: each task returns megabytes, so per-task overhead is negligible.
        return list(pool.map(load_output_file, paths, [root] * len(paths), [ts] * len(paths)))


def _append_bulk(run_dir: Path, results: list[_FileResult]) -> tuple[int, int]:
    """Append lines the log lacks, one write per file; returns (written, already there)."""
    log = RunLog(run_dir / LOG_NAME)  # repairs a torn tail and indexes what is done
    seen: set[str] = set()
    written = already = 0
    try:
        fd = os.open(log.path, os.O_WRONLY | os.O_APPEND)
        try:
            for res in results:
                chunk = []
                for jid, line in res.lines:
                    if jid in seen or log.is_done(jid):
                        already += 1
                        continue
                    seen.add(jid)
                    chunk.append(line)
                blob = b"".join(chunk)
                if blob and os.write(fd, blob) != len(blob):
                    raise LogWriteError(f"short write to {log.path} (disk full?); free space "
                                        "and rerun (what was imported is kept)")
                written += len(chunk)
            os.fsync(fd)
        except OSError as exc:  # a full disk: a cut-off last line is cut by the next open
            raise LogWriteError(f"cannot append to {log.path}: {exc.strerror or exc}; free "
                                "space and rerun (what was imported is kept)") from exc
        finally:
            os.close(fd)
    finally:
        log.close()
    return written, already


def _write_provenance(run_dir: Path, outputs_dir: Path, s: ImportSummary) -> None:
    """Add this import to RUN/import.json (a list, so repeated imports stay traceable)."""
    path = run_dir / PROVENANCE_NAME
    history: list[Any] = []
    if path.exists():
        try:
            history = json.loads(path.read_text()).get("imports", [])
        except (ValueError, AttributeError):
            history = []  # an unreadable provenance file is replaced, never fatal
    history.append({
        "source": str(outputs_dir.resolve()),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "files": s.per_file,
        "bad": [{"path": str(p), "error": e} for p, e in s.bad],
        "counts": {"files": s.files, "records": s.records, "written": s.written,
                   "already_in_log": s.already, "failed": s.failed, "unparsed": s.unparsed},
        "models": s.models,
    })
    path.write_text(json.dumps({"imports": history}, indent=1) + "\n")


def import_official(
    outputs_dir: Path, run_dir: Path, *, skip_bad: bool = False, workers: int | None = None
) -> ImportSummary:
    """Import every results file under `outputs_dir` into `run_dir`'s log (idempotent)."""
    with run_dir_lock(Path(run_dir), "import-official"):  # one writer at a time
        return _import(outputs_dir, run_dir, skip_bad=skip_bad, workers=workers)


def _import(
    outputs_dir: Path, run_dir: Path, *, skip_bad: bool, workers: int | None
) -> ImportSummary:
    t0 = time.perf_counter()
    outputs_dir, run_dir = Path(outputs_dir), Path(run_dir)
    if not outputs_dir.is_dir():
        raise DataError(f"{outputs_dir} is not a directory; pass the authors' outputs/final dir")
    paths = find_output_files(outputs_dir)
    if not paths:
        raise DataError(
            f"no <model>_<version>_results.json[.xz] files under {outputs_dir}; pass the "
            "authors' lm_evaluation/outputs/final directory"
        )
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    results = _load_all(paths, outputs_dir, time.time(), n_workers)
    bad = [(r.path, r.error) for r in results if r.error is not None]
    if bad and not skip_bad:
        listing = "; ".join(f"{p}: {e}" for p, e in bad)
        raise DataError(f"{len(bad)} bad file(s), nothing imported: {listing}. Fix or remove "
                        "them, or pass --skip-bad to import the rest.")
    good = [r for r in results if r.error is None]
    run_dir.mkdir(parents=True, exist_ok=True)
    written, already = _append_bulk(run_dir, good)
    summary = ImportSummary(
        files=len(good), records=sum(len(r.lines) for r in good),
        models=sorted({r.model for r in good}), bad=bad, written=written, already=already,
        failed=sum(r.failed for r in good), unparsed=sum(r.unparsed for r in good),
        per_file=[{"path": r.path.relative_to(outputs_dir).as_posix(), "model": r.model,
                   "version": r.version, "records": len(r.lines), "failed": r.failed,
                   "unparsed": r.unparsed} for r in good],
    )
    summary.seconds = time.perf_counter() - t0
    _write_provenance(run_dir, outputs_dir, summary)
    return summary
