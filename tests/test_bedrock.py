"""`provider = "bedrock"`: the Converse request checked against botocore's own service model,
its SigV4 signature against botocore's own signer, and the wire against a loopback Bedrock
that re-signs each request it receives."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import botocore.auth
import botocore.session
import pytest
from bedrock_server import ACCESS, SECRET, Bedrock, Seen, converse
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.validate import ParamValidator

from vpbatch.config.schema import ModelConfig, load_config
from vpbatch.errors import ConfigError
from vpbatch.providers.bedrock import INSTALL, BedrockConverse, sigv4_signer
from vpbatch.providers.registry import make_provider, wire_for
from vpbatch.transport.records import FailureKind, ProviderError, RequestParams

PROFILE_ID = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-7-sonnet"
PARAMS = RequestParams(temperature=0.0, max_tokens=64, seed=42)
MESSAGES = [{"role": "system", "content": "You are Ana."},
            {"role": "user", "content": "Is this person like you?"}]
AWS_ENV = {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' AWS settings are their own, never the machine's."""
    for var in [v for v in os.environ if v.startswith("AWS_")]:
        monkeypatch.delenv(var)


def model(tmp_path: Path, model_id: str = PROFILE_ID, extra: str = 'region = "us-east-1"',
          run: str = "") -> ModelConfig:
    path = tmp_path / "c.toml"
    path.write_text(f'[run]\nname = "r"\n{run}\n[[models]]\nname = "m"\nprovider = "bedrock"\n'
                    f'model = "{model_id}"\n{extra}\n')
    return load_config(path, check_env=False, check_data=False).models[0]


# -- the request: URL and body -----------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "path"), [
    (PROFILE_ID, "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"),
    (ARN, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
          "us.anthropic.claude-3-7-sonnet/converse"),
])
def test_the_url_holds_the_region_and_the_model_id_url_encoded(
    tmp_path: Path, model_id: str, path: str
) -> None:
    wire = wire_for(model(tmp_path, model_id))
    assert wire.url == "https://bedrock-runtime.us-east-1.amazonaws.com" + path


def test_the_region_defaults_to_aws_region(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    assert "bedrock-runtime.eu-west-3." in wire_for(model(tmp_path, extra="")).url


def test_no_region_anywhere_is_a_config_error_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='set region = "us-east-1".*AWS_REGION'):
        wire_for(model(tmp_path, extra=""))


def test_the_body_carries_system_messages_and_inference_config(tmp_path: Path) -> None:
    body = wire_for(model(tmp_path)).body(MESSAGES, PARAMS)
    assert body == {"messages": [{"role": "user",
                                  "content": [{"text": "Is this person like you?"}]}],
                    "system": [{"text": "You are Ana."}],
                    "inferenceConfig": {"maxTokens": 64, "temperature": 0.0}}


def test_claude_thinking_goes_in_additional_fields_without_temperature(tmp_path: Path) -> None:
    body = wire_for(model(tmp_path)).body(
        MESSAGES, RequestParams(temperature=0.0, max_tokens=4096, seed=None, reasoning=True))
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": 3072}}
    assert body["inferenceConfig"] == {"maxTokens": 4096}


def test_a_thinking_budget_setting_overrides_the_derived_one(tmp_path: Path) -> None:
    m = model(tmp_path, extra='region = "us-east-1"\nthinking_budget = 2000\nreasoning = true')
    body = wire_for(m).body(MESSAGES, RequestParams(0.0, 4096, None, reasoning=True))
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2000


def test_a_reasoning_model_that_is_not_claude_is_sent_no_thinking(tmp_path: Path) -> None:
    body = wire_for(model(tmp_path, "us.deepseek.r1-v1:0")).body(
        MESSAGES, RequestParams(0.6, 4096, None, reasoning=True))
    assert "additionalModelRequestFields" not in body
    assert body["inferenceConfig"] == {"maxTokens": 4096, "temperature": 0.6}


def test_a_thinking_budget_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProviderError, match="thinking_budget < max_tokens"):
        wire_for(model(tmp_path)).body(MESSAGES, RequestParams(0.0, 512, None, reasoning=True))


# -- the contract: botocore's service model for bedrock-runtime Converse -----------------------


