"""`provider = "azure"`: Azure OpenAI, OpenAI's Chat Completions on a resource's deployment.

The body and the answer are `OpenAIChat`'s (composed, not copied); Azure differs in the URL
(`/openai/deployments/{deployment}/chat/completions?api-version=...`, or the v1 path), the
auth header (`api-key`, or `Authorization: Bearer` for v1 and for Entra ID tokens), its error
shapes (`AzureFailures`) and its Global Batch API (`AzureBatchAPI`, OpenAI's on Azure's paths).

`model` names the underlying model (the reasoning guess and the price tables read it);
`deployment` (default: `model`) is the name in the URL, and the body's `model` carries it, so
a job's id covers the deployment it goes to, and v1 and batch lines (which route by the body's
`model`) reach the same one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.batchapi import BatchCallError, BatchCalls
from vpbatch.providers.contract import Wire
from vpbatch.providers.http import HttpProvider
from vpbatch.providers.openai_batch import OpenAIBatchAPI
from vpbatch.providers.openai_compat import OPENAI_REASONING, OPENAI_SETTINGS, OpenAIChat
from vpbatch.providers.spec import ProviderSpec, ReasoningRules, Setting, register
from vpbatch.transport import retry
from vpbatch.transport.failures import Failures
from vpbatch.transport.records import Answer, FailureKind, ProviderError, RequestParams
from vpbatch.transport.retry import RetryPolicy

__all__ = ["AzureChat", "AzureFailures", "AzureBatchAPI", "AZURE_API_VERSION", "AZURE_KEY_ENV",
           "APIS", "deployment_of", "problem", "connect", "SPEC"]

# The latest GA data-plane inference version with dated paths (Azure's inference spec
# stable/2024-10-21); newer features come through the v1 API, which has no api-version.
AZURE_API_VERSION = "2024-10-21"
AZURE_KEY_ENV = "AZURE_OPENAI_API_KEY"
APIS = ("deployments", "v1")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a deployment name: one path segment
_FILE_POLL_S = 5.0  # a batch upload's status is asked this often until it is processed
_FILE_POLLS = 120  # ... for at most ten minutes

SETTINGS = (
    Setting("deployment", str, "", "the deployment's name (the URL's {deployment}, the body's "
            "model); empty: the model id"),
    Setting("api_version", str, AZURE_API_VERSION, 'the api-version query of api = '
            '"deployments" (unused by v1)'),
    Setting("api", str, "deployments", '"deployments": /openai/deployments/{deployment}/chat/'
            'completions?api-version=..., api-key header; "v1": /openai/v1/chat/completions, '
            "Bearer"),
    Setting("azure_ad_token_env", str, "", "NAME of the variable holding a Microsoft Entra ID "
            "token, sent as Authorization: Bearer (instead of api_key_env's key)"),
    *OPENAI_SETTINGS,  # the request shape (known_as, token_field, ...), headers and query
)


def _key_env(settings: Mapping[str, Any]) -> str:
    """The key variable when the config names none: the Entra token's, else the API key's."""
    return str(settings.get("azure_ad_token_env") or AZURE_KEY_ENV)


def deployment_of(cfg: ModelConfig) -> str:
    """The deployment a request goes to: the `deployment` setting, else the model id."""
    return str(cfg.settings.get("deployment") or cfg.model)


def problem(cfg: ModelConfig) -> tuple[str, str, str] | None:
    """What makes an Azure model unsendable, as (key, problem, fix); None when nothing does."""
    if not cfg.base_url:
        return ("base_url", "is required for azure", 'set base_url = "https://RESOURCE.openai.'
                'azure.com" (your resource\'s endpoint, from the portal)')
    path = urlsplit(cfg.base_url).path.rstrip("/")
    if path.endswith("/openai") or "/openai/" in path:
        return ("base_url", f"{cfg.base_url} includes the API path", "give the resource root "
                "only (https://RESOURCE.openai.azure.com): vpbatch adds /openai/... (set "
                'api = "v1" for the v1 path)')
    api = cfg.settings.get("api", "deployments")
    if api not in APIS:
        return ("api", f"unknown api {api!r}", "use " + " or ".join(f'"{a}"' for a in APIS))
    if not _NAME.match(deployment_of(cfg)):
        return ("deployment", f"{deployment_of(cfg)!r} is not a deployment name",
                "give the name shown under Deployments in the portal")
    if api == "deployments" and not cfg.settings.get("api_version"):
        return ("api_version", "is empty", f'remove it for {AZURE_API_VERSION}, or set api = "v1"')
    token = cfg.settings.get("azure_ad_token_env")
    if token and not _ENV_NAME.match(token):
        # Never echoed: a value that is no variable name may be the token itself.
        return ("azure_ad_token_env", "is not an environment variable name",
                'give the NAME of the variable holding the token, e.g. "AZURE_OPENAI_AD_TOKEN", '
                "never the token itself")
    if token and cfg.api_key_env != token:
        return ("azure_ad_token_env", "is set beside api_key_env", "keep azure_ad_token_env "
                "for an Entra ID token, or api_key_env for a key, not both")
    return None


def _check(cfg: ModelConfig) -> None:
    """`problem` as a ConfigError, for a model built without the loader."""
    bad = problem(cfg)
    if bad is not None:
        raise ConfigError(f"model {cfg.name!r} (azure): {bad[0]}: {bad[1]}; {bad[2]}")


class AzureChat:
    """The Chat Completions wire (`OpenAIChat`) on an Azure deployment's URL, with its auth."""

    __slots__ = ("cfg", "chat", "base_url", "url", "bearer", "api", "api_version", "deployment")

    label = "azure"
    adapts = True  # a 400 refusing max_tokens/temperature switches the form (providers.adapt)

    def __init__(self, cfg: ModelConfig) -> None:
        _check(cfg)
        self.cfg = cfg
        self.deployment = deployment_of(cfg)
        self.api = str(cfg.settings.get("api", "deployments"))
        self.api_version = str(cfg.settings.get("api_version") or AZURE_API_VERSION)
        root = str(cfg.base_url).rstrip("/") + "/openai"
        # The batch calls hang off base_url: /openai/files, /openai/batches (or under /v1).
        self.base_url = root + "/v1" if self.api == "v1" else root
        chat_root = self.base_url if self.api == "v1" else f"{root}/deployments/{self.deployment}"
        rules = SPEC.reasoning.completion_tokens
        self.chat = OpenAIChat(
            dataclasses.replace(cfg, model=self.deployment, base_url=chat_root), label="azure",
            completion_tokens=bool(rules and rules(cfg)))
        # The version goes here, never in base_url (the config refuses a query there).
        self.url = self.chat.url + ("" if self.api == "v1" else f"?api-version={self.api_version}")
        self.bearer = self.api == "v1" or bool(cfg.settings.get("azure_ad_token_env"))

    def body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        return self.chat.body(messages, params)

    def headers(self, key: str | None) -> dict[str, str]:
        if self.bearer:  # v1 takes the key as a bearer token; Entra tokens always are one
            return self.chat.headers(key)
        headers = self.chat.headers(None)
        if key:
            headers["api-key"] = key
        return headers

    def answer(
        self, payload: dict[str, Any], headers: Mapping[str, str], failures: Failures
    ) -> Answer:
        choices = payload.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(first, dict) and first.get("finish_reason") == "content_filter":
            # A refusal by Azure's filter, not an answer to rate: name what it flagged.
            flagged = _flagged(first.get("content_filter_results"))
            raise failures.permanent(f"Azure's content filter stopped the answer{flagged}")
        return self.chat.answer(payload, headers, failures)

    def failures(self, key: str | None, key_env: str | None) -> AzureFailures:
        """The Failures that read Azure's error shapes, naming this model's deployment."""
        return AzureFailures(self.label, key, key_env, deployment=self.deployment,
                             base_url=str(self.cfg.base_url),
                             entra=bool(self.cfg.settings.get("azure_ad_token_env")))


