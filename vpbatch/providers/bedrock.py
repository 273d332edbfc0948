"""`provider = "bedrock"`: Amazon Bedrock's Converse API, each request signed with AWS SigV4.

The body, the URL and the answer need nothing but this module, so `plan` works without
credentials and without botocore. Sending needs credentials from the environment: a Bedrock
API key (`AWS_BEARER_TOKEN_BEDROCK`, sent as a Bearer token), or AWS keys signed with
botocore's SigV4 signer, an optional extra (`pip install 'vpbatch[bedrock]'`). Bedrock's batch
inference runs S3 jobs, so batch mode is refused at config load.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from vpbatch.benchmark.choice import SCHEMA_NAME, choice_schema
from vpbatch.config.schema import ModelConfig
from vpbatch.errors import ConfigError
from vpbatch.providers.anthropic import thinking_budget
from vpbatch.providers.contract import Wire
from vpbatch.providers.http import HttpProvider, Signer
from vpbatch.providers.openai_compat import base_url_of, merge_extra
from vpbatch.providers.spec import ProviderSpec, ReasoningRules, Setting, register
from vpbatch.transport.failures import Failures, redact, retry_after
from vpbatch.transport.records import Answer, FailureKind, ProviderError, RequestParams

__all__ = ["BedrockConverse", "BedrockFailures", "region_of", "sigv4_signer", "connect",
           "BEARER_ENV", "INSTALL", "SPEC"]

BEARER_ENV = "AWS_BEARER_TOKEN_BEDROCK"  # a Bedrock API key, as the AWS SDKs read it
REGION_ENVS = ("AWS_REGION", "AWS_DEFAULT_REGION")
KEY_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
INSTALL = "pip install 'vpbatch[bedrock]'"
SIGNING_NAME = "bedrock"  # bedrock-runtime's signingName in botocore's service model
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "stop",
           "max_tokens": "length", "model_context_window_exceeded": "length"}
_BLOCKED = {"guardrail_intervened": "a Bedrock guardrail intervened and blocked the answer",
            "content_filtered": "Bedrock's content filter stopped the answer"}
_MALFORMED = ("malformed_model_output", "malformed_tool_use")
# Ids that reason whatever the request says; Claude thinks only when asked (reasoning = true).
_REASONING = re.compile(r"deepseek\.r1|gpt-oss|qwen3|thinking")


def region_of(cfg: ModelConfig) -> str:
    """The model's region: its `region` setting, else AWS_REGION / AWS_DEFAULT_REGION."""
    # os.environ, not a passed env: the grid builds wires without one, and the region is part
    # of the URL and so of every job's id; a config that writes region pins it.
    region = cfg.settings.get("region") or next(
        (os.environ[v] for v in REGION_ENVS if os.environ.get(v)), "")
    if not region:
        raise ConfigError(f"model {cfg.name!r}: no AWS region; set region = \"us-east-1\" (or "
                          "another) in the model's table, or export AWS_REGION")
    return str(region)


def _is_claude(model: str) -> bool:
    return "anthropic.claude" in model.lower()