@pytest.fixture(scope="module")
def converse_input() -> Any:
    service = botocore.session.get_session().get_service_model("bedrock-runtime")
    return service.operation_model("Converse").input_shape


def validate(shape: Any, wire: BedrockConverse, body: dict[str, Any]) -> None:
    # The modelId is the URL's; the validator wants it among the parameters.
    report = ParamValidator().validate({"modelId": wire.cfg.model, **body}, shape)
    assert not report.has_errors(), report.generate_report()


@pytest.mark.parametrize(("extra", "params"), [
    ('region = "us-east-1"', PARAMS),
    ('region = "us-east-1"', RequestParams(0.0, 4096, None, reasoning=True)),
    ('region = "us-east-1"\nanswer = "choice"',
     RequestParams(0.0, 64, 42, choice=("Very much like me", "Not like me at all"))),
], ids=["text", "thinking", "choice"])
def test_every_body_is_a_valid_converse_request(
    tmp_path: Path, converse_input: Any, extra: str, params: RequestParams
) -> None:
    wire = wire_for(model(tmp_path, extra=extra))
    assert isinstance(wire, BedrockConverse)
    validate(converse_input, wire, wire.body(MESSAGES, params))


def test_the_contract_check_rejects_a_body_botocore_would_refuse(
    tmp_path: Path, converse_input: Any
) -> None:
    wire = wire_for(model(tmp_path))
    assert isinstance(wire, BedrockConverse)
    body = wire.body(MESSAGES, PARAMS)
    body["inferenceConfig"]["maxTokens"] = "64"  # a string where an integer belongs
    with pytest.raises(AssertionError, match="maxTokens"):
        validate(converse_input, wire, body)


# -- the signature: botocore's own signer, a frozen clock --------------------------------------

FROZEN = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.UTC)


class _Frozen(datetime.datetime):
    @classmethod
    def utcnow(cls) -> datetime.datetime:
        return FROZEN.replace(tzinfo=None)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's signing clock stopped at FROZEN (the signer asks it for X-Amz-Date)."""
    if hasattr(botocore.auth, "get_current_datetime"):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: FROZEN)
    else:  # botocore before 1.40 (the floor is 1.34.116) calls datetime.datetime.utcnow()
        monkeypatch.setattr(botocore.auth, "datetime", SimpleNamespace(datetime=_Frozen))


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEXAMPLE"])
def test_a_request_is_signed_exactly_as_botocore_signs_it(frozen: None, token: str | None) -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/x%3A0/converse"
    headers, data = {"Accept": "application/json", "Content-Type": "application/json"}, b"{}"
    creds = Credentials(ACCESS, SECRET, token)
    ours = sigv4_signer(creds, "us-east-1")("POST", url, headers, data)
    theirs = AWSRequest(method="POST", url=url, data=data, headers=dict(headers))
    SigV4Auth(creds, "bedrock", "us-east-1").add_auth(theirs)
    assert ours["Authorization"] == theirs.headers["Authorization"]
    assert ours["X-Amz-Date"] == "20261207T120000Z"
    assert ours.get("X-Amz-Security-Token") == token


def test_the_signature_covers_the_body(frozen: None) -> None:
    sign = sigv4_signer(Credentials(ACCESS, SECRET), "us-east-1")
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/x/converse"
    one, two = (sign("POST", url, {}, body)["Authorization"] for body in (b"{}", b"{ }"))
    assert one != two


# -- over the wire: a loopback Bedrock that re-signs what it receives --------------------------


@pytest.fixture
def bedrock() -> Iterator[Bedrock]:
    with Bedrock() as server:
        yield server


def at(tmp_path: Path, server: Bedrock, extra: str = "") -> ModelConfig:
    return model(tmp_path, extra=f'region = "{server.region}"\nbase_url = "{server.url}"\n'
                 + extra)


async def ask(cfg: ModelConfig, env: dict[str, str], params: RequestParams = PARAMS) -> Any:
    async with aiohttp.ClientSession() as session:
        return await make_provider(cfg, session, env).complete(MESSAGES, params)


@pytest.mark.anyio
async def test_a_signed_request_arrives_as_signed_at_its_url(
    tmp_path: Path, bedrock: Bedrock
) -> None:
    answer = await ask(at(tmp_path, bedrock), AWS_ENV)
    assert answer.text == "Somewhat like me." and answer.finish_reason == "stop"
    assert answer.usage == {"prompt_tokens": 100, "completion_tokens": 4}
    seen = bedrock.seen[0]
    assert seen.verified
    assert seen.raw_path == "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.body["inferenceConfig"] == {"maxTokens": 64, "temperature": 0.0}


