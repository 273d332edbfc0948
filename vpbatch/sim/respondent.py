"""The simulated respondent: a known latent value profile answering Value Portrait prompts.

Item i's expected rating is `a + b * corr_pvq[i] . (profile + shift)`, where the shift comes
from the persona or steering system message; noise is drawn from a hash of (seed, model,
messages), so an answer is a pure function of the request. `replay:<model>` answers instead
with the authors' recorded output for the item and version the prompt text identifies.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Final

import numpy as np
import orjson

from vpbatch.benchmark.choice import CHOICE_PROPERTY
from vpbatch.benchmark.conditions import (
    PERSONA_PREFIX,
    STEER_PREFIX,
    load_conditions,
    persona_condition,
    steer_condition,
)
from vpbatch.benchmark.dims import PHRASES, PVQ, VERSIONS
from vpbatch.benchmark.layout import resolve_data_dir
from vpbatch.benchmark.tokens import prompt_tokens, text_tokens
from vpbatch.errors import ConfigError
from vpbatch.sim.faults import unit_hash
from vpbatch.sim.replay import ReplayBook, replay_root
from vpbatch.transport.records import Answer, FailureKind, ProviderError, RequestParams

__all__ = [
    "Respondent",
    "Catalogue",
    "catalogue",
    "PROFILES",
    "PERSONA_SHIFTS",
    "DEFAULTS",
    "SIM_PREFIX",
    "REPLAY_PREFIX",
]

SIM_PREFIX: Final = "sim"
REPLAY_PREFIX: Final = "replay:"
_PHRASE_OF: Final = {rating: phrase for phrase, rating in PHRASES.items()}
_NORMAL: Final = NormalDist()

# Built-in latent profiles (centred-score units). Shaped along Schwartz's circle so that
# neighbouring values move together, as in real respondents; distinct levels keep the ranks
# recoverable through the scorer's overlapping item sets.
PROFILES: Final[dict[str, dict[str, float]]] = {
    "default": {
        "Universalism": 0.9, "Benevolence": 0.8, "Self_Direction": 0.6, "Security": 0.2,
        "Tradition": -0.1, "Conformity": -0.2, "Hedonism": -0.4, "Stimulation": -0.5,
        "Achievement": -0.6, "Power": -0.9,
    },
    "universalist": {
        "Universalism": 1.2, "Benevolence": 0.9, "Self_Direction": 0.6, "Security": 0.2,
        "Tradition": 0.0, "Conformity": -0.2, "Hedonism": -0.4, "Stimulation": -0.5,
        "Achievement": -0.8, "Power": -1.1,
    },
    "achiever": {
        "Power": 1.0, "Achievement": 0.9, "Stimulation": 0.6, "Hedonism": 0.5,
        "Conformity": 0.1, "Tradition": -0.2, "Security": -0.3, "Self_Direction": -0.5,
        "Benevolence": -0.8, "Universalism": -1.0,
    },
    "traditionalist": {
        "Tradition": 1.1, "Conformity": 0.9, "Security": 0.7, "Universalism": 0.3,
        "Benevolence": 0.1, "Power": -0.1, "Achievement": -0.3, "Self_Direction": -0.6,
        "Stimulation": -0.8, "Hedonism": -1.0,
    },
    "explorer": {
        "Self_Direction": 1.1, "Hedonism": 1.0, "Stimulation": 0.9, "Benevolence": 0.1,
        "Universalism": 0.0, "Achievement": -0.1, "Power": -0.3, "Security": -0.6,
        "Conformity": -0.9, "Tradition": -1.1,
    },
}

# Known persona shifts by persona name (configs/personas.toml). Directions follow the
# European Social Survey's broad patterns; every entry is >= 0.4 so its sign survives noise.
PERSONA_SHIFTS: Final[dict[str, dict[str, float]]] = {
    "gender=male": {"Power": 0.5, "Achievement": 0.4, "Benevolence": -0.4, "Universalism": -0.4},
    "gender=female": {"Benevolence": 0.5, "Universalism": 0.4, "Power": -0.5},
    "age=20-39": {"Stimulation": 0.6, "Hedonism": 0.5, "Tradition": -0.5, "Security": -0.4},
    "age=40-59": {"Achievement": 0.4, "Security": 0.4, "Stimulation": -0.4},
    "age=60-79": {"Tradition": 0.5, "Security": 0.5, "Stimulation": -0.5, "Hedonism": -0.4},
    "age=80+": {"Tradition": 0.7, "Conformity": 0.6, "Stimulation": -0.7, "Hedonism": -0.6},
    "politics=left-wing": {"Universalism": 0.7, "Tradition": -0.5, "Power": -0.4},
    "politics=centered": {"Security": 0.4, "Conformity": 0.4, "Stimulation": -0.4},
    "politics=right-wing": {"Tradition": 0.6, "Security": 0.5, "Universalism": -0.6},
    "education=less than high school": {"Conformity": 0.5, "Tradition": 0.5,
                                        "Self_Direction": -0.5},
    "education=high school": {"Security": 0.4, "Conformity": 0.4, "Self_Direction": -0.4},
    "education=bachelor's degree": {"Self_Direction": 0.5, "Achievement": 0.4,
                                    "Tradition": -0.4},
    "education=master's degree": {"Universalism": 0.5, "Self_Direction": 0.5,
                                  "Conformity": -0.4, "Tradition": -0.4},
    "race=asian": {"Conformity": 0.5, "Security": 0.4, "Hedonism": -0.4},
    "race=black": {"Tradition": 0.5, "Benevolence": 0.4, "Hedonism": -0.4},
    "race=hispanic": {"Benevolence": 0.5, "Tradition": 0.4, "Self_Direction": -0.4},
    "race=white": {"Self_Direction": 0.4, "Hedonism": 0.4, "Tradition": -0.4},
    "religion=atheist": {"Self_Direction": 0.5, "Hedonism": 0.4, "Tradition": -0.8},
    "religion=hindu": {"Tradition": 0.7, "Conformity": 0.4, "Hedonism": -0.4},
    "religion=jewish": {"Tradition": 0.6, "Benevolence": 0.4, "Stimulation": -0.4},
    "religion=muslim": {"Tradition": 0.8, "Conformity": 0.5, "Hedonism": -0.5},
    "religion=protestant": {"Tradition": 0.6, "Benevolence": 0.4, "Hedonism": -0.4},
    "income=<30k": {"Security": 0.5, "Power": -0.4, "Achievement": -0.4},
    "income=30k-100k": {"Security": 0.4, "Achievement": 0.4, "Stimulation": -0.4},
    "income=100k+": {"Power": 0.6, "Achievement": 0.5, "Universalism": -0.4},
}

DEFAULTS: Final[dict[str, Any]] = {
    "profile": "default",  # a PROFILES name or a {Dimension: level} table
    "seed": 0,
    "noise": 0.6,  # sd of the per-answer noise, in rating points
    "a": 3.5,  # the scale's midpoint
    "b": 1.5,  # rating points per unit of correlation x latent level
    "steer_strength": 1.5,  # latent shift of the value a steering message names
    "persona_scale": 1.0,  # multiplies every persona shift
    "personas": {},  # {persona name: {Dimension: shift}} overriding PERSONA_SHIFTS
    "p_verbose": 0.0,  # share of answers wrapped in extra words (the parser must cope)
    "p_refuse": 0.0,  # share of answers that are refusals (unparseable, never guessed)
    # Response biases, each the chance an answer ignores the latent rating (0 leaves every
    # answer as it was): the phrase listed first, the one listed last, or one fixed phrase.
    "primacy": 0.0,
    "recency": 0.0,
    "straightline": 0.0,
    "conditions_file": None,  # personas/steering texts; None = configs/personas.toml
    "replay_dir": None,  # recorded outputs; None = <data>/lm_evaluation/outputs/final
}

_BIASES: Final = ("straightline", "primacy", "recency")
_STEER = re.compile(r"You value ([A-Za-z][A-Za-z_\- ]*?)\s*\.")
_VERBOSE = ("I would say: {}.", "{}", "My answer: {}", "Honestly, {}.")
_REFUSAL = "I'm an AI assistant, so I don't have personal thoughts to compare with this."


def _squash(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Every benchmark prompt rendered once: user text -> (version, item row)."""

    portrait_id: np.ndarray
    option_id: np.ndarray
    corr_pvq: np.ndarray  # (520, 10), NaN read as 0
    by_text: dict[str, tuple[str, int]]

    def lookup(self, text: str) -> tuple[str, int] | None:
        hit = self.by_text.get(text)
        # Whitespace may be re-wrapped by a client; a squashed copy is the fallback key.
        return hit if hit is not None else self.by_text.get(_squash(text))


