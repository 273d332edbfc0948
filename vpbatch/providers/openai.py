"""OpenAI's own API: the compatible base plus what its reasoning (o-series) models require."""

from __future__ import annotations

from urllib.parse import urlsplit

from vpbatch.providers.base import RequestParams
from vpbatch.providers.openai_compat import OpenAICompatProvider

__all__ = ["OpenAIProvider"]


class OpenAIProvider(OpenAICompatProvider):
    """`provider = "openai"`: api.openai.com, or any OpenAI-compatible server via base_url."""

    __slots__ = ()

    label = "openai"

    def _completion_tokens(self, params: RequestParams) -> bool:
        # Only OpenAI's endpoint gets max_completion_tokens: vLLM, Ollama and llama.cpp all
        # take max_tokens for their reasoning models, and some reject the newer name.
        host = urlsplit(self.url).hostname or ""
        return params.reasoning and (host == "api.openai.com" or host.endswith(".openai.com"))