@pytest.mark.anyio
async def test_a_session_token_is_sent_and_signed(tmp_path: Path) -> None:
    with Bedrock(session_token="FQoGZXIvYXdzEXAMPLE") as server:
        await ask(at(tmp_path, server), {**AWS_ENV, "AWS_SESSION_TOKEN": "FQoGZXIvYXdzEXAMPLE"})
    assert server.seen[0].verified
    assert server.seen[0].headers["X-Amz-Security-Token"] == "FQoGZXIvYXdzEXAMPLE"


@pytest.mark.anyio
async def test_a_wrong_secret_is_an_auth_failure_naming_the_variables(
    tmp_path: Path, bedrock: Bedrock
) -> None:
    env = {**AWS_ENV, "AWS_SECRET_ACCESS_KEY": "not-the-secret-at-all"}
    with pytest.raises(ProviderError) as err:
        await ask(at(tmp_path, bedrock), env)
    assert err.value.auth and err.value.kind is FailureKind.PERMANENT
    assert "InvalidSignatureException" in err.value.message
    assert "AWS_SECRET_ACCESS_KEY" in err.value.message


@pytest.mark.anyio
async def test_a_bedrock_api_key_is_sent_as_bearer_and_nothing_is_signed(
    tmp_path: Path
) -> None:
    with Bedrock(token="bedrock-api-key-EXAMPLE") as server:
        await ask(at(tmp_path, server), {**AWS_ENV, "AWS_BEARER_TOKEN_BEDROCK":
                                         "bedrock-api-key-EXAMPLE"})
    seen = server.seen[0]
    assert seen.verified and "X-Amz-Date" not in seen.headers


@pytest.mark.anyio
async def test_api_key_env_names_the_bedrock_api_key_variable(tmp_path: Path) -> None:
    with Bedrock(token="bedrock-api-key-EXAMPLE") as server:
        await ask(at(tmp_path, server, 'api_key_env = "MY_BEDROCK_KEY"'),
                  {"MY_BEDROCK_KEY": "bedrock-api-key-EXAMPLE"})
    assert server.seen[0].verified


@pytest.mark.anyio
async def test_a_profile_from_aws_profile_signs_the_request(tmp_path: Path) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(f"[lab]\naws_access_key_id = {ACCESS}\naws_secret_access_key = {SECRET}\n")
    env = {"AWS_PROFILE": "lab", "AWS_SHARED_CREDENTIALS_FILE": str(creds),
           "AWS_CONFIG_FILE": str(tmp_path / "none")}
    with Bedrock() as server:
        await ask(at(tmp_path, server), env)
    assert server.seen[0].verified


def test_no_credentials_is_a_config_error_naming_the_variables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AWS_ACCESS_KEY_ID.*AWS_PROFILE.*"
                       "AWS_BEARER_TOKEN_BEDROCK"):
        make_provider(model(tmp_path), None, {})


def test_without_botocore_signing_is_refused_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in sys.modules if n == "botocore" or n.startswith("botocore.")]:
        monkeypatch.setitem(sys.modules, name, None)  # an import of it now fails
    with pytest.raises(ConfigError, match=INSTALL.replace("[", r"\[").replace("]", r"\]")):
        make_provider(model(tmp_path), None, AWS_ENV)


def test_without_botocore_a_bedrock_api_key_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in sys.modules if n == "botocore" or n.startswith("botocore.")]:
        monkeypatch.setitem(sys.modules, name, None)
    provider = make_provider(model(tmp_path), None, {"AWS_BEARER_TOKEN_BEDROCK": "k-EXAMPLE"})
    assert provider.build_request(MESSAGES, PARAMS).headers["Authorization"] == "Bearer k-EXAMPLE"


# -- answers and error shapes ------------------------------------------------------------------


def replying(status: int, payload: Any, headers: dict[str, str] | None = None) -> Bedrock:
    def reply(seen: Seen) -> tuple[int, dict[str, str], Any]:
        return status, headers or {}, payload
    return Bedrock(reply=reply)