@functools.lru_cache(maxsize=4)
def catalogue(root: Path) -> Catalogue:
    """The catalogue of the dataset at `root` (built once per process: 3120 prompts)."""
    from vpbatch.benchmark.dataset import load_dataset
    from vpbatch.benchmark.prompts import item_prompt

    ds = load_dataset(root)
    by_text: dict[str, tuple[str, int]] = {}
    for version in VERSIONS:
        for i in range(ds.n_items):
            text = item_prompt(ds, version, i)
            by_text[text] = (version, i)
            by_text.setdefault(_squash(text), (version, i))
    corr = np.nan_to_num(np.asarray(ds.corr["pvq"], dtype=np.float64))
    return Catalogue(ds.portrait_id, ds.option_id, corr, by_text)


def _vector(levels: Mapping[str, float], where: str) -> np.ndarray:
    unknown = sorted(set(levels) - set(PVQ))
    if unknown:
        raise ConfigError(f"{where}: unknown value(s) {unknown}; use names from {', '.join(PVQ)}")
    return np.array([float(levels.get(d, 0.0)) for d in PVQ])


def _as_dict(vec: np.ndarray) -> dict[str, float]:
    return {d: float(x) for d, x in zip(PVQ, vec, strict=True)}


def _dimension(name: str) -> str | None:
    """A value name as written in a message ("Self-Direction") -> the dataset's spelling."""
    key = re.sub(r"[\s\-]+", "_", name.strip()).lower()
    return next((d for d in PVQ if d.lower() == key), None)


