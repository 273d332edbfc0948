"""`provider = "gemini"`: Google's native Gemini API (`generateContent`) over HTTP (no SDK).

Its own wire: `contents` and `systemInstruction`, a `generationConfig` with the thinking
budget, `x-goog-api-key`. Safety stops (finishReason SAFETY, RECITATION, ...) and a blocked
prompt (promptFeedback.blockReason) are failures with the reason, never unrated text. Google's
error bodies say more than the status (RetryInfo's retryDelay, API_KEY_INVALID on a 400), so
the provider classifies them with `GeminiFailures`. Batch mode: `gemini_batch`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from vpbatch.benchmark.choice import CHOICE_PROPERTY
from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.gemini_batch import GeminiBatchAPI
from vpbatch.providers.openai_compat import base_url_of, merge_extra
from vpbatch.providers.spec import ProviderSpec, ReasoningRules, Setting, register
from vpbatch.transport.failures import Failures, redact
from vpbatch.transport.records import Answer, FailureKind, ProviderError, RequestParams

__all__ = ["GeminiGenerate", "GeminiFailures", "GEMINI_BASE_URL", "SAFETY_CATEGORIES",
           "THRESHOLDS", "thinking_budget", "google_error", "GoogleError", "check_settings",
           "SPEC"]

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
# The harm categories a text request is rated in (safety_threshold sets all of them).
SAFETY_CATEGORIES = ("HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_HATE_SPEECH",
                     "HARM_CATEGORY_SEXUALLY_EXPLICIT", "HARM_CATEGORY_DANGEROUS_CONTENT")
_CATEGORIES = (*SAFETY_CATEGORIES, "HARM_CATEGORY_CIVIC_INTEGRITY")  # what Google accepts
THRESHOLDS = ("BLOCK_NONE", "OFF", "BLOCK_ONLY_HIGH", "BLOCK_MEDIUM_AND_ABOVE",
              "BLOCK_LOW_AND_ABOVE", "HARM_BLOCK_THRESHOLD_UNSPECIFIED")
THINKING_LEVELS = ("minimal", "low", "medium", "high")
# The reasoning guess: 2.5 and later (Flash-Lite thinks only when asked), the 2.0 previews.
_GUESS = re.compile(r"^(?!.*flash-lite).*(gemini-(2\.5|[3-9])|thinking)")
# Models whose thinking vpbatch fits to max_tokens; 3 and later keep their own default level.
_BUDGETED = re.compile(r"gemini-2\.5")
# Budget ranges per 2.5 family (Google's thinking guide): Pro cannot turn thinking off.
_PRO = re.compile(r"gemini-2\.5-pro")
_LITE = re.compile(r"gemini-2\.5-flash-lite")
_RANGES = ((_PRO, 128, 32768), (_LITE, 512, 24576))
_FLASH_RANGE = (1, 24576)
# finishReason values that mean the answer was withheld: a failure, never text to rate.
_WITHHELD = {
    "SAFETY": "the safety filter withheld the answer",
    "RECITATION": "the answer was withheld as recitation of training data",
    "LANGUAGE": "the answer was withheld: its language is not supported",
    "BLOCKLIST": "the answer contained a blocklisted term",
    "PROHIBITED_CONTENT": "the answer was withheld as prohibited content",
    "SPII": "the answer was withheld for sensitive personal information",
    "IMAGE_SAFETY": "the answer was withheld by the image safety filter",
}
_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}
_ROLES = {"user": "user", "assistant": "model"}


def thinking_budget(model: str, max_tokens: int) -> int:
    """A budget within `max_tokens` that leaves room for the answer, in the family's range."""
    low, high = next(((lo, hi) for rx, lo, hi in _RANGES if rx.search(model)), _FLASH_RANGE)
    return min(high, max(low, max_tokens - max(64, max_tokens // 4)))


# -- failures ---------------------------------------------------------------------------------

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


class GoogleError(NamedTuple):
    """What a Google error body says beyond its HTTP status."""

    status: str = ""  # google.rpc status name: RESOURCE_EXHAUSTED, INVALID_ARGUMENT, ...
    reason: str = ""  # ErrorInfo's reason: API_KEY_INVALID, ...
    delay: float | None = None  # RetryInfo's retryDelay in seconds
    message: str = ""


def google_error(raw: bytes) -> GoogleError:
    """The google.rpc.Status of an error body (`{"error": {code, message, status, details}}`)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return GoogleError()
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict):
        return GoogleError()
    reason, delay = "", None
    for d in err.get("details") or []:
        if not isinstance(d, dict):
            continue
        if d.get("@type") == _ERROR_INFO:
            reason = str(d.get("reason") or "")
        elif d.get("@type") == _RETRY_INFO:
            m = _DELAY.match(str(d.get("retryDelay") or ""))
            delay = float(m.group(1)) if m else None
    return GoogleError(str(err.get("status") or ""), reason, delay, str(err.get("message") or ""))


class GeminiFailures(Failures):
    """Failures read as Google writes them: RetryInfo's delay, a bad key's 400 as auth."""

    __slots__ = ()

    def status(
        self, status: int, headers: Mapping[str, str], raw: bytes, *, where: str = ""
    ) -> ProviderError:
        err = super().status(status, headers, raw, where=where)
        google = google_error(raw)
        if google.reason == "API_KEY_INVALID" or google.status == "UNAUTHENTICATED":
            # Google answers a wrong key with 400 INVALID_ARGUMENT: stop the model at once.
            var = f"${self.key_env}" if self.key_env else "the request (no api_key_env set)"
            why = google.reason or google.status
            return ProviderError(FailureKind.PERMANENT, f"{self.label}{where} HTTP {status}: "
                                 f"the key in {var} was rejected ({why}); check the key and "
                                 "api_key_env", status=status, auth=True)
        if err.auth and google.message:  # 403: keep Google's word (API not enabled, ...)
            detail = redact(google.message, self.key)[:300]
            return ProviderError(err.kind, f"{err.message} (Google: {detail})",
                                 status=status, auth=True)
        if err.kind is FailureKind.RATE_LIMITED and err.retry_after is None:
            err.retry_after = google.delay  # RetryInfo: Google's word on when to come back
        return err


# -- the wire -------------------------------------------------------------------------------


class GeminiGenerate:
    """The generateContent format for one model (the `Wire` contract)."""

    __slots__ = ("cfg", "base_url", "url", "model")

    label = "gemini"
    make_failures = GeminiFailures  # Google's error bodies (HttpProvider reads this hook)

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.base_url = base_url_of(cfg, GEMINI_BASE_URL)
        self.model = cfg.model.removeprefix("models/")  # Google's resource name, or the bare id
        self.url = f"{self.base_url}/models/{self.model}:generateContent"
        _raise_bad_settings(cfg)

    def body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        body: dict[str, Any] = {"contents": [
            {"role": _ROLES.get(m["role"], "user"), "parts": [{"text": m["content"]}]}
            for m in messages if m["role"] != "system"]}
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        gen: dict[str, Any] = {"candidateCount": 1, "maxOutputTokens": params.max_tokens}
        if params.temperature is not None:
            gen["temperature"] = params.temperature
        if params.seed is not None:
            gen["seed"] = params.seed
        thinking = self._thinking(params)
        if thinking is not None:
            gen["thinkingConfig"] = thinking
        if params.choice is not None:
            gen["responseMimeType"] = "application/json"
            gen["responseSchema"] = response_schema(params.choice)
        body["generationConfig"] = gen
        safety = safety_settings(self.cfg.settings)
        if safety:
            body["safetySettings"] = safety
        return merge_extra(body, self.cfg.extra_body)

    def _thinking(self, params: RequestParams) -> dict[str, Any] | None:
        """The thinkingConfig: the settings' budget or level, else one fitted to max_tokens."""
        s = self.cfg.settings
        out: dict[str, Any] = {"includeThoughts": bool(s.get("include_thoughts"))}
        if s.get("thinking_level"):
            return {**out, "thinkingLevel": str(s["thinking_level"]).upper()}
        if s.get("thinking_budget") is not None:
            return {**out, "thinkingBudget": int(s["thinking_budget"])}
        if not _BUDGETED.search(self.model.lower()):
            return None  # 3 and later: the model's own level; 2.0 and older: no thinking
        if not params.reasoning:
            if _PRO.search(self.model):
                return None  # cannot be turned off; refused before (check_settings)
            return {**out, "thinkingBudget": 0}
        budget = thinking_budget(self.model, params.max_tokens)
        if budget >= params.max_tokens:
            raise ProviderError(
                FailureKind.PERMANENT,
                f"gemini {self.model}: thinking needs max_tokens above {budget} (got "
                f"{params.max_tokens}); raise max_tokens or set thinking_budget")
        return {**out, "thinkingBudget": budget}

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if key:
            headers["x-goog-api-key"] = key
        return headers

    def answer(
        self, payload: dict[str, Any], headers: Mapping[str, str], failures: Failures
    ) -> Answer:
        err = payload.get("error")
        if isinstance(err, dict) and isinstance(err.get("code"), int):
            raise failures.status(err["code"], headers, orjson.dumps(payload))
        feedback = payload.get("promptFeedback")
        block = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if block:
            why = feedback.get("blockReasonMessage") if isinstance(feedback, dict) else None
            raise failures.permanent(f"the prompt was blocked ({block}"
                                     + (f": {why}" if why else "") + ")")
        cands = payload.get("candidates")
        if not isinstance(cands, list) or not cands or not isinstance(cands[0], dict):
            if "usageMetadata" in payload:
                raise failures.transient("the answer has no candidates")
            raise failures.not_an_answer(self.url, headers, orjson.dumps(payload),
                                         "JSON without candidates")
        return _read_candidate(cands[0], payload.get("usageMetadata"), failures)


def _read_candidate(cand: dict[str, Any], usage: Any, failures: Failures) -> Answer:
    finish = str(cand.get("finishReason") or "")
    if finish in _WITHHELD:
        more = cand.get("finishMessage")
        raise failures.permanent(f"{_WITHHELD[finish]} (finishReason {finish}"
                                 + (f": {more}" if more else "") + _blocked_ratings(cand) + ")")
    if finish == "OTHER":
        raise failures.transient("the answer stopped for an unstated reason (finishReason OTHER)")
    content = cand.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    text: list[str] = []
    thoughts: list[str] = []
    for p in parts if isinstance(parts, list) else []:
        if isinstance(p, dict) and isinstance(p.get("text"), str):
            (thoughts if p.get("thought") else text).append(p["text"])
    reasoning = "\n".join(thoughts).strip() or None
    return Answer("".join(text), reasoning, _FINISH.get(finish, finish.lower() or None),
                  usage_of(usage))


def _blocked_ratings(cand: dict[str, Any]) -> str:
    ratings = cand.get("safetyRatings")
    hit = [str(r.get("category", "")).removeprefix("HARM_CATEGORY_")
           for r in ratings if isinstance(r, dict) and r.get("blocked")] \
        if isinstance(ratings, list) else []
    return f"; blocked: {', '.join(hit)}" if hit else ""


def usage_of(raw: Any) -> dict[str, int]:
    """usageMetadata under our names; thoughts count as completion (they are billed so)."""
    if not isinstance(raw, dict):
        return {}
    out: dict[str, int] = {}
    thoughts = raw.get("thoughtsTokenCount")
    answer = raw.get("candidatesTokenCount")
    if isinstance(raw.get("promptTokenCount"), int):
        out["prompt_tokens"] = raw["promptTokenCount"]
    if isinstance(answer, int) or isinstance(thoughts, int):
        out["completion_tokens"] = (answer if isinstance(answer, int) else 0) + (
            thoughts if isinstance(thoughts, int) else 0)
    if isinstance(thoughts, int):
        out["reasoning_tokens"] = thoughts
    return out


def response_schema(options: tuple[str, ...]) -> dict[str, Any]:
    """The choice answer as Gemini's Schema (an OpenAPI subset): {"answer": one of `options`}."""
    return {
        "type": "OBJECT",
        "properties": {CHOICE_PROPERTY: {"type": "STRING", "enum": list(options)}},
        "required": [CHOICE_PROPERTY],
        "propertyOrdering": [CHOICE_PROPERTY],
    }


def safety_settings(settings: Mapping[str, Any]) -> list[dict[str, str]]:
    """safetySettings from the model's settings: one threshold for all, then per category."""
    chosen: dict[str, str] = {}
    if settings.get("safety_threshold"):
        chosen = dict.fromkeys(SAFETY_CATEGORIES, str(settings["safety_threshold"]))
    for cat, threshold in (settings.get("safety_settings") or {}).items():
        chosen[_category(cat)] = str(threshold)
    return [{"category": c, "threshold": t} for c, t in chosen.items()]


def _category(name: str) -> str:
    name = name.upper()
    return name if name.startswith("HARM_CATEGORY_") else "HARM_CATEGORY_" + name


def check_settings(cfg: ModelConfig) -> tuple[str, str, str] | None:
    """Settings the API would refuse on every request, as (key, problem, fix); None if fine."""
    s = cfg.settings
    thresholds = [s.get("safety_threshold") or "BLOCK_NONE",
                  *(s.get("safety_settings") or {}).values()]
    bad = [t for t in thresholds if str(t) not in THRESHOLDS]
    if bad:
        return ("safety_threshold", f"unknown safety threshold {bad[0]!r}",
                "use one of " + ", ".join(THRESHOLDS))
    odd = [c for c in (s.get("safety_settings") or {}) if _category(c) not in _CATEGORIES]
    if odd:
        return ("safety_settings", f"unknown harm category {odd[0]!r}", "use " + ", ".join(
            c.removeprefix("HARM_CATEGORY_") for c in _CATEGORIES))
    return _check_thinking(cfg)


def _check_thinking(cfg: ModelConfig) -> tuple[str, str, str] | None:
    level, budget = cfg.settings.get("thinking_level") or "", cfg.settings.get("thinking_budget")
    if level and str(level).lower() not in THINKING_LEVELS:
        return ("thinking_level", f"{level!r} is not a thinking level",
                "use one of " + ", ".join(THINKING_LEVELS))
    if level and budget is not None:
        return ("thinking_level", "is set beside thinking_budget, and Gemini refuses the pair",
                "keep one: 2.5 models take a budget, 3 models a level")
    if budget is not None and budget < -1:
        return ("thinking_budget", f"{budget} is no budget",
                "use -1 (dynamic), 0 (off, Flash only) or a token count")
    if _PRO.search(cfg.model) and (budget == 0 or (cfg.reasoning is False and budget is None)):
        return ("thinking_budget" if budget == 0 else "reasoning",
                "Gemini 2.5 Pro cannot turn thinking off",
                "remove it, or set thinking_budget = -1 (dynamic) or 128..32768")
    return None


def _raise_bad_settings(cfg: ModelConfig) -> None:
    """check_settings as a ConfigError (exit 2) when the wire is built, before any request."""
    bad = check_settings(cfg)
    if bad is not None:
        key, problem, fix = bad
        raise ConfigError(f"model {cfg.name!r}: {key}: {problem}; {fix}")


_SETTINGS = (
    Setting("thinking_budget", int | None, None,
            "thinkingConfig.thinkingBudget sent as is: -1 dynamic, 0 off (Flash, Flash-Lite), "
            "N tokens; unset: fitted to max_tokens for a reasoning model, 0 for reasoning = "
            "false on 2.5 Flash"),
    Setting("thinking_level", str, "",
            "thinkingConfig.thinkingLevel for Gemini 3 (minimal, low, medium, high); "
            "excludes thinking_budget"),
    Setting("include_thoughts", bool, False,
            "ask for thought summaries (kept as the answer's reasoning, never rated)"),
    Setting("safety_threshold", str, "",
            "one threshold (BLOCK_NONE, OFF, BLOCK_ONLY_HIGH, ...) for the four harm "
            "categories; unset: none sent, Google's defaults apply"),
    Setting("safety_settings", dict[str, str], {},
            "per-category thresholds, e.g. { HARASSMENT = \"BLOCK_NONE\" }; over "
            "safety_threshold"),
)

SPEC = register(ProviderSpec(
    name="gemini", wire=lambda cfg, env: GeminiGenerate(cfg), key_env="GEMINI_API_KEY",
    settings=_SETTINGS, reasoning=ReasoningRules(guess=_GUESS), batch=GeminiBatchAPI,
    check=check_settings,  # settings Google would refuse on every request: refused at load
))
