"""Answer text -> rating: the authors' parser (`official`) and a stricter one (`strict`).

`parse_official` reproduces the evaluation code of holi-lab/ValuePortrait exactly (checked on
every recorded answer of the 33 models): normalise case and whitespace, an exact phrase or
variant wins, else the longest variant contained anywhere wins, ties going to the earlier
phrase. `parse_strict` scores an answer only when it plainly names one option.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from vpbatch.benchmark.dims import PHRASES

__all__ = [
    "VARIANTS",
    "StrictResult",
    "normalize",
    "split_reasoning",
    "parse_official",
    "parse_strict",
]

# Phrase -> its accepted spellings, in the authors' order: the order breaks ties between
# equally long variants, so it is part of the rule, not a detail.
VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "very much like me": ("very much like me", "likes me very much", "like me very much"),
    "like me": ("like me", "likes me"),
    "somewhat like me": (
        "somewhat like me",
        "somewhat likes me",
        "some what like me",
        "some what likes me",
    ),
    "a little like me": ("a little like me", "little like me"),
    "not like me": ("not like me", "does not like me", "doesn't like me", "is not like me"),
    "not like me at all": (
        "not like me at all",
        "not at all like me",
        "does not like me at all",
        "isn't like me at all",
    ),
}

_EXACT: Final[dict[str, int]] = {v: PHRASES[p] for p, vs in VARIANTS.items() for v in vs}
# Longest first; `sorted` is stable, so equal lengths keep the authors' order (their
# collect-then-sort picks the same first element).
_BY_LENGTH: Final[tuple[tuple[str, int], ...]] = tuple(
    sorted(((v, PHRASES[p]) for p, vs in VARIANTS.items() for v in vs), key=lambda t: -len(t[0]))
)
_NAME: Final[dict[int, str]] = {r: p for p, r in PHRASES.items()}


def normalize(text: str) -> str:
    """Lower case, runs of whitespace collapsed to one space, ends stripped (the authors' rule)."""
    return " ".join(text.lower().split())


_THINK = re.compile(r"<think>(.*?)(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def split_reasoning(text: str | None) -> tuple[str, str | None]:
    """Strip `<think>…</think>` blocks: (answer, reasoning or None). An unclosed block is
    all reasoning; a lone `</think>` (servers that eat the opening tag) ends the reasoning."""
    if not text:
        return "", None
    if "<think>" not in text.lower() and "</think>" not in text.lower():
        return text, None
    parts: list[str] = []
    m = _CLOSE.search(text)
    if m is not None and "<think>" not in text[: m.start()].lower():
        parts.append(text[: m.start()])
        text = text[m.end() :]
    parts.extend(m.group(1) for m in _THINK.finditer(text))
    answer = _THINK.sub("", text).strip()
    reasoning = "\n\n".join(p.strip() for p in parts if p.strip())
    return answer, reasoning or None


def parse_official(text: str | None) -> int | None:
    """The authors' rating 1..6 for an answer, None where their parser raised."""
    if text is None:
        return None
    n = normalize(text)
    exact = _EXACT.get(n)
    if exact is not None:
        return exact
    for variant, rating in _BY_LENGTH:
        if variant in n:
            return rating
    return None


@dataclass(slots=True, frozen=True)
class StrictResult:
    """A strict rating, or None with the reason it was not scored."""

    rating: int | None
    reason: str | None


# Each variant as a whole-word pattern; whitespace inside a phrase may be any run of it.
_PATTERNS: Final[tuple[tuple[str, re.Pattern[str], int], ...]] = tuple(
    (v, re.compile(r"(?<![\w'])" + re.escape(v).replace(r"\ ", r"\s+") + r"(?![\w'])"), r)
    for v, r in _BY_LENGTH
)
# Words that change the phrase they precede: "some like me", "very little like me".
_MODIFIERS: Final = frozenset(
    {"some", "very", "so", "quite", "too", "much", "not", "really", "pretty", "more", "less"}
)
# Words after which an option still reads as the answer ("the response is like me").
_LEAD_INS: Final = frozenset(
    {"is", "be", "was", "say", "it's", "its", "answer", "rating", "choose", "select", "pick",
     "response", "feels", "seems"}
)
_PUNCT: Final = frozenset(".,;:!?\"'“”‘’`*_()[]{}<>#\n\r")
_EDGE: Final = "".join(_PUNCT) + " \t-–—"
_REFUSAL: Final = re.compile(
    r"\b(?:i'?m sorry|i am sorry|i apologi[sz]e|i can(?:no|')t|i can not|i'?m unable|"
    r"i am unable|i won't|i will not|as an ai|ai (?:language )?model|"
    r"(?:don't|do not) (?:have|possess) (?:personal|thoughts|feelings|consciousness)|"
    r"not comfortable)"
)
_ECHO_MIN: Final = 3  # three or more different options named = the scale was recited
# Quotes and markup that may wrap an option without changing how it reads.
_WRAP_OPEN: Final = " \t*_\"'“‘`([#>"
_WRAP_CLOSE: Final = " \t*_\"'”’`)]"
# What may end the sentence an option stands in.
_SENTENCE_END: Final = ".!?;:\n\r…"
_SENTENCE_BREAK: Final = re.compile(r"[.!?;:\n\r…]")
# Discourse markers that may open the sentence before the option, set off by a comma, a dash
# or dots ("Honestly, somewhat like me."). A closed class: "People, like me." is prose.
_DISCOURSE: Final = frozenset({
    "honestly", "frankly", "truthfully", "overall", "well", "so", "hmm", "ok", "okay", "yes",
    "no", "yeah", "sure", "ultimately", "personally", "generally", "basically", "then", "alright",
    "in short", "in sum", "in summary", "in conclusion", "all in all", "on balance",
    "on the whole", "to be honest", "to be fair", "i'd say", "i would say", "i think",
    "i guess", "in my view", "in my opinion", "for me", "my answer", "final answer",
})
_NO_MARKUP: Final = str.maketrans("", "", "*_`")  # "**Honestly**, " reads as "Honestly, "
_LEAD: Final = re.compile(r"([a-z' ]+?)\s*(?:,|\.\.\.|…|-+|–|—)")
# A negation in the clause before an option turns it around: "I don't think it's like me".
_NEGATION: Final = re.compile(
    r"\b(?:not|never|hardly|barely|cannot|nor|neither)\b|n't\b|"
    r"\b(?:dont|doesnt|didnt|isnt|wasnt|arent|wouldnt|couldnt|shouldnt|cant|wont)\b"
)
_CLAUSE_BREAK: Final = re.compile(r"[.!?;:\n\r,…–—]|\s-\s")

# How a mention stands in the answer.
_ANSWER, _NEGATED, _MODIFIED, _PROSE = "answer", "negated", "modified", "prose"


@dataclass(slots=True, frozen=True)
class _Mention:
    """One option named in an answer, and how it stands there."""

    start: int
    rating: int
    place: str  # _ANSWER, _NEGATED, _MODIFIED or _PROSE
    ends: bool  # a sentence end (or the end of the text) follows it
    alone: bool  # it is a sentence or line of its own: an answer, not part of an explanation


def _spans(low: str) -> list[tuple[int, int, int]]:
    """(start, end, rating) of each option named, longest first, never overlapping."""
    found: list[tuple[int, int, int]] = []
    flat = " ".join(low.split())
    for variant, pattern, rating in _PATTERNS:
        if variant not in flat:  # cheap filter before the regex
            continue
        for m in pattern.finditer(low):
            if all(m.end() <= s or m.start() >= e for s, e, _ in found):
                found.append((m.start(), m.end(), rating))
    return sorted(found)


def _mentions(low: str) -> list[_Mention]:
    """Every option the answer names, in order, each with its placement."""
    return [_mention(low, s, e, r) for s, e, r in _spans(low)]


def _mention(low: str, start: int, end: int, rating: int) -> _Mention:
    before, after = low[:start], low[end:]
    rest = after.lstrip(_WRAP_CLOSE)
    ends = not rest or rest[0] in _SENTENCE_END
    if rest.startswith("?") and rest[1:].strip():
        return _Mention(start, rating, _PROSE, ends, False)  # a question: "Like me? Not really."
    if not before.strip(_EDGE) or _opener(before):  # it opens the answer
        return _Mention(start, rating, _ANSWER, ends, ends)
    sentence = _SENTENCE_BREAK.split(before)[-1]
    if ends and (not sentence.strip(_WRAP_OPEN) or _opener(sentence)):
        return _Mention(start, rating, _ANSWER, ends, True)  # "The advice is kind. Like me."
    return _Mention(start, rating, _placement(before, after), ends, False)


def _opener(text: str) -> bool:
    """Whether `text` is only a discourse marker set off by punctuation ("Honestly, ")."""
    m = _LEAD.fullmatch(text.strip(_WRAP_OPEN + "\n\r").translate(_NO_MARKUP))
    return m is not None and " ".join(m.group(1).split()) in _DISCOURSE


def _placement(before: str, after: str) -> str:
    """How a mention inside a sentence stands: answer, negated, modified or prose."""
    words = before.split()
    prev_word = words[-1].strip(_EDGE) if words else ""
    prev_char = before[-1]
    if prev_char.isspace() and prev_word in _MODIFIERS:
        return _MODIFIED
    if _NEGATION.search(_CLAUSE_BREAK.split(before)[-1]):
        return _NEGATED
    right = not after.strip() or after[0] in _PUNCT or after.startswith(" (")
    left = prev_char in _PUNCT or prev_word in _LEAD_INS or before.endswith(": ")
    return _ANSWER if left and right else _PROSE


def _refused(low: str, mentions: list[_Mention]) -> StrictResult:
    """Why an answer where no option stands as the answer is not scored."""
    if len({m.rating for m in mentions}) >= _ECHO_MIN:
        return StrictResult(None, "echoes options")
    if _REFUSAL.search(" ".join(low.split())):
        return StrictResult(None, "refusal")
    places = {m.place for m in mentions}
    for place, reason in ((_NEGATED, "negated option"), (_MODIFIED, "modified option"),
                          (_PROSE, "option inside prose")):
        if place in places:
            return StrictResult(None, reason)
    return StrictResult(None, "no option")


def parse_strict(text: str | None) -> StrictResult:
    """Score only an answer that plainly names one option; otherwise say why not."""
    if text is None or not text.strip():
        return StrictResult(None, "empty")
    # Curly apostrophes to straight ones: same length, so match positions stay valid.
    low = text.lower().replace("\u2019", "'")
    exact = _EXACT.get(" ".join(low.split()).strip(_EDGE))
    if exact is not None:  # the common case: the option alone, perhaps with a full stop
        return StrictResult(exact, None)
    mentions = _mentions(low)
    answers = [m for m in mentions if m.place == _ANSWER]
    if not answers:
        return _refused(low, mentions)
    first = answers[0]
    if _REFUSAL.search(" ".join(low[: first.start].split())):
        return StrictResult(None, "refusal")  # "I'm sorry, I can't. Not like me at all."
    # After a clear answer ("Somewhat like me."), an option inside the explanation that
    # follows ("… an AI like me …") is not a second answer; one standing alone is.
    rivals = [m.rating for m in answers[1:] if m.alone or not first.ends]
    ratings = list(dict.fromkeys([first.rating, *rivals]))
    if len(ratings) >= _ECHO_MIN:
        return StrictResult(None, "echoes options")
    if len(ratings) == 2:
        return StrictResult(None, f"two options: {_NAME[ratings[0]]} / {_NAME[ratings[1]]}")
    return StrictResult(first.rating, None)
