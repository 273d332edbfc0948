"""What to tell a user whose model's answers measure nothing: the cause, in words, and the fix.

An unrated answer (`Record.unrated`) came back and was paid for, but neither parser can rate
it. The breaker (`sweep.breaker`) counts it as it counts a failure; when a streak of them stops
the model, `advice_for` turns one example answer into the message: what the model did, and
which setting to change.
"""

from __future__ import annotations

from vpbatch.benchmark.choice import CHOICE
from vpbatch.log.records import EMPTY, LENGTH, REFUSAL, Record

__all__ = ["describe", "advice_for", "example", "UNRATED_PREFIX"]

UNRATED_PREFIX = "unrated: "  # how the breaker keys an unrated cause among failure causes
_EXAMPLE_CHARS = 60

_WORDS = {
    EMPTY: "empty answers",
    REFUSAL: "refusals",
    LENGTH: "cut off at max_tokens before any rateable text",
}


def describe(cause: str) -> str:
    """An unrated cause in a few words ("refusals", "cut off at max_tokens ...")."""
    return _WORDS.get(cause, "text neither parser can rate")


def example(text: str | None) -> str:
    """An answer as quoted in a message: its first line, at most 60 characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= _EXAMPLE_CHARS else line[: _EXAMPLE_CHARS - 1] + "…"


def _max_tokens(record: Record) -> int | None:
    req = record.request or {}
    for key in ("max_completion_tokens", "max_tokens"):
        if isinstance(req.get(key), int):
            return int(req[key])
    return None


def _reasoned(record: Record) -> bool:
    """Whether the answer spent tokens on reasoning (a field, or a count the server gave)."""
    return bool(record.reasoning) or bool((record.usage or {}).get("reasoning_tokens"))


def advice_for(record: Record) -> str:
    """The cause of one unrated answer and its fix, as the stop message says them."""
    now = _max_tokens(record)
    budget = f" (now {now})" if now is not None else ""
    shown = example(record.raw)
    if record.unrated == LENGTH:
        if not shown and _reasoned(record):
            return (f"the model spent its whole max_tokens on reasoning: raise max_tokens"
                    f"{budget} or lower the reasoning effort")
        if not shown:
            return f"every answer ran out of max_tokens{budget} before any text: raise max_tokens"
        return (f"answers are cut off at max_tokens{budget} before they name a phrase, "
                f"e.g. '{shown}': raise max_tokens")
    if record.unrated == EMPTY:
        return ("the model answers with empty content: check the server's chat template and "
                "logs (a reasoning model may need reasoning = true and a larger max_tokens)")
    if record.unrated == REFUSAL:
        return f"the model refuses: '{shown}'"
    if record.answer_mode == CHOICE:
        return (f"answers are not a JSON object naming one of the six phrases, e.g. '{shown}': "
                "check that the server honours response_format (choice_format), or try "
                'answer = "text"')
    return f"answers are not one of the six phrases, e.g. '{shown}': try answer = \"choice\""