class BedrockConverse:
    """The Converse format for one model (the `Wire` contract); the model id is in the URL."""

    __slots__ = ("cfg", "region", "base_url", "url")

    label = "bedrock"

    def __init__(self, cfg: ModelConfig) -> None:
        self.cfg = cfg
        self.region = region_of(cfg)
        self.base_url = base_url_of(cfg, f"https://bedrock-runtime.{self.region}.amazonaws.com")
        # Inference profile ids ("us.anthropic...-v1:0") and ARNs ("arn:...:x/y") as one segment.
        self.url = f"{self.base_url}/model/{quote(cfg.model, safe='')}/converse"

    def body(self, messages: list[dict[str, str]], params: RequestParams) -> dict[str, Any]:
        system = [{"text": m["content"]} for m in messages if m["role"] == "system"]
        turns = [{"role": m["role"], "content": [{"text": m["content"]}]}
                 for m in messages if m["role"] != "system"]
        body: dict[str, Any] = {"messages": turns}
        if system:
            body["system"] = system
        config: dict[str, Any] = {"maxTokens": params.max_tokens}
        thinking = self._thinking(params)
        if thinking is not None:  # thinking takes only the default temperature
            body["additionalModelRequestFields"] = {"thinking": thinking}
        elif params.temperature is not None:
            config["temperature"] = params.temperature
        body["inferenceConfig"] = config  # no seed: Converse has none
        if params.choice is not None:
            if thinking is not None:
                raise ProviderError(FailureKind.PERMANENT, "bedrock: Claude's thinking cannot "
                                    "be combined with a forced tool, its route to a choice "
                                    'answer; set reasoning = false, or answer = "text"')
            body["toolConfig"] = _forced_tool(params.choice)
        return merge_extra(body, self.cfg.extra_body)

    def _thinking(self, params: RequestParams) -> dict[str, Any] | None:
        """Claude's extended thinking when reasoning is on, its budget set or derived."""
        budget = int(self.cfg.settings.get("thinking_budget") or 0)
        if not params.reasoning or not (budget or _is_claude(self.cfg.model)):
            return None
        budget = budget or thinking_budget(params.max_tokens) or 0
        if not 1024 <= budget < params.max_tokens:
            raise ProviderError(FailureKind.PERMANENT, f"bedrock: Claude's thinking needs "
                                f"1024 <= thinking_budget < max_tokens (got {budget} and "
                                f"{params.max_tokens}); raise max_tokens or set reasoning = false")
        return {"type": "enabled", "budget_tokens": budget}

    def headers(self, key: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if key:  # a Bedrock API key; otherwise each request is signed (connect's signer)
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def answer(
        self, payload: dict[str, Any], headers: Mapping[str, str], failures: Failures
    ) -> Answer:
        output = payload.get("output")
        message = output.get("message") if isinstance(output, dict) else None
        blocks = message.get("content") if isinstance(message, dict) else None
        if not isinstance(blocks, list):
            raise failures.not_an_answer(self.url, headers, orjson.dumps(payload),
                                         "JSON without output.message.content")
        stop = payload.get("stopReason")
        if stop in _BLOCKED:
            raise failures.permanent(f"{_BLOCKED[stop]} (stopReason {stop})")
        if stop in _MALFORMED:
            raise failures.transient(f"the model's output was malformed (stopReason {stop})")
        text, reasoning = _read_blocks(blocks)
        finish = _FINISH.get(stop, stop) if isinstance(stop, str) else None
        return Answer(text, reasoning, finish, _usage(payload.get("usage")))


def _read_blocks(blocks: list[Any]) -> tuple[str, str | None]:
    """The answer text (a forced tool's input as JSON) and the reasoning, kept apart."""
    text, thoughts = [], []
    for block in blocks:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            text.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):  # a choice answer
            text.append(orjson.dumps(block["toolUse"].get("input")).decode())
        elif isinstance(reason := block.get("reasoningContent"), dict):
            said = reason.get("reasoningText")
            thoughts.append(str(said.get("text", "")) if isinstance(said, dict)
                            else "[redacted thinking]")
    return "".join(text), "\n".join(thoughts).strip() or None


def _usage(raw: Any) -> dict[str, int]:
    """Converse's token counts under our names; reasoning tokens if it ever reports them."""
    if not isinstance(raw, dict):
        return {}
    names = {"prompt_tokens": "inputTokens", "completion_tokens": "outputTokens",
             "reasoning_tokens": "reasoningTokens"}
    return {ours: raw[theirs] for ours, theirs in names.items()
            if isinstance(raw.get(theirs), int)}


def _forced_tool(options: tuple[str, ...]) -> dict[str, Any]:
    """The one tool whose input is the choice answer, and the toolChoice that forces it."""
    spec = {"name": SCHEMA_NAME, "inputSchema": {"json": choice_schema(options)}}
    return {"tools": [{"toolSpec": spec}], "toolChoice": {"tool": {"name": SCHEMA_NAME}}}


# Bedrock's error types (x-amzn-ErrorType) -> (kind, stops the model, what to do).
_AUTH = ("UnrecognizedClientException", "InvalidSignatureException", "SignatureDoesNotMatch",
         "IncompleteSignatureException", "MissingAuthenticationTokenException",
         "ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId")
