"""The log record: one finished job, the contract between engine, importer and scorer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from vpbatch.benchmark.choice import TEXT

__all__ = ["Record", "job_id", "job_ids", "loggable_request", "OK", "FAILED",
           "TEXT_CAP", "TEMPLATE_KEY", "UNRATED_CAUSES", "unrated_cause", "unrated_of"]

OK = "ok"
FAILED = "failed"
# Set by the importer on a failed official record that still carried its correlation lists
# (some of the authors' clients stored them on error rows, some did not).
TEMPLATE_KEY = "correlations_recorded"

# Why an answer that came back measured nothing (Record.unrated): no text at all; a refusal
# (OpenAI's `refusal` field, or text the strict parser reads as one); cut off at max_tokens
# before any rateable text; text that neither parser can rate.
EMPTY, REFUSAL, LENGTH, UNPARSEABLE = "empty", "refusal", "length", "unparseable"
UNRATED_CAUSES = (EMPTY, REFUSAL, LENGTH, UNPARSEABLE)


def unrated_cause(
    text: str | None, rating: int | None, rating_strict: int | None, strict_reason: str | None,
    finish_reason: str | None,
) -> str | None:
    """Why an answer cannot be rated (one of UNRATED_CAUSES), or None when a parser rated it."""
    if rating is not None or rating_strict is not None:
        return None
    if finish_reason == "length":
        return LENGTH
    if text is None or not text.strip():
        return EMPTY
    return REFUSAL if strict_reason == REFUSAL else UNPARSEABLE


def unrated_of(row: dict[str, Any]) -> str | None:
    """A log row's unrated cause: its own field, else derived (lines older than the field)."""
    if row.get("status") != OK:
        return None
    cause = row.get("unrated")
    if isinstance(cause, str):
        return cause
    return unrated_cause(row.get("raw"), row.get("rating"), row.get("rating_strict"),
                         row.get("strict_reason"), row.get("finish_reason"))


def job_id(identity: dict[str, Any]) -> str:
    """A stable id of one record from what identifies it (the importer's recordings).

    A sweep's jobs get theirs from `job_ids`. Canonical JSON (sorted keys) so that dict order
    never changes the id; 32 hex chars of sha256 make collisions irrelevant at any sweep size.
    """
    blob = orjson.dumps(identity, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(blob).hexdigest()[:32]


def job_ids(identity: dict[str, Any], repeats: int) -> list[str]:
    """The ids of repeats 0..repeats-1 of one request: sha256 of its canonical JSON, a newline,
    then the repeat number.

    The repeat sits after the JSON, never inside it, so the identity is hashed once whatever
    keys it gains; compact JSON holds no raw newline, so no identity can mimic another's.
    """
    base = hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS) + b"\n")
    out = []
    for r in range(repeats):
        h = base.copy()
        h.update(b"%d" % r)
        out.append(h.hexdigest()[:32])
    return out


# Body fields that carry the prompt text. The prompt is fixed by (version, item, condition),
# which every record names already; repeating ~1 KB of it on every line would make the log
# 2-3x larger and slower to read for nothing, so the log keeps its digest instead.
_PROMPT_FIELDS = ("messages", "system")


def loggable_request(body: dict[str, Any]) -> dict[str, Any]:
    """The request body as logged: every parameter sent, the prompt text as a sha256 digest."""
    logged = {k: v for k, v in body.items() if k not in _PROMPT_FIELDS}
    prompt = {k: body[k] for k in _PROMPT_FIELDS if k in body}
    blob = orjson.dumps(prompt, option=orjson.OPT_SORT_KEYS)
    logged["prompt_sha256"] = hashlib.sha256(blob).hexdigest()
    return logged


# The most characters a log line keeps of each text a server sends. An answer is rated on its
# full text first (sweep.outcome.Pending.answered); a longer text keeps this prefix, and its
# full length and sha256 go into extra["truncated"][field]. Every real answer fits: 64 tokens
# are ~300 chars, a 4096-token reasoning budget ~16k.
TEXT_CAP = 65_536
_CAPPED = {"raw": TEXT_CAP, "reasoning": TEXT_CAP, "error": 2_000, "finish_reason": 100,
           "batch_id": 200}


def _fingerprint(text: str) -> dict[str, Any]:
    """What a cut text leaves in the log: its full length and digest."""
    blob = text.encode("utf-8", "surrogatepass")
    return {"chars": len(text), "sha256": hashlib.sha256(blob).hexdigest()}


@dataclass(slots=True)
class Record:
    """One JSONL line of `log.jsonl`. `status` is "ok" (an answer came back) or "failed"."""

    job_id: str
    model: str  # the label from the config (or the file's model part on import)
    condition: str  # "vanilla" | "persona:<group>=<value>" | "steer:<Dimension>"
    version: str  # "v1" ... "v3_reversed"
    portrait_id: int
    option_id: int
    repeat: int = 0
    status: str = OK
    raw: str | None = None  # the answer text as returned (reasoning excluded)
    reasoning: str | None = None  # reasoning text kept apart, never parsed
    rating: int | None = None  # the official parser's 1..6, None when unparseable
    rating_strict: int | None = None  # the strict parser's 1..6
    # What rated it: "text" (the parsers) or "choice" (the JSON enum). Right after the ratings,
    # where the log scanner reads it without a scan of the strings before it.
    answer_mode: str = TEXT
    strict_reason: str | None = None  # why strict refused to score (refusal, echo, ...)
    finish_reason: str | None = None  # "stop", "length" (max_tokens cut-off), ...
    # An answer that measured nothing (UNRATED_CAUSES): it counts toward the breaker and
    # fail_on_error as a failure does, yet stays an answer (it was paid for). None = rated.
    unrated: str | None = None
    error_kind: str | None = None  # for failures: "permanent" | "transient" | "rate_limited"
    error: str | None = None  # human-readable reason for a failure (never contains a key)
    usage: dict[str, int] | None = None  # prompt_tokens, completion_tokens, reasoning_tokens
    latency_ms: float | None = None
    attempts: int = 1
    request: dict[str, Any] | None = None  # parameters sent, prompt as digest (no key)
    batch_id: str | None = None  # provider batch id when run through a batch API
    ts: float = 0.0  # unix time the record was written
    extra: dict[str, Any] = field(default_factory=dict)  # provenance (e.g. import source)

    def __post_init__(self) -> None:
        # A server's text is bounded here, where every record is made (online, batch,
        # import, read back): no answer can make one log line unbounded.
        for name in _CAPPED:
            text = getattr(self, name)
            if text is not None and len(text) > _CAPPED[name]:
                setattr(self, name, text[: _CAPPED[name]])
                cut = {**self.extra.get("truncated", {}), name: _fingerprint(text)}
                self.extra = {**self.extra, "truncated": cut}

    def to_json(self) -> bytes:
        """One line of the log, newline included."""
        # orjson serialises dataclasses natively: ~20x faster than asdict(), which deep-copies.
        return orjson.dumps(self) + b"\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

