"""Choice mode: the paper's prompt, a JSON answer constrained to the six phrases, read exactly.

Reading (never a guess), the phrase order each prompt lists, the config key, the request each
provider sends, and the whole path through `vpbatch sim serve` on 127.0.0.1, online and batch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from vpbatch.benchmark.choice import (
    CHOICE_PROPERTY,
    choice_schema,
    options_in,
    parse_choice,
    rate,
)
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.benchmark.dims import PHRASES, VERSIONS
from vpbatch.benchmark.parser import parse_official, parse_strict
from vpbatch.benchmark.prompts import KINDS, load_templates
from vpbatch.config.schema import Config, ModelConfig, load_config, parse_config
from vpbatch.errors import ConfigError, DataError
from vpbatch.log.runlog import iter_log
from vpbatch.providers.anthropic import anthropic_provider
from vpbatch.providers.openai import openai_provider
from vpbatch.providers.openrouter import openrouter_provider
from vpbatch.sim.server import RunningServer, SimServerConfig, start_server
from vpbatch.sweep.engine import sweep
from vpbatch.sweep.grid import iter_model_jobs
from vpbatch.transport import retry
from vpbatch.transport.records import ProviderError, RequestParams

pytestmark = pytest.mark.timeout(120)

ORDER = tuple(PHRASES)  # very much like me ... not like me at all, as v1 lists them
CHOICE = RequestParams(temperature=0.0, max_tokens=64, seed=42, choice=ORDER)
MSGS = [{"role": "user", "content": "How similar is this response to your own thoughts?"}]


@pytest.fixture(autouse=True)
def _data(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))


# -- reading a choice answer -----------------------------------------------------------------


@pytest.mark.parametrize("phrase", PHRASES)
def test_each_member_rates_as_its_phrase(phrase: str) -> None:
    assert parse_choice(orjson.dumps({"answer": phrase}).decode()) == (PHRASES[phrase], None)


def test_whitespace_a_server_puts_around_the_json_is_json() -> None:
    assert parse_choice('\n{ "answer" :"a little like me"}  ') == (3, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("like me", "invalid JSON"),  # the phrase without the object is not a guessable answer
        ('{"answer": "somewhat like', "invalid JSON"),  # cut off at max_tokens
        ('```json\n{"answer": "like me"}\n```', "invalid JSON"),
        ('{"answer": "like me"} {"answer": "not like me"}', "invalid JSON"),
        ("I'm sorry, I can't help with that.", "refusal"),
        ('["like me"]', "not an object"),
        ('{"rating": "like me"}', "no 'answer' field"),
        ('{"answer": "like me", "why": "kind"}', "extra fields"),
        ('{"answer": "Like me"}', "not an option"),
        ('{"answer": "like me."}', "not an option"),
        ('{"answer": 5}', "not an option"),
        ("", "empty"),
        ("  \n", "empty"),
    ],
)
def test_anything_but_one_member_is_a_parse_failure_with_its_reason(text: str, reason: str) -> None:
    assert parse_choice(text) == (None, reason)


def test_a_choice_answer_fills_both_rating_fields_and_names_its_mode() -> None:
    r = rate('{"answer": "not like me"}', "choice")
    assert (r.rating, r.rating_strict, r.strict_reason, r.mode) == (2, 2, None, "choice")
    bad = rate("not like me", "choice")
    assert (bad.rating, bad.rating_strict, bad.strict_reason) == (None, None, "invalid JSON")


def test_text_mode_is_the_official_and_the_strict_parser_unchanged() -> None:
    for text in ("Somewhat like me.", "I don't think it's like me.", '{"answer": "like me"}'):
        r = rate(text)
        strict = parse_strict(text)
        assert (r.rating, r.rating_strict, r.strict_reason, r.mode) == (
            parse_official(text), strict.rating, strict.reason, "text")


# -- the schema and the phrase order of each prompt ------------------------------------------


def test_the_schema_is_one_required_string_member_of_the_options_and_nothing_else() -> None:
    assert choice_schema(ORDER) == {
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(ORDER)}},
        "required": ["answer"],
        "additionalProperties": False,
    }


def test_every_template_lists_the_six_phrases_and_reversed_ones_the_other_way(
    data_dir: Path,
) -> None:
    templates = load_templates(data_dir)
    for version in VERSIONS:
        for kind in KINDS:
            want = ORDER[::-1] if version.endswith("_reversed") else ORDER
            assert options_in(templates[version][kind]) == want, (version, kind)


def test_a_template_without_the_phrase_list_is_a_data_error() -> None:
    with pytest.raises(DataError, match="six answer phrases"):
        options_in("Response: {content}\nvery much like me\nlike me\n")


# -- the config ------------------------------------------------------------------------------

BASE = '[run]\nname = "c"\n{run}\n[[models]]\nname = "m"\nprovider = "{provider}"\n' \
       'model = "x"\nbase_url = "http://127.0.0.1:9/v1"\n{model}\n'


def config(run: str = "", model: str = "", provider: str = "openai") -> Config:
    return parse_config(BASE.format(run=run, model=model, provider=provider), check_env=False,
                        check_data=False)


def test_answer_defaults_to_the_papers_text() -> None:
    assert config().models[0].answer == "text"


def test_a_model_inherits_the_runs_answer_and_may_override_it() -> None:
    assert config(run='answer = "choice"').models[0].answer == "choice"
    assert config(run='answer = "choice"', model='answer = "text"').models[0].answer == "text"


@pytest.mark.parametrize("where", ["run", "model"])
def test_an_unknown_answer_mode_is_refused_with_the_choices(where: str) -> None:
    with pytest.raises(ConfigError, match=r'answer.*"text" or "choice"'):
        config(**{where: 'answer = "json"'})


def test_choice_format_json_object_is_only_for_openai_compatible_servers() -> None:
    assert config(model='choice_format = "json_object"').models[0].choice_format == "json_object"
    with pytest.raises(ConfigError, match="takes only json_schema"):
        config(model='choice_format = "json_object"', provider="anthropic")
    with pytest.raises(ConfigError, match="unknown choice format"):
        config(model='choice_format = "grammar"')


# -- what the grid sends ---------------------------------------------------------------------


def jobs(cfg: Config, data_dir: Path, items: int = 2) -> list[Any]:
    from vpbatch.benchmark.conditions import load_conditions

    cfg.run.items = items
    ds = load_dataset(data_dir)
    return list(iter_model_jobs(cfg, cfg.models[0], ds, load_conditions(None)))


def test_choice_mode_sends_the_papers_prompt_byte_for_byte(data_dir: Path) -> None:
    text, choice = jobs(config(), data_dir), jobs(config(run='answer = "choice"'), data_dir)
    assert [j.messages for j in text] == [j.messages for j in choice]
    assert all(j.body["messages"] == j.messages for j in choice)


def test_switching_modes_makes_new_jobs(data_dir: Path) -> None:
    text, choice = jobs(config(), data_dir), jobs(config(run='answer = "choice"'), data_dir)
    assert not {j.job_id for j in text} & {j.job_id for j in choice}
    assert all("response_format" not in j.body for j in text)


def test_each_versions_enum_follows_the_order_its_prompt_lists(data_dir: Path) -> None:
    for job in jobs(config(run='answer = "choice"'), data_dir):
        enum = job.body["response_format"]["json_schema"]["schema"]["properties"]["answer"]
        listed = [s for s in job.messages[-1]["content"].splitlines() if s in PHRASES]
        assert enum["enum"] == listed == list(job.params.choice)


def test_anthropic_thinking_with_a_choice_is_refused_before_anything_is_sent(
    data_dir: Path,
) -> None:
    cfg = config(run='answer = "choice"', model="reasoning = true\nmax_tokens = 4096",
                 provider="anthropic")
    with pytest.raises(ConfigError, match="reasoning = false"):
        jobs(cfg, data_dir)


# -- each provider's request and answer ------------------------------------------------------


def test_openai_asks_for_strict_structured_output() -> None:
    body = openai_provider(ModelConfig("m", "openai", "gpt-4o"), None, "k").build_request(
        MSGS, CHOICE).body
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "strict": True, "schema": choice_schema(ORDER)},
    }


def test_llama_cpp_pythons_server_gets_its_json_object_form() -> None:
    cfg = ModelConfig("m", "openai", "x", base_url="http://127.0.0.1:8080/v1",
                      choice_format="json_object")
    body = openai_provider(cfg, None, None).build_request(MSGS, CHOICE).body
    assert body["response_format"] == {"type": "json_object", "schema": choice_schema(ORDER)}


def test_openrouter_routes_a_choice_only_to_providers_that_take_response_format() -> None:
    cfg = ModelConfig("m", "openrouter", "meta-llama/llama-3.1-8b-instruct",
                      extra_body={"provider": {"order": ["groq"]}})
    body = openrouter_provider(cfg, None, "k").build_request(MSGS, CHOICE).body
    assert body["provider"] == {"require_parameters": True, "order": ["groq"]}
    assert body["response_format"]["type"] == "json_schema"
    plain = openrouter_provider(cfg, None, "k").build_request(MSGS, RequestParams(0.0, 64, 42))
    assert "require_parameters" not in plain.body["provider"]


def test_anthropic_forces_one_call_of_a_tool_whose_input_is_the_answer() -> None:
    body = anthropic_provider(ModelConfig("m", "anthropic", "claude-sonnet-4-5"), None,
                              "k").build_request(MSGS, CHOICE).body
    assert body["tools"] == [{"name": "answer", "input_schema": choice_schema(ORDER)}]
    assert body["tool_choice"] == {"type": "tool", "name": "answer",
                                   "disable_parallel_tool_use": True}


def test_anthropic_thinking_cannot_be_forced_to_a_tool() -> None:
    wire = anthropic_provider(ModelConfig("m", "anthropic", "claude-sonnet-4-5"), None, "k")
    params = RequestParams(None, 4096, None, reasoning=True, choice=ORDER)
    with pytest.raises(ProviderError, match="forced tool"):
        wire.build_request(MSGS, params)


def test_anthropics_tool_call_is_read_as_the_json_answer() -> None:
    reply = {"id": "msg_1", "type": "message", "role": "assistant", "model": "c",
             "content": [{"type": "tool_use", "id": "toolu_1", "name": "answer",
                          "input": {"answer": "somewhat like me"}}],
             "stop_reason": "tool_use", "usage": {"input_tokens": 9, "output_tokens": 3}}
    provider = anthropic_provider(ModelConfig("m", "anthropic", "c"), None, "k")
    answer = provider.parse(200, {}, orjson.dumps(reply))
    assert (answer.finish_reason, parse_choice(answer.text)) == ("stop", (4, None))


def test_an_openai_refusal_is_a_refusal_not_an_answer() -> None:
    reply = {"choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": None, "refusal": "I'm sorry, I can't assist with that."}}]}
    answer = openai_provider(ModelConfig("m", "openai", "gpt-4o"), None, "k").parse(
        200, {}, orjson.dumps(reply))
    assert parse_choice(answer.text) == (None, "refusal")


# -- the whole path through `vpbatch sim serve` ----------------------------------------------


@contextlib.asynccontextmanager
async def serving(**kw: Any) -> AsyncIterator[RunningServer]:
    srv = await start_server(SimServerConfig(clock=retry.now, batch_delay_s=300.0, **kw))
    try:
        yield srv
    finally:
        await srv.close()


def sweep_config(path: Path, url: str, models: str, items: int = 12) -> Config:
    path.write_text(f'[run]\nname = "s"\nversions = ["v1", "v1_reversed"]\nitems = {items}\n'
                    f"{models}")
    return load_config(path, check_env=False)


def model(name: str, answer: str, provider: str = "openai", url: str = "", extra: str = "",
          sim: str = "sim:achiever") -> str:
    return (f'\n[[models]]\nname = "{name}"\nprovider = "{provider}"\nmodel = "{sim}"\n'
            f'base_url = "{url}"\nanswer = "{answer}"\n{extra}')


def by_item(rows: list[dict[str, Any]], name: str) -> dict[tuple[Any, ...], int]:
    return {(r["version"], r["portrait_id"], r["option_id"]): r["rating"]
            for r in rows if r["model"] == name}


def test_sim_serve_answers_a_choice_as_json_and_it_rates_as_the_same_respondent_in_text(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with serving() as srv:
            cfg = sweep_config(tmp_path / "c.toml", srv.url,
                               model("choice", "choice", url=srv.url)
                               + model("object", "choice", url=srv.url,
                                       extra='choice_format = "json_object"')
                               + model("text", "text", url=srv.url))
            summary = await sweep(cfg, tmp_path / "run", handle_signals=False, progress=False)
            assert summary.complete

    anyio.run(main)
    rows = list(iter_log(tmp_path / "run" / "log.jsonl"))
    choice = [r for r in rows if r["model"] in ("choice", "object")]
    assert len(choice) == 48 and all(r["answer_mode"] == "choice" for r in choice)
    assert all(orjson.loads(r["raw"]).keys() == {CHOICE_PROPERTY} for r in choice)
    assert {r["answer_mode"] for r in rows if r["model"] == "text"} == {"text"}
    # The respondent draws its rating from the prompt alone, so the modes agree item by item.
    assert by_item(rows, "choice") == by_item(rows, "object") == by_item(rows, "text")
    assert all(v is not None for v in by_item(rows, "choice").values())


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batch_sends_the_same_choice_body_and_reads_the_same_answer(
    tmp_path: Path, provider: str
) -> None:
    async def main() -> None:
        async with serving() as srv:
            cfg = sweep_config(tmp_path / "c.toml", srv.url,
                               model("b", "choice", provider, srv.url, 'mode = "batch"'), 3)
            with retry.testing():
                summary = await sweep(cfg, tmp_path / "run", handle_signals=False,
                                      progress=False, env={**os.environ})
            assert summary.complete and srv.stats.batch_requests == 6

    anyio.run(main)
    rows = list(iter_log(tmp_path / "run" / "log.jsonl"))
    assert len(rows) == 6
    assert all(r["answer_mode"] == "choice" and r["rating"] in range(1, 7) for r in rows)
    key = "tool_choice" if provider == "anthropic" else "response_format"
    assert all(key in r["request"] for r in rows)


def test_sim_serve_refuses_a_schema_it_cannot_honour(tmp_path: Path) -> None:
    import aiohttp

    body = {"model": "sim", "messages": MSGS, "max_tokens": 64, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}

    async def main() -> None:
        async with (serving() as srv, aiohttp.ClientSession() as session,
                    session.post(srv.url + "/chat/completions", json=body) as r):
            assert r.status == 400
            assert "only the choice schema" in (await r.json())["error"]["message"]

    anyio.run(main)


def test_a_replayed_model_cannot_answer_a_choice(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving() as srv:
            cfg = sweep_config(tmp_path / "c.toml", srv.url, model(
                "r", "choice", url=srv.url, sim="replay:gpt-4o-2024-05-13"), 1)
            await sweep(cfg, tmp_path / "run", handle_signals=False, progress=False)

    anyio.run(main)
    (row, *_) = list(iter_log(tmp_path / "run" / "log.jsonl"))
    assert row["status"] == "failed" and "free text" in row["error"]


def test_the_in_process_sim_answers_a_choice_like_sim_serve(tmp_path: Path) -> None:
    sim = '\n[[models]]\nname = "p"\nprovider = "sim"\nmodel = "sim:achiever"\nanswer = "choice"\n'

    async def main() -> None:
        async with serving() as srv:
            cfg = sweep_config(tmp_path / "c.toml", srv.url,
                               sim + model("h", "choice", url=srv.url), 4)
            await sweep(cfg, tmp_path / "run", handle_signals=False, progress=False)

    anyio.run(main)
    rows = list(iter_log(tmp_path / "run" / "log.jsonl"))
    assert by_item(rows, "p") == by_item(rows, "h")
    assert {r["raw"] for r in rows if r["model"] == "p"} <= {
        orjson.dumps({"answer": p}).decode() for p in PHRASES}


def test_llama_cpp_pythons_500_for_json_schema_is_permanent_and_names_the_fix() -> None:
    # The body its server (0.3.x) sends for response_format type json_schema, as recorded.
    raw = orjson.dumps({"error": {"message": (
        "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
        "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}"
    )}})
    provider = openai_provider(ModelConfig("m", "openai", "x"), None, None)
    with pytest.raises(ProviderError) as info:
        provider.parse(500, {}, raw)
    assert info.value.kind.value == "permanent"
    assert 'choice_format = "json_object"' in info.value.message
    with pytest.raises(ProviderError) as other:
        provider.parse(500, {}, b'{"error": {"message": "The server had an error"}}')
    assert other.value.kind.value == "transient"


# -- one label, one mode; and every output says which --------------------------------------


def run_text_then(tmp_path: Path, second: str) -> tuple[Path, Exception | None]:
    """A sim model answered in text mode, then the config changed to `second` and forced."""
    from vpbatch.errors import RunDirError

    first = sweep_config(tmp_path / "a.toml", "", model("m", "text", "sim", extra="", url=""), 2)
    anyio.run(lambda: sweep(first, tmp_path / "run", handle_signals=False, progress=False))
    cfg = sweep_config(tmp_path / "b.toml", "", second, 2)
    try:
        anyio.run(lambda: sweep(cfg, tmp_path / "run", force=True, handle_signals=False,
                                progress=False))
    except RunDirError as exc:
        return tmp_path / "run", exc
    return tmp_path / "run", None


def test_a_forced_config_cannot_switch_a_logged_models_mode(tmp_path: Path) -> None:
    run, err = run_text_then(tmp_path, model("m", "choice", "sim", url=""))
    assert err is not None and 'name = "m-choice"' in str(err) and "text-mode" in str(err)
    assert 'answer = "text"' in (run / "config.toml").read_text()  # the old config stays
    assert {r["answer_mode"] for r in iter_log(run / "log.jsonl")} == {"text"}


def test_the_choice_mode_under_its_own_label_joins_the_run(tmp_path: Path) -> None:
    run, err = run_text_then(tmp_path, model("m", "text", "sim", url="")
                             + model("m-choice", "choice", "sim", url=""))
    assert err is None
    modes = {(r["model"], r["answer_mode"]) for r in iter_log(run / "log.jsonl")}
    assert modes == {("m", "text"), ("m-choice", "choice")}


def rows_for(mode_of: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for name, modes in mode_of.items():
        for k, mode in enumerate(modes):
            rows.append({"job_id": f"{name}-{k}", "model": name, "condition": "vanilla",
                         "version": "v1", "portrait_id": 1003, "option_id": 1 + k,
                         "status": "ok", "rating": 4, "answer_mode": mode})
    return rows


def test_the_cube_says_which_mode_rated_each_model_and_flags_a_mix(data_dir: Path) -> None:
    from vpbatch.scoring.cube import cube_from_rows

    cube = cube_from_rows(rows_for({"t": ["text", "text"], "c": ["choice", "choice"],
                                    "x": ["text", "choice"]}), load_dataset(data_dir))
    assert cube.answer_modes == {"t": "text", "c": "choice", "x": "mixed"}


def test_scores_json_the_table_the_report_and_plan_name_the_mode(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from vpbatch.cli import cli

    cfg = sweep_config(tmp_path / "c.toml", "", model("t", "text", "sim", url="")
                       + model("c", "choice", "sim", url=""), 4)
    anyio.run(lambda: sweep(cfg, tmp_path / "run", handle_signals=False, progress=False))
    runner = CliRunner()
    scored = runner.invoke(cli, ["score", str(tmp_path / "run")])
    assert scored.exit_code == 0, scored.output
    assert "\nc (choice) " in scored.output and "\nt " in scored.output
    doc = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert doc["answer_modes"] == {"t": "text", "c": "choice"}
    assert runner.invoke(cli, ["report", str(tmp_path / "run"), "--boot", "0"]).exit_code == 0
    md = (tmp_path / "run" / "report.md").read_text()
    assert "| c (choice) |" in md and "| t |" in md
    health = md.split("### Failures, retries, tokens, cost", 1)[1]
    assert [ln.split("|")[1].strip() for ln in health.splitlines()[4:6]] == ["t", "c (choice)"]
    assert "c (choice)" in (tmp_path / "run" / "report.html").read_text()
    plan = runner.invoke(cli, ["plan", str(tmp_path / "c.toml"), "--json"])
    assert [m["answer"] for m in json.loads(plan.output)["models"]] == ["text", "choice"]
    table = runner.invoke(cli, ["plan", str(tmp_path / "c.toml")]).output
    assert "answers" in table and " choice " in table