_ERRORS: dict[str, tuple[FailureKind, str]] = {
    "ThrottlingException": (FailureKind.RATE_LIMITED, "over the account's quota for this "
                            "model; lower rpm/tpm, or ask AWS for a higher quota"),
    "ModelNotReadyException": (FailureKind.TRANSIENT, "the model is not ready yet"),
    "ServiceUnavailableException": (FailureKind.TRANSIENT, "Bedrock is unavailable"),
    "InternalServerException": (FailureKind.TRANSIENT, "Bedrock failed"),
    "ModelTimeoutException": (FailureKind.TRANSIENT, "the model took too long"),
    "ModelErrorException": (FailureKind.TRANSIENT, "the model failed on this request"),
    "ValidationException": (FailureKind.PERMANENT, "fix the model id, max_tokens or "
                            "extra_body"),
    "ResourceNotFoundException": (FailureKind.PERMANENT, "check the model id and the region "
                                  "(an inference profile such as us.* serves its own regions)"),
}


def _error(headers: Mapping[str, str], raw: bytes) -> tuple[str, str]:
    """The error's type and message: the x-amzn-ErrorType header or the body's __type."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    kind = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), None)
    kind = kind or str(payload.get("__type", ""))
    # "ValidationException:http://internal..." or "com.amazon.coral.service#Unrecognized..."
    kind = kind.split(":", 1)[0].rsplit("#", 1)[-1]
    message = payload.get("message") or payload.get("Message") or raw[:300].decode(
        "utf-8", "replace")
    return kind, str(message).strip()[:300]


class BedrockFailures(Failures):
    """Failures named the Bedrock way: its error types first, then the common statuses."""

    __slots__ = ("region", "auth_fix")

    def __init__(self, key: str | None, auth_fix: str, region: str) -> None:
        super().__init__("bedrock", key)
        self.auth_fix = auth_fix  # which variables to check, for how these credentials came
        self.region = region

    def status(
        self, status: int, headers: Mapping[str, str], raw: bytes, *, where: str = ""
    ) -> ProviderError:
        kind, message = _error(headers, raw)
        said = f"bedrock{where} HTTP {status} {kind or '(no error type)'}: {message}"
        if kind in _AUTH or (status in (401, 403) and kind != "AccessDeniedException"):
            return self._stop(f"{said}; {self.auth_fix}", status)
        if kind == "AccessDeniedException":
            return self._stop(f"{said}; enable access to this model in the Bedrock console "
                              f"(Model access, region {self.region}) and allow "
                              "bedrock:InvokeModel for these credentials", status)
        if kind not in _ERRORS:
            return super().status(status, headers, raw, where=where)
        failure, fix = _ERRORS[kind]
        wait = retry_after(headers, self.clock()) if failure is not FailureKind.PERMANENT else None
        return ProviderError(failure, redact(f"{said}; {fix}", self.key), status=status,
                             retry_after=wait)

    def _stop(self, text: str, status: int) -> ProviderError:
        """A refusal of these credentials: the whole model stops (auth), the others go on."""
        return ProviderError(FailureKind.PERMANENT, redact(text, self.key), status=status,
                             auth=True)


def sigv4_signer(credentials: Any, region: str) -> Signer:
    """Signs each request with botocore's SigV4 signer (the signature covers the body)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    def sign(method: str, url: str, headers: Mapping[str, str], data: bytes) -> dict[str, str]:
        request = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
        # Frozen per request: credentials from a profile may be refreshed between requests.
        SigV4Auth(credentials.get_frozen_credentials(), SIGNING_NAME, region).add_auth(request)
        signed = ("authorization", "x-amz-date", "x-amz-security-token")
        return {k: v for k, v in request.headers.items() if k.lower() in signed}

    return sign


