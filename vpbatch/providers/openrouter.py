"""OpenRouter: OpenAI-compatible, plus its `reasoning` switch and attribution headers."""

from __future__ import annotations

from typing import Any

import aiohttp

from vpbatch.providers.base import RequestParams
from vpbatch.providers.openai_compat import OpenAICompatProvider
from vpbatch.sweep.config import ModelConfig

__all__ = ["OpenRouterProvider"]


class OpenRouterProvider(OpenAICompatProvider):
    """`provider = "openrouter"`: one key, hundreds of models, reasoning in `message.reasoning`."""

    __slots__ = ("referer", "title")

    label = "openrouter"
    default_base_url = "https://openrouter.ai/api/v1"

    def __init__(
        self,
        cfg: ModelConfig,
        session: aiohttp.ClientSession | None,
        api_key: str | None,
        *,
        referer: str | None = None,
        title: str | None = "vpbatch",
    ) -> None:
        super().__init__(cfg, session, api_key)
        self.referer = referer  # OpenRouter's optional app attribution (HTTP-Referer, X-Title)
        self.title = title

    def _headers(self) -> dict[str, str]:
        headers = super()._headers()
        if self.referer:
            headers["HTTP-Referer"] = self.referer
        if self.title:
            headers["X-Title"] = self.title
        return headers

    def _body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        body = super()._body(messages, params)
        if params.reasoning:
            # OpenRouter normalises every vendor's thinking switch into this one field; the
            # reasoning text comes back in `message.reasoning` (exclude=false is the default).
            body["reasoning"] = {"enabled": True}
        return body