def _flagged(results: Any) -> str:
    """' (violence: medium, jailbreak)': the categories a content-filter result flagged."""
    if not isinstance(results, dict):
        return ""
    out = []
    for name, r in results.items():
        if isinstance(r, dict) and r.get("filtered"):
            severity = r.get("severity")
            out.append(f"{name}: {severity}" if isinstance(severity, str) else str(name))
    return f" ({', '.join(out)})" if out else ""


class AzureFailures(Failures):
    """Azure's error bodies first (content filter, deployment not found, a rejected token),
    then the statuses every API shares (`transport.failures.classify_status`)."""

    __slots__ = ("deployment", "base_url", "entra")

    def __init__(self, label: str, key: str | None = None, key_env: str | None = None, *,
                 deployment: str, base_url: str, entra: bool = False) -> None:
        super().__init__(label, key, key_env)
        self.deployment = deployment
        self.base_url = base_url
        self.entra = entra

    def status(
        self, status: int, headers: Mapping[str, str], raw: bytes, *, where: str = ""
    ) -> ProviderError:
        # `where` names a batch call (upload, poll): only a chat's answer is a chat's failure.
        said = self._azure(status, raw, chat=not where)
        if said is None:
            return super().status(status, headers, raw, where=where)
        text, stops = said
        # `auth`: wrong for every job of this model, as a rejected key is; the model stops.
        return ProviderError(FailureKind.PERMANENT, self.redact(
            f"{self.label}{where} HTTP {status}: {text}"), status=status, auth=stops)

    def _azure(self, status: int, raw: bytes, *, chat: bool) -> tuple[str, bool] | None:
        """Azure's own word on a failure: (what and the fix, stops the model); None if none."""
        code, inner = _codes(raw)
        if self.entra and status == 401:
            return (f"the Entra ID token in ${self.key_env} was rejected (expired? they last "
                    "about an hour); get a new one, e.g. `az account get-access-token "
                    "--resource https://cognitiveservices.azure.com`"), True
        if self.entra and status == 403:
            return (f"the identity of the token in ${self.key_env} may not use this resource; "
                    "give it the role Cognitive Services OpenAI User"), True
        if not chat:
            return None
        if status == 400 and (code == "content_filter" or inner == "ResponsibleAIPolicyViolation"):
            return (f"Azure's content filter refused the prompt{_flagged(_filter_result(raw))}; "
                    "the item is not rated (a deployment's filter policy is set in the "
                    "portal)"), False
        if status == 404 and code == "DeploymentNotFound":
            return (f"no deployment {self.deployment!r} on {self.base_url}; set deployment to a "
                    "name listed under Deployments in the portal (a new one takes a few "
                    "minutes to appear)"), True
        if status == 404 and code in (None, "404"):
            return (f"{self.base_url} has no such API path; check base_url (the resource root) "
                    "and api_version"), True
        return None