def _credentials(cfg: ModelConfig, env: Mapping[str, str]) -> Any:
    """AWS keys from the environment, else AWS_PROFILE through botocore's chain."""
    try:
        from botocore.credentials import Credentials
    except ImportError:
        raise ConfigError(f"model {cfg.name!r}: signing Bedrock requests needs botocore; "
                          f"{INSTALL} (or export {BEARER_ENV}, a Bedrock API key, which needs "
                          "no botocore)") from None
    access, secret = (env.get(v) for v in KEY_ENVS)
    if access and secret:
        return Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None)
    if env.get("AWS_PROFILE"):
        return _profile_credentials(cfg, env)
    raise ConfigError(f"model {cfg.name!r}: no AWS credentials; export AWS_ACCESS_KEY_ID and "
                      "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), "
                      f"AWS_PROFILE, or a Bedrock API key in {BEARER_ENV}")


def _profile_credentials(cfg: ModelConfig, env: Mapping[str, str]) -> Any:
    """The named profile's credentials, as the AWS CLI finds them (files, SSO, a process)."""
    import botocore.exceptions
    import botocore.session

    session = botocore.session.Session()
    session.set_config_variable("profile", env["AWS_PROFILE"])
    for var, name in (("AWS_SHARED_CREDENTIALS_FILE", "credentials_file"),
                      ("AWS_CONFIG_FILE", "config_file")):
        if env.get(var):
            session.set_config_variable(name, env[var])
    try:
        found = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"model {cfg.name!r}: AWS_PROFILE={env['AWS_PROFILE']}: {exc}; "
                          "check the profile (aws configure list)") from None
    if found is None:
        raise ConfigError(f"model {cfg.name!r}: the profile {env['AWS_PROFILE']} has no "
                          "credentials; check it with `aws configure list`")
    return found


def _botocore() -> bool:
    try:
        import botocore.auth  # noqa: F401
    except ImportError:
        return False
    return True


def credentials(cfg: ModelConfig, env: Mapping[str, str]) -> tuple[str, bool]:
    """What `connect` will look for, and whether it is there (for `plan --check-keys`, `run`)."""
    if cfg.api_key_env:
        return cfg.api_key_env, bool(env.get(cfg.api_key_env))
    if env.get(BEARER_ENV):
        return BEARER_ENV, True
    signed = bool(all(env.get(v) for v in KEY_ENVS) or env.get("AWS_PROFILE"))
    if signed and not _botocore():
        return f"botocore to sign with the AWS credentials ({INSTALL})", False
    return f"AWS credentials ({' + '.join(KEY_ENVS)}, AWS_PROFILE or {BEARER_ENV})", signed


def connect(
    cfg: ModelConfig, wire: Wire, session: aiohttp.ClientSession | None, env: Mapping[str, str]
) -> HttpProvider:
    """The model over HTTP: a Bedrock API key as Bearer if one is set, else SigV4 signing."""
    region = region_of(cfg)
    var = cfg.api_key_env or BEARER_ENV
    token = env.get(var)
    if cfg.api_key_env and not token:
        raise ConfigError(f"model {cfg.name!r}: the environment variable {var} is not set; "
                          f"export {var}=<your Bedrock API key> (keys never go in the config)")
    if token:
        fix = f"check the Bedrock API key in ${var} (it may have expired)"
        return HttpProvider(cfg, wire, session, token, failures=BedrockFailures(token, fix, region))
    creds = _credentials(cfg, env)
    fix = ("check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (temporary "
           "credentials expire; renew them) or AWS_PROFILE")
    failures = BedrockFailures(creds.secret_key, fix, region)
    return HttpProvider(cfg, wire, session, None, sign=sigv4_signer(creds, region),
                        failures=failures)


SPEC = register(ProviderSpec(
    name="bedrock", wire=lambda cfg, env: BedrockConverse(cfg), connect=connect,
    credentials=credentials,
    settings=(
        Setting("region", str, "", "the AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION); "
                "part of the URL, so write it to pin the job ids"),
        Setting("thinking_budget", int, 0, "Claude's thinking budget in tokens when reasoning "
                "= true (0: derived from max_tokens, as for anthropic)"),
    ),
    reasoning=ReasoningRules(guess=_REASONING),
    no_batch_why=" vpbatch can drive: Bedrock batch inference runs jobs over S3 files",
))
