"""`provider = "sim"`: the simulated respondent in-process, the HTTP path minus the network.

Its wire is the OpenAI-compatible one (so `plan`, job ids and the log see the same body as
over HTTP) and its answers go through the same reasoning split and checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import anyio.lowlevel

from vpbatch.benchmark.parser import split_reasoning
from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.http import read_answer
from vpbatch.providers.openai_compat import OpenAIChat
from vpbatch.providers.spec import ProviderSpec, ReasoningRules, register
from vpbatch.transport.failures import Failures
from vpbatch.transport.records import Answer, HttpRequest, RequestParams

__all__ = ["SimProvider", "sim_wire", "SIM_BASE_URL", "SPEC"]

SIM_BASE_URL = "sim://in-process/v1"


class _Respondent(Protocol):
    def answer(self, messages: list[dict[str, str]], params: RequestParams) -> Answer: ...


def sim_wire(cfg: ModelConfig) -> OpenAIChat:
    """The body a simulated model would be sent over HTTP (the simulator speaks OpenAI)."""
    return OpenAIChat(cfg, label="sim", default_base_url=SIM_BASE_URL)


class SimProvider:
    """Answers from `vpbatch.sim.respondent.Respondent`: deterministic, no key, no sockets."""

    __slots__ = ("cfg", "wire", "failures", "respondent")

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.wire = sim_wire(cfg)
        self.failures = Failures(self.wire.label)  # a simulation never needs or holds a key
        self.respondent = _load_respondent(cfg)

    def build_request(self, messages: list[dict[str, str]], params: RequestParams) -> HttpRequest:
        return HttpRequest(self.wire.url, self.wire.headers(None), self.wire.body(messages, params))

    async def complete(
        self,
        messages: list[dict[str, str]],
        params: RequestParams,
        body: dict[str, Any] | None = None,
    ) -> Answer:
        """The respondent's answer, checked and split like an HTTP answer."""
        if body is None:
            self.wire.body(messages, params)  # the same validation as over HTTP
        await anyio.lowlevel.checkpoint()  # a real await: cancellation and fairness as usual
        answer = self.respondent.answer(messages, params)
        if answer.finish_reason == "content_filter":
            raise self.failures.permanent("the content filter stopped the answer")
        text, reasoning = answer.text, answer.reasoning
        if reasoning is None:
            text, reasoning = split_reasoning(text)
        return Answer(text, reasoning, answer.finish_reason, dict(answer.usage))

    def parse(self, status: int, headers: Mapping[str, str], raw: bytes) -> Answer:
        return read_answer(self.wire, self.failures, status, headers, raw)


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


SPEC = register(ProviderSpec(
    name="sim", wire=lambda cfg, env: sim_wire(cfg), keyless=True, model_default="sim",
    reasoning=ReasoningRules(),
))