@pytest.mark.anyio
async def test_reasoning_blocks_are_kept_apart_from_the_answer(tmp_path: Path) -> None:
    thought = {"reasoningContent": {"reasoningText": {"text": "Ana values order.",
                                                      "signature": "sig"}}}
    with replying(200, converse("Like me.", blocks=[thought])) as server:
        answer = await ask(at(tmp_path, server), AWS_ENV)
    assert (answer.text, answer.reasoning) == ("Like me.", "Ana values order.")


@pytest.mark.anyio
async def test_an_answer_cut_off_at_max_tokens_says_length(tmp_path: Path) -> None:
    with replying(200, converse("Somewhat", stop="max_tokens")) as server:
        answer = await ask(at(tmp_path, server), AWS_ENV)
    assert answer.finish_reason == "length"


@pytest.mark.anyio
@pytest.mark.parametrize(("stop", "reason"), [("guardrail_intervened", "guardrail"),
                                               ("content_filtered", "content filter")])
async def test_a_blocked_answer_is_a_permanent_failure_with_its_reason(
    tmp_path: Path, stop: str, reason: str
) -> None:
    with replying(200, converse("", stop=stop)) as server, pytest.raises(ProviderError) as err:
        await ask(at(tmp_path, server), AWS_ENV)
    assert err.value.kind is FailureKind.PERMANENT and reason in err.value.message


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "kind", "message", "failure", "auth", "says"), [
    (429, "ThrottlingException", "Too many requests", FailureKind.RATE_LIMITED, False, "quota"),
    (429, "ModelNotReadyException", "Model is not ready", FailureKind.TRANSIENT, False, "ready"),
    (503, "ServiceUnavailableException", "Unavailable", FailureKind.TRANSIENT, False, "Bedrock"),
    (400, "ValidationException", "maxTokens too big", FailureKind.PERMANENT, False, "too big"),
    (403, "AccessDeniedException", "You don't have access to the model with the specified "
     "model ID.", FailureKind.PERMANENT, True, "Model access, region us-east-1"),
    (403, "UnrecognizedClientException", "The security token included in the request is "
     "invalid.", FailureKind.PERMANENT, True, "AWS_ACCESS_KEY_ID"),
    (403, "ExpiredTokenException", "The security token included in the request is expired",
     FailureKind.PERMANENT, True, "AWS_SESSION_TOKEN"),
], ids=lambda x: x if isinstance(x, str) and x.endswith("Exception") else None)
async def test_bedrock_error_types_are_classified_once_with_the_fix(
    tmp_path: Path, status: int, kind: str, message: str, failure: FailureKind, auth: bool,
    says: str,
) -> None:
    headers = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    with replying(status, {"message": message}, headers) as server, \
            pytest.raises(ProviderError) as err:
        await ask(at(tmp_path, server), AWS_ENV)
    assert (err.value.kind, err.value.auth, err.value.status) == (failure, auth, status)
    assert kind in err.value.message and says in err.value.message


@pytest.mark.anyio
async def test_a_throttle_with_retry_after_waits_that_long(tmp_path: Path) -> None:
    headers = {"x-amzn-ErrorType": "ThrottlingException", "Retry-After": "7"}
    with replying(429, {"message": "slow down"}, headers) as server, \
            pytest.raises(ProviderError) as err:
        await ask(at(tmp_path, server), AWS_ENV)
    assert err.value.retry_after == 7.0


@pytest.mark.anyio
async def test_the_secret_never_appears_in_a_failure_message(tmp_path: Path) -> None:
    echo = {"message": f"bad request signed with {SECRET}"}
    with replying(400, echo, {"x-amzn-ErrorType": "ValidationException"}) as server, \
            pytest.raises(ProviderError) as err:
        await ask(at(tmp_path, server), AWS_ENV)
    assert SECRET not in err.value.message and "***" in err.value.message


# -- config and the CLI ------------------------------------------------------------------------


def test_batch_mode_is_refused_at_load_saying_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bedrock has no batch API.*S3.*mode = \"online\""):
        model(tmp_path, extra='region = "us-east-1"\nmode = "batch"')


