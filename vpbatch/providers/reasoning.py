"""The known reasoning models, as data: one table, read per model id, overridable per model.

Each row names a family by a pattern on the model id (lowercased; a vendor prefix such as
OpenRouter's `openai/`, Ollama's `:8b` tag or Bedrock's `us.anthropic.` does not hide it) and
says how that family is asked: does it think unasked (`always`) or only when the request turns
thinking on (`opt-in`, e.g. Claude's extended thinking), which token field it takes, whether it
accepts a temperature while reasoning, and whether it takes `reasoning_effort`. The first row
that matches wins, so narrower rows come first. A model the table does not know (an Azure
deployment name, a gateway alias) is a plain chat model unless its config says
`reasoning = true` or names its family (`known_as = "o4-mini"`); the explicit settings
(`token_field`, `send_temperature`) override a row.
docs/guides/reasoning-models.md shows this table (`table_markdown()` generates it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vpbatch.config.schema import ModelConfig

__all__ = ["KnownModel", "KNOWN_MODELS", "known_model", "table_id", "table_markdown",
           "MAX_TOKENS", "MAX_COMPLETION_TOKENS", "TOKEN_FIELDS", "EFFORTS"]

MAX_TOKENS = "max_tokens"
MAX_COMPLETION_TOKENS = "max_completion_tokens"
TOKEN_FIELDS = (MAX_TOKENS, MAX_COMPLETION_TOKENS)
EFFORTS = ("minimal", "low", "medium", "high")  # OpenAI's values (minimal: gpt-5 only)


@dataclass(frozen=True, slots=True)
class KnownModel:
    """One family of models: how to recognise it and how it takes a reasoning request."""

    pattern: str  # a regex on one segment of the id (see `known_model`)
    family: str  # who makes it, for the docs
    thinks: str  # "always" | "opt-in" (reasons only when asked) | "never"
    token_field: str = MAX_TOKENS  # the output limit's field while it reasons
    temperature: bool = True  # a non-default temperature is accepted while it reasons
    effort: bool = False  # takes `reasoning_effort` (OpenAI-compatible endpoints)

    @property
    def reasoning(self) -> bool:
        """Reasoning by default (no `reasoning = ...` in the config)."""
        return self.thinks == "always"


_MCT = MAX_COMPLETION_TOKENS

# Order matters: the first match wins (e.g. `o1-mini` before `o1`, `-instruct` before qwen3).
KNOWN_MODELS: tuple[KnownModel, ...] = (
    # OpenAI: o1-mini and o1-preview reject reasoning_effort; later o-series and gpt-5 take it.
    KnownModel(r"o1-(mini|preview)", "OpenAI", "always", _MCT, False),
    KnownModel(r"o[134](-mini|-pro)?", "OpenAI", "always", _MCT, False, True),
    KnownModel(r"gpt-5(\.\d+)?-chat", "OpenAI", "never", token_field=MAX_COMPLETION_TOKENS),
    KnownModel(r"gpt-5", "OpenAI", "always", _MCT, False, True),
    # Open weights, served by vLLM, Ollama, llama.cpp, Together...: max_tokens, temperature ok.
    KnownModel(r"gpt-oss", "OpenAI (open weights)", "always", effort=True),
    KnownModel(r"deepseek-(reasoner|r1)", "DeepSeek", "always"),
    KnownModel(r"r1", "DeepSeek R1 derivatives", "always"),
    KnownModel(r"qwen3.*instruct", "Qwen", "never"),  # the 2507 instruct models never think
    KnownModel(r"qwen3|qwq", "Qwen", "always"),  # hybrid, thinking on by default
    KnownModel(r"magistral", "Mistral", "always"),
    KnownModel(r"grok-4-fast-non-reasoning", "xAI", "never"),
    KnownModel(r"grok-3-mini", "xAI", "always", effort=True),
    KnownModel(r"grok-4", "xAI", "always"),  # grok-4 refuses reasoning_effort
    # Anthropic: extended thinking is off unless the request enables it (thinking.budget_tokens)
    # and then no temperature may be sent.
    KnownModel(r"claude-(3[-.]7-sonnet|(sonnet|opus|haiku)-4)", "Anthropic", "opt-in",
               temperature=False),
    # Google: 2.5 Pro and Flash think by default, Flash-Lite only when given a budget.
    KnownModel(r"gemini-2\.5-flash-lite", "Google", "opt-in", effort=True),
    KnownModel(r"gemini-2\.5", "Google", "always", effort=True),
    KnownModel(r"\w*-?thinking", "any (a *thinking* variant)", "always"),
)

# A row's pattern must start and end at a boundary of the id: `o3` matches `openai/o3`,
# `o3-mini-2025-01-31` and `azure.o3:latest`, never `gpt-4o3x`.
_START = r"(?:^|[-/.:_@ ])"
_END = r"(?=$|[-/.:_@ ])"
_COMPILED = tuple((re.compile(_START + f"(?:{row.pattern})" + _END), row) for row in KNOWN_MODELS)


def known_model(model_id: str) -> KnownModel | None:
    """The table's row for a model id (any vendor prefix), or None for an unknown model."""
    text = model_id.lower()
    for pattern, row in _COMPILED:
        if pattern.search(text):
            return row
    return None


def table_id(m: ModelConfig) -> str:
    """The id the table reads for `m`: its `known_as` setting (an Azure deployment or a gateway
    alias says which model it is, e.g. known_as = "o4-mini"), else its model id."""
    known_as = m.settings.get("known_as")
    return known_as if isinstance(known_as, str) and known_as else m.model


def table_markdown() -> str:
    """The table as Markdown rows (the docs page carries this, a test keeps them in step)."""
    lines = ["| pattern | family | thinks | token field | temperature | reasoning_effort |",
             "|---|---|---|---|---|---|"]
    for r in KNOWN_MODELS:
        pattern = r.pattern.replace("|", "\\|")  # a bare | would split the Markdown cell
        lines.append(f"| `{pattern}` | {r.family} | {r.thinks} | `{r.token_field}` | "
                     f"{'sent' if r.temperature else 'not sent'} | "
                     f"{'yes' if r.effort else 'no'} |")
    return "\n".join(lines)
