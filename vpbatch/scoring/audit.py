"""The parse audit: per model, where the official and the strict parser disagree, and why.

Both parsers are re-run on each answer's raw text, so the audit describes the parsers as
they are now, whatever version wrote the log. It also counts the answers that state a rating
as a number ("I would rate this a 4 out of 6 — mostly like me"): the paper's rule ignores the
number and reads a phrase out of the prose if there is one (here "like me", 5), which the
scores keep as the paper did; the audit shows how often that happened.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from vpbatch.benchmark.parser import StrictResult, parse_official, parse_strict
from vpbatch.log.records import OK

__all__ = ["Example", "ModelAudit", "parse_audit", "Answer", "DIFFERENT_RATING",
           "EXAMPLES_PER_KIND", "number_in"]

EXAMPLES_PER_KIND = 3
# The kind of a disagreement where both parsers scored, but differently.
DIFFERENT_RATING = "different rating"


class Answer(Protocol):
    """What the audit reads of a log line: a `Record`, or anything with these fields."""

    @property
    def model(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def raw(self) -> str | None: ...
    @property
    def condition(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def portrait_id(self) -> int: ...
    @property
    def option_id(self) -> int: ...


@dataclass(slots=True, frozen=True)
class Example:
    """One answer the parsers disagree on, with where it came from."""

    raw: str
    official: int | None
    strict: int | None
    reason: str | None
    version: str
    portrait_id: int
    option_id: int
    condition: str


_Parsed = tuple[int | None, StrictResult, int | None]

# A rating stated as a number: "4 out of 6", "4/6", "I would rate this a 4", "Rating: 4", or
# an answer that is only the digit. Any 1..6 in such a place; the scale's direction is not
# guessed (the prompt gives phrases, not numbers), so the number is shown, never scored.
_NUMBER = re.compile(
    r"\b([1-6])\s*(?:out\s+of|/)\s*6\b"
    r"|\b(?:rate|rating|score|give|answer)\w*\b[^0-9.!?\n]{0,24}?(?<![\d.])\b([1-6])\b(?![\d.]\d)"
    r"|^\W*([1-6])\W*$",
    re.IGNORECASE,
)


def number_in(text: str) -> int | None:
    """The 1..6 rating an answer states as a number, or None when it states none."""
    m = _NUMBER.search(text)
    if m is None:
        return None
    return int(next(g for g in m.groups() if g is not None))


def _parse(raw: str, memo: dict[str, _Parsed]) -> _Parsed:
    hit = memo.get(raw)
    if hit is None:
        hit = memo[raw] = (parse_official(raw), parse_strict(raw), number_in(raw))
    return hit


@dataclass(slots=True)
class ModelAudit:
    """One model's audit: answers seen, how many each parser scored, and the disagreements.

    `reasons` counts strict's reason for every answer it refused; `disagreements` counts
    disagreements by kind (strict's reason, or "different rating"); `examples` keeps a few
    of each kind, in log order. `n_numbers` counts the answers that state a number
    (`number_in`), `n_numbers_official` those of them the official parser still rated from
    a phrase, and `number_examples` keeps a few of the latter.
    """

    model: str
    n: int = 0  # answers (records with status "ok")
    n_failed: int = 0  # records with no answer at all
    n_official_ok: int = 0
    n_strict_ok: int = 0
    n_disagree: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    disagreements: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(default_factory=dict)
    n_numbers: int = 0
    n_numbers_official: int = 0
    number_examples: list[Example] = field(default_factory=list)

    def add(self, rec: Answer, per_kind: int, memo: dict[str, _Parsed] | None = None) -> None:
        """Count one record (`memo` caches parses: most answers repeat verbatim)."""
        if rec.status != OK or rec.raw is None:
            self.n_failed += 1
            return
        self.n += 1
        official, strict, number = _parse(rec.raw, {} if memo is None else memo)
        self.n_official_ok += official is not None
        self.n_strict_ok += strict.rating is not None
        if number is not None:
            self._number(rec, official, strict, per_kind)
        if strict.reason is not None:
            self.reasons[strict.reason] += 1
        if official == strict.rating:
            return
        self.n_disagree += 1
        kind = DIFFERENT_RATING if strict.rating is not None else strict.reason or "no option"
        self.disagreements[kind] += 1
        shown = self.examples.setdefault(kind, [])
        if len(shown) < per_kind:
            shown.append(Example(rec.raw, official, strict.rating, strict.reason, rec.version,
                                 rec.portrait_id, rec.option_id, rec.condition))

    def _number(self, rec: Answer, official: int | None, strict: StrictResult,
                per_kind: int) -> None:
        """Count an answer that states a rating as a number."""
        self.n_numbers += 1
        if official is None:
            return
        self.n_numbers_official += 1
        if len(self.number_examples) < per_kind and rec.raw is not None:
            self.number_examples.append(Example(
                rec.raw, official, strict.rating, strict.reason, rec.version,
                rec.portrait_id, rec.option_id, rec.condition))

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready form (for `vpbatch audit --json`)."""
        return {
            "n": self.n, "n_failed": self.n_failed, "n_official_ok": self.n_official_ok,
            "n_strict_ok": self.n_strict_ok, "n_disagree": self.n_disagree,
            "n_numbers": self.n_numbers, "n_numbers_official": self.n_numbers_official,
            "number_examples": [_example_dict(e) for e in self.number_examples],
            "reasons": dict(self.reasons.most_common()),
            "disagreements": dict(self.disagreements.most_common()),
            "examples": {k: [_example_dict(e) for e in v] for k, v in self.examples.items()},
        }


def _example_dict(e: Example) -> dict[str, object]:
    return {"raw": e.raw, "official": e.official, "strict": e.strict, "reason": e.reason,
            "version": e.version, "portrait_id": e.portrait_id, "option_id": e.option_id,
            "condition": e.condition}


def parse_audit(
    records: Iterable[Answer], *, examples: int = EXAMPLES_PER_KIND
) -> dict[str, ModelAudit]:
    """Per model (in first-seen order): answers, parsed counts, disagreements with examples."""
    out: dict[str, ModelAudit] = {}
    memo: dict[str, _Parsed] = {}
    for rec in records:
        audit = out.get(rec.model)
        if audit is None:
            audit = out[rec.model] = ModelAudit(rec.model)
        audit.add(rec, examples, memo)
    return out
