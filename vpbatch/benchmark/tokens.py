"""Token estimates without a tokenizer: the one rule behind TPM limits, plan and the simulator.

About four characters a token for English text, plus the few tokens a chat format wraps each
message in and the ones that prime the reply. Close enough for rate limits and cost bounds;
the provider's own `usage` replaces the estimate once an answer arrives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["CHARS_PER_TOKEN", "PER_MESSAGE", "PER_REQUEST", "text_tokens", "prompt_tokens"]

CHARS_PER_TOKEN = 4
PER_MESSAGE = 4  # role and separators around each message
PER_REQUEST = 3  # the tokens that prime the reply


def text_tokens(text: str) -> float:
    """The estimated tokens of a text: its characters / CHARS_PER_TOKEN."""
    return len(text) / CHARS_PER_TOKEN


def prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """The estimated prompt tokens of one request: its messages with their chat overhead."""
    chars = sum(len(str(m.get("content", ""))) for m in messages)
    return chars // CHARS_PER_TOKEN + PER_MESSAGE * len(messages) + PER_REQUEST