def shadowed_botocore(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import botocore` fails, as when the extra is not installed."""
    fake = tmp_path / "no-botocore" / "botocore"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("botocore is not installed")\n')
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    path = os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])
    return {**clean, "PYTHONPATH": path}


def vpbatch(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vpbatch", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=150)


DOCS = Path(__file__).resolve().parent.parent / "docs" / "guides" / "bedrock.md"


def fences(text: str) -> list[str]:
    parts = text.split("```toml\n")[1:]
    return [p.split("```", 1)[0] for p in parts]


def test_each_docs_example_plans_without_credentials_or_botocore(
    tmp_path: Path, data_dir: Path
) -> None:
    examples = fences(DOCS.read_text())
    assert len(examples) >= 3
    env = {**shadowed_botocore(tmp_path), "VPBATCH_DATA": str(data_dir)}
    for i, example in enumerate(examples):
        path = tmp_path / f"example{i}.toml"
        path.write_text(example)
        done = vpbatch(env, "plan", path)
        assert done.returncode == 0, (example, done.stderr)
        assert "bedrock" in done.stdout


@pytest.mark.slow
def test_a_sweep_through_the_cli_is_signed_and_completes(tmp_path: Path, data_dir: Path) -> None:
    cfg = tmp_path / "c.toml"
    with Bedrock() as server:
        cfg.write_text(f'[run]\nname = "bed"\nitems = 3\n[[models]]\nname = "haiku"\n'
                       f'provider = "bedrock"\nmodel = "{PROFILE_ID}"\nregion = "us-east-1"\n'
                       f'base_url = "{server.url}"\n')
        env = {**os.environ, **AWS_ENV, "VPBATCH_DATA": str(data_dir)}
        done = vpbatch(env, "run", cfg, "--run-dir", tmp_path / "run", "--quiet")
    assert done.returncode == 0, done.stderr
    assert len(server.seen) == 18 and all(s.verified for s in server.seen)  # 3 items x 6
    status = vpbatch(env, "status", tmp_path / "run")
    assert "18" in status.stdout


def test_a_run_without_botocore_is_refused_naming_the_extra(
    tmp_path: Path, data_dir: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[run]\nname = "bed"\nitems = 1\n[[models]]\nname = "haiku"\n'
                   f'provider = "bedrock"\nmodel = "{PROFILE_ID}"\nregion = "us-east-1"\n'
                   'base_url = "http://127.0.0.1:9"\n')
    env = {**shadowed_botocore(tmp_path), **AWS_ENV, "VPBATCH_DATA": str(data_dir)}
    done = vpbatch(env, "run", cfg, "--run-dir", tmp_path / "run", "--quiet")
    assert done.returncode != 0
    assert INSTALL in done.stdout + done.stderr


# -- the credentials pre-flight (plan --check-keys, run) ----------------------------------------


def _plan_check_keys(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "c.toml"
    path.write_text(f'[run]\nname = "r"\n\n[[models]]\nprovider = "bedrock"\nmodel = "{PROFILE_ID}"'
                    '\nregion = "us-east-1"\n')
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, "-m", "vpbatch", "plan", "--check-keys", str(path)],
                          capture_output=True, text=True, timeout=120, env={**clean, **env})


def test_check_keys_names_missing_aws_credentials(tmp_path: Path) -> None:
    got = _plan_check_keys(tmp_path, {})
    assert got.returncode == 2
    assert "AWS credentials" in got.stderr and "AWS_BEARER_TOKEN_BEDROCK" in got.stderr


def test_check_keys_is_satisfied_by_aws_keys_and_never_prints_them(tmp_path: Path) -> None:
    got = _plan_check_keys(tmp_path, {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
                                      "AWS_SECRET_ACCESS_KEY": "s3cr3t-never-shown"})
    assert got.returncode == 0, got.stderr
    assert "keys OK" in got.stdout + got.stderr
    assert "s3cr3t-never-shown" not in got.stdout + got.stderr


def test_run_with_no_aws_credentials_exits_2_before_making_a_run_dir(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[run]\nname = "r"\n\n[[models]]\nprovider = "bedrock"\nmodel = "{PROFILE_ID}"'
                    '\nregion = "us-east-1"\n')
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    got = subprocess.run([sys.executable, "-m", "vpbatch", "run", str(path), "--run-dir",
                          str(tmp_path / "rd")], capture_output=True, text=True, timeout=120,
                         env=clean)
    assert got.returncode == 2 and "AWS credentials" in got.stderr
    assert not (tmp_path / "rd").exists()
