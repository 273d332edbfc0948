"""`provider = "sim"`: the simulated respondent in-process, the HTTP path minus the network.

The request is built exactly as for an OpenAI-compatible server (so `plan`, job ids and the
log see the same body) and the answer goes through the same reasoning split and checks.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp
import anyio.lowlevel

from vpbatch.benchmark.parser import split_reasoning
from vpbatch.errors import ConfigError
from vpbatch.providers.base import (
    Answer,
    FailureKind,
    HttpRequest,
    ProviderError,
    RequestParams,
)
from vpbatch.providers.openai_compat import OpenAICompatProvider
from vpbatch.sweep.config import ModelConfig

__all__ = ["SimProvider"]


class _Respondent(Protocol):
    def answer(self, messages: list[dict[str, str]], params: RequestParams) -> Answer: ...


class SimProvider(OpenAICompatProvider):
    """Answers from `vpbatch.sim.respondent.Respondent`: deterministic, no key, no sockets."""

    __slots__ = ("respondent",)

    label = "sim"
    default_base_url = "sim://in-process/v1"

    def __init__(
        self, cfg: ModelConfig, session: aiohttp.ClientSession | None, api_key: str | None
    ) -> None:
        super().__init__(cfg, session, None)  # a simulation never needs or holds a key
        self.respondent = _load_respondent(cfg)

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: RequestParams,
        *,
        request: HttpRequest | None = None,
    ) -> Answer:
        """The respondent's answer, checked and split like an HTTP answer."""
        if request is None:
            self.build_request(messages, params)  # the same validation and body as over HTTP
        await anyio.lowlevel.checkpoint()  # a real await: cancellation and fairness as usual
        answer = self.respondent.answer(messages, params)
        if answer.finish_reason == "content_filter":
            raise ProviderError(FailureKind.PERMANENT, "sim: the content filter stopped the answer")
        text, reasoning = answer.text, answer.reasoning
        if reasoning is None:
            text, reasoning = split_reasoning(text)
        return Answer(text, reasoning, answer.finish_reason, dict(answer.usage))


def _load_respondent(cfg: ModelConfig) -> _Respondent:
    try:
        from vpbatch.sim.respondent import Respondent
    except ImportError as exc:
        raise ConfigError(
            f"model {cfg.name!r}: provider 'sim' needs vpbatch.sim.respondent, which is not "
            f"installed ({exc}); reinstall vpbatch"
        ) from exc
    settings: dict[str, Any] = dict(cfg.sim)
    respondent: _Respondent = Respondent.from_settings(settings, model=cfg.model)
    return respondent
