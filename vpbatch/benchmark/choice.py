"""Answer modes: `text` (the paper's free text) and `choice` (a JSON object naming one phrase).

In choice mode the prompt is the paper's, byte for byte; the request adds a JSON schema (one
required string property whose enum is the six phrases in the order the prompt lists them) and
the answer is read as JSON: the rating comes from the enum member, and anything else is a parse
failure with its reason, never a guess. `rate` rates an answer in either mode, so the online
path and the batch path log the same fields.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import orjson

from vpbatch.benchmark.dims import PHRASES
from vpbatch.benchmark.parser import parse_official, parse_strict
from vpbatch.errors import DataError

__all__ = [
    "ANSWER_MODES",
    "TEXT",
    "CHOICE",
    "CHOICE_PROPERTY",
    "SCHEMA_NAME",
    "Rating",
    "choice_schema",
    "options_in",
    "parse_choice",
    "rate",
]

TEXT: Final = "text"
CHOICE: Final = "choice"
ANSWER_MODES: Final = (TEXT, CHOICE)
# The one property of the answer object, and the schema's (or tool's) name. Neutral words: a
# server may show the schema to the model, and it must add no instruction to the paper's prompt.
CHOICE_PROPERTY: Final = "answer"
SCHEMA_NAME: Final = "answer"


def choice_schema(options: tuple[str, ...]) -> dict[str, Any]:
    """The JSON schema of a choice answer: {"answer": one of `options`}, nothing else."""
    return {
        "type": "object",
        "properties": {CHOICE_PROPERTY: {"type": "string", "enum": list(options)}},
        "required": [CHOICE_PROPERTY],
        "additionalProperties": False,
    }


@functools.lru_cache(maxsize=32)
def options_in(template: str) -> tuple[str, ...]:
    """The six phrases in the order a prompt template lists them, one per line, as spelt there.

    A reversed version lists them the other way round; the enum keeps the prompt's order, so
    a server that shows the schema to the model keeps the version's manipulation intact.
    """
    listed = [s for s in (line.strip() for line in template.splitlines()) if s in PHRASES]
    if sorted(listed) != sorted(PHRASES):
        raise DataError(
            "a prompt template does not list the six answer phrases one per line "
            f"(found {listed}); restore the template with `vpbatch data fetch`"
        )
    return tuple(listed)


@dataclass(slots=True, frozen=True)
class Rating:
    """What the log keeps of an answer's reading: the ratings, the reason, and the mode."""

    rating: int | None  # what the scorer reads (the official parser's, or the choice's)
    rating_strict: int | None
    strict_reason: str | None  # why it was not scored (strict parser, or choice parse)
    mode: str


def parse_choice(text: str | None) -> tuple[int | None, str | None]:
    """(rating, None) for a JSON object naming one phrase, else (None, why not)."""
    if text is None or not text.strip():
        return None, "empty"
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        # A refusal comes back as prose (OpenAI's `refusal` field): name it for what it is.
        return None, "refusal" if parse_strict(text).reason == "refusal" else "invalid JSON"
    if not isinstance(doc, dict):
        return None, "not an object"
    if CHOICE_PROPERTY not in doc:
        return None, f"no {CHOICE_PROPERTY!r} field"
    if len(doc) > 1:
        return None, "extra fields"
    value = doc[CHOICE_PROPERTY]
    rating = PHRASES.get(value) if isinstance(value, str) else None
    if rating is None:  # exact members only: "Like me" or " like me" is not one
        return None, "not an option"
    return rating, None


def rate(text: str, mode: str = TEXT) -> Rating:
    """An answer's reading in its mode; choice answers get the choice rating in both fields."""
    if mode == CHOICE:
        rating, reason = parse_choice(text)
        return Rating(rating, rating, reason, CHOICE)
    strict = parse_strict(text)
    return Rating(parse_official(text), strict.rating, strict.reason, TEXT)