def _parse_model(model: str, settings: Mapping[str, Any]) -> tuple[str, str]:
    """("sim", profile name) or ("replay", file model) from the request's model field."""
    if model.startswith(REPLAY_PREFIX):
        return "replay", model[len(REPLAY_PREFIX) :]
    if model == SIM_PREFIX:
        profile = settings.get("profile", DEFAULTS["profile"])
        return "sim", profile if isinstance(profile, str) else "custom"
    if model.startswith(SIM_PREFIX + ":"):
        return "sim", model[len(SIM_PREFIX) + 1 :]
    raise ConfigError(
        f"the simulator has no model {model!r}; use \"sim\", \"sim:<profile>\" "
        f"({', '.join(PROFILES)}) or \"replay:<recorded model>\""
    )


class Respondent:
    """One simulated (or replayed) model; `answer` is sync and deterministic."""

    __slots__ = (
        "model", "kind", "profile", "settings", "_cat", "_latent", "_shifts", "_by_text",
        "_book", "_replay_model",
    )

    def __init__(
        self,
        model: str,
        kind: str,
        profile: dict[str, float],
        settings: dict[str, Any],
        cat: Catalogue,
        book: ReplayBook | None = None,
        replay_model: str | None = None,
    ) -> None:
        self.model = model
        self.kind = kind
        self.profile = profile
        self.settings = settings
        self._cat = cat
        self._latent = _vector(profile, f"profile of {model}")
        self._book = book
        self._replay_model = replay_model
        self._shifts: dict[str, np.ndarray] = {}
        self._by_text: dict[str, str] = {}  # system message -> condition
        self._load_conditions()

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any], *, model: str, data: Path | None = None
    ) -> Respondent:
        """Build from a model's `[models.sim]` table and its model id ("sim:explorer", ...)."""
        unknown = sorted(set(settings) - set(DEFAULTS))
        if unknown:
            raise ConfigError(
                f"sim settings: unknown key(s) {unknown}; allowed: {', '.join(DEFAULTS)}"
            )
        s = {**DEFAULTS, **settings}
        for key in _BIASES:
            if not 0.0 <= float(s[key]) <= 1.0:
                raise ConfigError(f"sim.{key} = {s[key]} must be a chance in [0, 1]")
        if sum(float(s[key]) for key in _BIASES) > 1.0:
            raise ConfigError(f"sim: {' + '.join(_BIASES)} add up to more than 1; lower them")
        kind, name = _parse_model(model, s)
        root = resolve_data_dir(data)
        cat = catalogue(root)
        if kind == "replay":
            book = _book(Path(s["replay_dir"]) if s["replay_dir"] else replay_root(root))
            if name not in book.models():
                raise ConfigError(
                    f"no recorded outputs for {name!r}; replay one of: {', '.join(book.models())}"
                )
            return cls(model, kind, {}, s, cat, book, name)
        if model == SIM_PREFIX and isinstance(s["profile"], Mapping):
            profile = _as_dict(_vector(s["profile"], "sim.profile"))
        elif name in PROFILES:
            profile = dict(PROFILES[name])
        else:
            raise ConfigError(
                f"unknown simulated profile {name!r}; use one of {', '.join(PROFILES)} "
                "or give sim.profile as a {Dimension = level} table"
            )
        return cls(model, kind, profile, s, cat)

    # -- conditions -------------------------------------------------------------------------

    def _load_conditions(self) -> None:
        conds = load_conditions(self.settings["conditions_file"])
        for name, persona in conds.personas.items():
            self._by_text[persona.text.strip()] = persona_condition(name)
        for dim, text in conds.steering.items():
            self._by_text[text.strip()] = steer_condition(dim)

    def persona_shift(self, condition: str) -> dict[str, float]:
        """The latent shift a persona applies ("persona:gender=male" or "gender=male")."""
        return _as_dict(self._persona_vec(condition.removeprefix(PERSONA_PREFIX)))

    def _persona_vec(self, name: str) -> np.ndarray:
        vec = self._shifts.get(name)
        if vec is None:
            table = self.settings["personas"].get(name) or PERSONA_SHIFTS.get(name)
            vec = _vector(table, f"persona {name}") if table else _hashed_shift(name)
            vec = vec * float(self.settings["persona_scale"])
            self._shifts[name] = vec
        return vec

    def _shift_vec(self, messages: Sequence[Mapping[str, str]]) -> np.ndarray:
        system = "\n".join(m["content"] for m in messages if m.get("role") == "system").strip()
        if not system:
            return np.zeros(len(PVQ))
        condition = self._by_text.get(system)
        if condition is None:
            steer = _STEER.search(system)
            dim = _dimension(steer.group(1)) if steer else None
            # An unknown persona still shifts, by a vector its own text determines.
            condition = steer_condition(dim) if dim else persona_condition(system)
        if condition.startswith(STEER_PREFIX):
            vec = np.zeros(len(PVQ))
            vec[PVQ.index(condition.removeprefix(STEER_PREFIX))] = float(
                self.settings["steer_strength"])
            return vec
        return self._persona_vec(condition.removeprefix(PERSONA_PREFIX))

    def shift_for(self, messages: Sequence[Mapping[str, str]]) -> dict[str, float]:
        """The latent shift the system message(s) of `messages` apply."""
        return _as_dict(self._shift_vec(messages))

    # -- answering --------------------------------------------------------------------------

    def expected(self, messages: Sequence[Mapping[str, str]]) -> float | None:
        """The noise-free rating for these messages; None when the prompt is not an item."""
        hit = self._cat.lookup(_user_text(messages))
        if hit is None:
            return None
        latent = self._latent + self._shift_vec(messages)
        s = self.settings
        return float(s["a"]) + float(s["b"]) * float(self._cat.corr_pvq[hit[1]] @ latent)

    def answer(self, messages: list[dict[str, str]], params: RequestParams) -> Answer:
        """The answer to one chat request: a function of (seed, model, messages) only.

        Asked for a choice (`params.choice`), it answers as a schema-constrained decoder
        would: the JSON object naming its phrase, never wrapped in words or refused.
        """
        if self.kind == "replay":
            if params.choice is not None:
                raise ProviderError(
                    FailureKind.PERMANENT,
                    "replay: the recorded answers are free text and cannot be re-cast as a "
                    'choice; replay them with answer = "text"', status=400)
            return self._replay(messages)
        # One digest of the whole request drives every random choice (noise, answer style).
        blob = orjson.dumps([self.settings["seed"], self.model, messages],
                            option=orjson.OPT_SORT_KEYS)
        digest = hashlib.blake2b(blob, digest_size=16).digest()
        u_noise = (int.from_bytes(digest[:8], "big") + 0.5) / 2.0**64
        u_style = int.from_bytes(digest[8:], "big") / 2.0**64
        mu = self.expected(messages)
        base = float(self.settings["a"]) if mu is None else mu
        z = _NORMAL.inv_cdf(u_noise)
        rating = int(min(6, max(1, round(base + float(self.settings["noise"]) * z))))
        rating = self._biased(rating, blob, messages)
        text = _PHRASE_OF[rating]
        if params.choice is not None:
            text = orjson.dumps({CHOICE_PROPERTY: text}).decode()
            return Answer(text, None, "stop", _usage(messages, text, None))
        p_refuse = float(self.settings["p_refuse"])
        if u_style < p_refuse:
            text = _REFUSAL
        elif u_style < p_refuse + float(self.settings["p_verbose"]):
            text = _VERBOSE[digest[0] % len(_VERBOSE)].format(text)
        return Answer(text, None, "stop", _usage(messages, text, None))

    def _biased(self, rating: int, blob: bytes, messages: Sequence[Mapping[str, str]]) -> int:
        """The rating after the response biases: the first or last phrase listed, or the
        respondent's one fixed phrase; unchanged (and no draw made) when all are 0."""
        s = self.settings
        straight, first, last = (float(s[k]) for k in _BIASES)
        hit = self._cat.lookup(_user_text(messages))
        if not straight + first + last or hit is None:
            return rating
        # A draw of its own, so the noise and style draws stay what they always were.
        u = int.from_bytes(hashlib.blake2b(blob, digest_size=8, person=b"bias").digest(),
                           "big") / 2.0**64
        top_first = not hit[0].endswith("_reversed")  # v_k lists "very much like me" first
        if u < straight:
            return 1 + int(unit_hash("straightline", s["seed"], self.model) * 6)
        if u < straight + first:
            return 6 if top_first else 1
        if u < straight + first + last:
            return 1 if top_first else 6
        return rating

    def _replay(self, messages: Sequence[Mapping[str, str]]) -> Answer:
        assert self._book is not None and self._replay_model is not None
        hit = self._cat.lookup(_user_text(messages))
        if hit is None:
            raise ProviderError(
                FailureKind.PERMANENT,
                "replay: the prompt is not one of the benchmark's 3120 (version, item) prompts",
                status=400,
            )
        version, i = hit
        pid, oid = int(self._cat.portrait_id[i]), int(self._cat.option_id[i])
        rec = self._book.get(self._replay_model, version, pid, oid)
        if rec is None:
            raise ProviderError(
                FailureKind.PERMANENT,
                f"replay: {self._replay_model} has no recorded answer for {version} ({pid}, {oid})",
                status=404,
            )
        if rec.status != 200 or rec.text is None:
            kind = FailureKind.TRANSIENT if rec.status >= 500 else FailureKind.PERMANENT
            raise ProviderError(kind, f"replay: {rec.error}", status=rec.status)
        return Answer(rec.text, rec.reasoning, rec.finish_reason,
                      _usage(messages, rec.text, rec.reasoning))


@functools.lru_cache(maxsize=4)
def _book(root: Path) -> ReplayBook:
    # One book per process: respondents of different replay models share its cache and lock.
    return ReplayBook(root)


def _hashed_shift(name: str) -> np.ndarray:
    """A fixed shift for a persona no table names: +0.5 on one value, -0.5 on another."""
    up = int(unit_hash("persona-up", name) * len(PVQ))
    down = (up + 1 + int(unit_hash("persona-down", name) * (len(PVQ) - 1))) % len(PVQ)
    vec = np.zeros(len(PVQ))
    vec[up], vec[down] = 0.5, -0.5
    return vec


def _user_text(messages: Sequence[Mapping[str, str]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content", ""))
    return ""


def _usage(
    messages: Sequence[Mapping[str, str]], text: str, reasoning: str | None
) -> dict[str, int]:
    # The engine's own estimate (vpbatch.benchmark.tokens): no tokenizer in the simulator.
    out = {"prompt_tokens": prompt_tokens(messages),
           "completion_tokens": max(1, int(text_tokens(text)))}
    if reasoning:
        out["reasoning_tokens"] = int(text_tokens(reasoning))
        out["completion_tokens"] += out["reasoning_tokens"]
    return out