def _error(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    err = doc.get("error") if isinstance(doc, dict) else None
    return err if isinstance(err, dict) else {}


def _inner(err: dict[str, Any]) -> dict[str, Any]:
    # The service writes "innererror"; its published spec says "inner_error".
    inner = err.get("innererror") or err.get("inner_error")
    return inner if isinstance(inner, dict) else {}


def _codes(raw: bytes) -> tuple[str | None, str | None]:
    """An Azure error body's code and inner code (e.g. content_filter, ResponsibleAI...)."""
    err = _error(raw)
    code, inner = err.get("code"), _inner(err).get("code")
    return (str(code) if code is not None else None), (str(inner) if inner else None)


def _filter_result(raw: bytes) -> Any:
    inner = _inner(_error(raw))
    return inner.get("content_filter_result") or inner.get("content_filter_results")


class _VersionedCalls(BatchCalls):
    """The batch calls with Azure's api-version on every URL (aiohttp merges it into a query)."""

    __slots__ = ("version",)

    def __init__(self, calls: BatchCalls, version: str) -> None:
        super().__init__(calls.name, calls.endpoint, calls.policy)
        self.version = version

    async def call(self, method: str, url: str, *, retries: bool = True, **kw: Any) -> bytes:
        return await super().call(method, url, retries=retries,
                                  params={"api-version": self.version}, **kw)


class AzureBatchAPI(OpenAIBatchAPI):
    """Azure's Global Batch API: OpenAI's calls under /openai (with api-version) or /openai/v1.

    Each line's `url` and the batch's `endpoint` are "/chat/completions"; each body's `model`
    is the deployment (a Global Batch one), as every Azure body here is.
    """

    __slots__ = ()

    name = "azure batch"
    max_requests = 100_000
    max_bytes = 200 * 1024 * 1024
    chat_path = "/chat/completions"

    def __init__(self, provider: HttpProvider, policy: RetryPolicy) -> None:
        super().__init__(provider, policy)
        wire = provider.wire
        if isinstance(wire, AzureChat) and wire.api == "deployments":
            self.calls = _VersionedCalls(self.calls, wire.api_version)

    async def prepare(self, lines: list[bytes]) -> dict[str, Any]:
        extra = await super().prepare(lines)
        await self._processed(str(extra["input_file_id"]))
        return extra

    async def _processed(self, file_id: str) -> None:
        """Wait until Azure has processed the upload: a batch on a pending file is refused."""
        for _ in range(_FILE_POLLS):
            doc = await self.calls.call_json("GET", f"{self.base}/files/{file_id}")
            status = doc.get("status")
            if status == "processed" or status is None:  # (no status: nothing to wait for)
                return
            if status in ("error", "deleted", "deleting"):
                why = str(doc.get("status_details") or "no details")[:300]
                raise BatchCallError(f"{self.name}: the upload {file_id} was not accepted "
                                     f"({status}: {why}); fix the cause, then resume",
                                     kind=FailureKind.PERMANENT)
            await retry.sleep(_FILE_POLL_S)
        raise BatchCallError(f"{self.name}: the upload {file_id} is still {status!r} after "
                             f"{_FILE_POLLS * _FILE_POLL_S:.0f} s; resume later",
                             kind=FailureKind.TRANSIENT)


def connect(
    cfg: ModelConfig, wire: Wire, session: aiohttp.ClientSession | None, env: Mapping[str, str]
) -> HttpProvider:
    """The azure provider: its key (or Entra ID token) from its variable, Azure's failures."""
    var = cfg.api_key_env or _key_env(cfg.settings)
    key = env.get(var)
    if not key:
        what = "Entra ID token" if cfg.settings.get("azure_ad_token_env") else "Azure OpenAI key"
        raise ConfigError(f"model {cfg.name!r}: the environment variable {var} is not set; "
                          f"export {var}=<your {what}> (keys never go in the config)")
    chat = wire if isinstance(wire, AzureChat) else AzureChat(cfg)
    return HttpProvider(cfg, chat, session, key, key_env=var, failures=chat.failures(key, var),
                        env=env)


SPEC = register(ProviderSpec(
    name="azure", wire=lambda cfg, env: AzureChat(cfg), key_env=AZURE_KEY_ENV, settings=SETTINGS,
    # Azure serves OpenAI's models: its reasoning ones take only max_completion_tokens, whatever
    # the deployment is called (reasoning = true for a name the guess cannot read).
    reasoning=ReasoningRules(guess=OPENAI_REASONING.guess, completion_tokens=lambda cfg: True),
    batch=AzureBatchAPI, connect=connect, key_env_for=_key_env, check=problem,
))
