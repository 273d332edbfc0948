"""Compact model spellings: model lists and provider defaults; what they expand to,
how errors name the entry, how `vpbatch models` explains it, and that a respelled sweep
resumes without sending anything."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import orjson
import pytest

from vpbatch.benchmark.conditions import load_conditions
from vpbatch.benchmark.dataset import load_dataset
from vpbatch.cli import main
from vpbatch.config.schema import Config, config_digest, load_config
from vpbatch.errors import ConfigError
from vpbatch.sim.server import RunningServer, SimServerConfig, start_server
from vpbatch.sweep.engine import sweep
from vpbatch.sweep.grid import iter_model_jobs, request_params

REPO = Path(__file__).resolve().parent.parent
Cap = pytest.CaptureFixture[str]
ENV = {"OPENROUTER_API_KEY": "sk-or-test", "OPENAI_API_KEY": "sk-test", "MY_KEY": "x"}

# One sweep in two spellings: a table per model, and the compact one. The ids are the
# simulator's, so both can be run against `sim serve`.
VERBOSE = """
[run]
name = "both"
versions = ["v1"]
items = 3
temperature = 0.0

[[models]]
name = "universalist"
provider = "openai"
model = "sim:universalist"
base_url = "{url}"
concurrency = 4
temperature = 0.5

[[models]]
name = "ach"
provider = "openai"
model = "sim:achiever"
base_url = "{url}"
concurrency = 4
temperature = 0.5
max_tokens = 32

[[models]]
name = "sim"
provider = "openrouter"
model = "sim"
base_url = "{url}"
"""
COMPACT = """
[run]             # the order of tables and keys does not matter
versions = ["v1"]
name = "both"
items = 3

[providers.openai]
base_url = "{url}"
concurrency = 4
temperature = 0.5

[[models]]
provider = "openai"
model_prefix = "sim:"
model = ["universalist", { id = "achiever", name = "ach", max_tokens = 32 }]

[[models]]
provider = "openrouter"
model = "sim"      # named after its id
base_url = "{url}"
"""


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text), env=ENV, check_data=False)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    msg = str(exc.value)
    assert "\n" not in msg and exc.value.exit_code == 2
    return msg


def cli(capsys: Cap, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# -- what a compact entry expands to ----------------------------------------------------------


def test_a_model_list_becomes_one_model_per_id_named_after_the_part_after_the_last_slash(
    tmp_path: Path,
) -> None:
    cfg = load(tmp_path, """
[[models]]
provider = "openrouter"
model = ["meta-llama/llama-3.1-8b-instruct", "qwen/qwq-32b", "mistral-tiny"]
rpm = 60
""")
    assert [m.name for m in cfg.models] == ["llama-3.1-8b-instruct", "qwq-32b", "mistral-tiny"]
    assert [m.model for m in cfg.models] == [
        "meta-llama/llama-3.1-8b-instruct", "qwen/qwq-32b", "mistral-tiny"]
    assert {(m.provider, m.rpm, m.api_key_env) for m in cfg.models} == {
        ("openrouter", 60.0, "OPENROUTER_API_KEY")}


def test_names_and_inline_tables_name_the_models_and_inline_keys_override_the_entrys(
    tmp_path: Path,
) -> None:
    cfg = load(tmp_path, """
[[models]]
provider = "openai"
model = ["gpt-4o-2024-11-20", "gpt-4o-mini-2024-07-18"]
names = ["gpt-4o", "gpt-4o-mini"]
concurrency = 16

[[models]]
provider = "openai"
concurrency = 16
model = [{ id = "o3-mini-2025-01-31", name = "o3-mini", max_tokens = 2048, concurrency = 4 }]
""")
    got = [(m.name, m.model, m.concurrency, m.max_tokens) for m in cfg.models]
    assert got == [("gpt-4o", "gpt-4o-2024-11-20", 16, None),
                   ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", 16, None),
                   ("o3-mini", "o3-mini-2025-01-31", 4, 2048)]


def test_model_prefix_goes_before_each_id_and_the_name_comes_from_the_id_as_listed(
    tmp_path: Path,
) -> None:
    cfg = load(tmp_path, """
[[models]]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model_prefix = "replay:"
model = ["gpt-3.5-turbo", "claude-3.7-sonnet:thinking"]
""")
    assert [(m.name, m.model) for m in cfg.models] == [
        ("gpt-3.5-turbo", "replay:gpt-3.5-turbo"),
        ("claude-3.7-sonnet:thinking", "replay:claude-3.7-sonnet:thinking")]


def test_the_models_own_key_beats_the_provider_table_which_beats_run(tmp_path: Path) -> None:
    cfg = load(tmp_path, """
[run]
temperature = 0.0
max_tokens = 100
seed = 7

[providers.openrouter]
temperature = 0.7
max_tokens = 200

[[models]]
provider = "openrouter"
model = ["a/own", "a/provider"]
names = ["own", "provider"]

[[models]]
name = "own-key"
provider = "openrouter"
model = "a/b"
temperature = 1.0

[[models]]
provider = "openai"
model = "run-only"
""")
    got = {m.name: request_params(cfg, m) for m in cfg.models}
    assert (got["own"].temperature, got["own"].max_tokens, got["own"].seed) == (0.7, 200, 7)
    assert (got["own-key"].temperature, got["own-key"].max_tokens) == (1.0, 200)
    assert (got["run-only"].temperature, got["run-only"].max_tokens) == (0.0, 100)


def test_a_models_extra_body_merges_with_its_providers_instead_of_dropping_it(
    tmp_path: Path,
) -> None:
    cfg = load(tmp_path, """
[providers.openrouter]
extra_body = { provider = { data_collection = "deny" }, top_k = 1 }

[[models]]
provider = "openrouter"
model = "a/b"
extra_body = { top_k = 5 }
""")
    assert cfg.models[0].extra_body == {"provider": {"data_collection": "deny"}, "top_k": 5}


def test_both_spellings_expand_to_the_same_models_digest_and_job_ids(
    tmp_path: Path, data_dir: Path,
) -> None:
    url = "http://127.0.0.1:9/v1"
    a = load(tmp_path, VERBOSE.replace("{url}", url))
    b = load(tmp_path, COMPACT.replace("{url}", url))
    assert a.models == b.models and a.run == b.run
    assert config_digest(a.text) == config_digest(b.text)
    ds, conds = load_dataset(data_dir), load_conditions(None)
    for ma, mb in zip(a.models, b.models, strict=True):
        ids_a = [j.job_id for j in iter_model_jobs(a, ma, ds, conds)]
        assert ids_a == [j.job_id for j in iter_model_jobs(b, mb, ds, conds)] and len(ids_a) == 3


def test_the_demo_config_expands_to_the_33_replayed_models_and_the_simulated_one() -> None:
    # check_urls=False: its base_url is the "${SIM_URL}" placeholder the demo fills in.
    cfg = load_config(REPO / "configs" / "demo.toml", check_env=False, check_data=False,
                      check_urls=False)
    replay = [m for m in cfg.models if m.model.startswith("replay:")]
    assert len(replay) == 33 and len(cfg.models) == 34
    assert all(m.model == "replay:" + m.name and m.base_url == "${SIM_URL}" for m in replay)
    assert all(m.concurrency == 8 and m.api_key_env is None for m in replay)
    assert len(cfg.text.splitlines()) < 60  # one screen


# -- errors name the entry, its id and the fix ------------------------------------------------


def test_an_empty_model_list_is_a_config_error(tmp_path: Path, capsys: Cap) -> None:
    path = write(tmp_path, '[[models]]\nprovider = "openai"\nmodel = []\n')
    code, _, err = cli(capsys, "models", str(path))
    assert code == 2 and "models[0].model: is an empty list; list at least one model id" in err


def test_an_id_that_is_not_a_string_names_its_place_and_says_to_quote_it(tmp_path: Path) -> None:
    msg = error_of(tmp_path, '[[models]]\nprovider = "openai"\nmodel = ["gpt-4o", 4]\n')
    assert 'models[0].model[1]: expected a model id (a string)' in msg and 'quote it: "4"' in msg


def test_two_models_that_end_up_with_one_name_are_refused_naming_both(tmp_path: Path) -> None:
    msg = error_of(tmp_path, """
[[models]]
provider = "openai"
model = "gpt-4o"

[[models]]
provider = "openrouter"
model = ["openai/gpt-4o-mini", "openai/gpt-4o"]
""")
    assert "models[1].model[1] (openai/gpt-4o).name: duplicate model name 'gpt-4o' (derived " \
           "from its id), as models[0] (gpt-4o)" in msg
    assert 'names = [...] or { id = "...", name = "..." }' in msg


def test_a_bad_value_in_a_provider_table_is_reported_where_it_was_written(tmp_path: Path) -> None:
    msg = error_of(tmp_path, '[providers.openrouter]\nrpm = 0\n[[models]]\n'
                   'provider = "openrouter"\nmodel = "a/b"\n')
    assert "providers.openrouter.rpm: must be positive, got 0" in msg
    msg = error_of(tmp_path, '[providers.openrouter]\napi_key_env = "UNSET_VAR"\n[[models]]\n'
                   'provider = "openrouter"\nmodel = ["a/b"]\n')
    assert "providers.openrouter.api_key_env (used by models[0].model[0] (a/b)): environment " \
           "variable UNSET_VAR is not set" in msg


@pytest.mark.parametrize(("text", "expected"), [
    ('[providers.opnerouter]\nrpm = 1\n[[models]]\nprovider = "openai"\nmodel = "m"\n',
     "providers.opnerouter: unknown provider 'opnerouter'; did you mean [providers.openrouter]?"),
    ('[providers.openai]\nname = "x"\n[[models]]\nprovider = "openai"\nmodel = "m"\n',
     "providers.openai: cannot set 'name'; set name in each [[models]] table"),
    ('[[models]]\nprovider = "openai"\nname = "x"\nmodel = ["a", "b"]\n',
     "models[0].name: names one model, but model lists 2 ids; use names = [...]"),
    ('[[models]]\nprovider = "openai"\nmodel = ["a", "b"]\nnames = ["x"]\n',
     "models[0].names: gives 1 names for 2 ids; give one name per id"),
    ('[[models]]\nprovider = "openai"\nmodel = ["a", "b"]\nrmp = 5\n',
     "models[0] (a and 1 more): unknown key 'rmp'; remove it (did you mean 'rpm'?)"),
    ('[[models]]\nprovider = "openai"\nmodel = [{ name = "x" }]\n',
     "models[0].model[0]: has no id;"),
    ('[[models]]\nprovider = "openai"\nmodel = [{ id = "a", provider = "anthropic" }]\n',
     "models[0].model[0] (a): an inline table cannot set 'provider'"),
    ('[[models]]\nprovider = "openai"\nmodel = ["vendor/"]\n',
     "models[0].model[0]: cannot derive a name from the id 'vendor/'; give it a name"),
])
def test_each_compact_mistake_is_one_line_naming_the_entry_and_the_fix(
    tmp_path: Path, text: str, expected: str,
) -> None:
    assert expected in error_of(tmp_path, text)


# -- seeing what a config means -------------------------------------------------------------


EXPLAINED = """
[run]
temperature = 0.0

[providers.openrouter]
rpm = 100
timeout_read = 30

[[models]]
provider = "openrouter"
model = ["meta-llama/llama-3.1-8b-instruct", "deepseek/deepseek-r1"]
rpm = 50

[[models]]
provider = "openai"
name = "mini"
model = "gpt-4o-mini"
"""


def test_vpbatch_models_gives_each_setting_with_its_source(
    tmp_path: Path, capsys: Cap,
) -> None:
    code, out, _ = cli(capsys, "models", str(write(tmp_path, EXPLAINED)), "--json")
    assert code == 0
    doc = orjson.loads(out)
    llama, r1, mini = doc["models"]
    s = llama["settings"]
    assert s["rpm"] == {"value": 50.0, "source": "model"}
    assert s["timeout_read"] == {"value": 30.0, "source": "providers.openrouter"}
    assert s["temperature"] == {"value": 0.0, "source": "run"}
    assert s["seed"] == {"value": 42, "source": "default"}
    assert s["name"]["source"] == "derived from the id" and llama["where"].startswith("models[0]")
    assert r1["settings"]["max_tokens"] == {"value": 4096,
                                            "source": "reasoning model (at least 4096)"}
    assert r1["settings"]["reasoning"] == {"value": True, "source": "known-model table"}
    assert mini["settings"]["rpm"] == {"value": None, "source": "default"}
    assert mini["settings"]["timeout_read"] == {"value": 120.0, "source": "default"}


def test_vpbatch_models_text_lists_set_keys_with_sources_and_hides_built_in_defaults(
    tmp_path: Path, capsys: Cap,
) -> None:
    path = str(write(tmp_path, EXPLAINED))
    _, out, _ = cli(capsys, "models", path)
    block = out.split("\n\n")[1].splitlines()
    assert block[0] == ("llama-3.1-8b-instruct  ← models[0].model[0] "
                        "(meta-llama/llama-3.1-8b-instruct); named after the id")
    rows = {line.split()[0]: line.split()[-1] for line in block[1:]}
    assert rows["rpm"] == "model" and rows["timeout_read"] == "providers.openrouter"
    assert rows["temperature"] == "run" and "max_attempts" not in rows
    _, every, _ = cli(capsys, "models", path, "--all")
    assert "max_attempts" in every


def test_plan_explain_prints_the_plan_then_the_explanation(
    tmp_path: Path, capsys: Cap, data_dir: Path,
) -> None:
    path = str(write(tmp_path, EXPLAINED.replace("[run]", '[run]\nversions = ["v1"]\nitems = 2')))
    code, out, _ = cli(capsys, "plan", path, "--explain", "--data", str(data_dir))
    assert code == 0 and out.index("total") < out.index("llama-3.1-8b-instruct  ← models[0]")
    _, js, _ = cli(capsys, "plan", path, "--explain", "--json", "--data", str(data_dir))
    assert orjson.loads(js)["explain"]["models"][2]["settings"]["rpm"]["source"] == "default"


# -- resuming across a respelling -----------------------------------------------------------


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[RunningServer]:
    srv = await start_server(SimServerConfig())
    try:
        yield srv
    finally:
        await srv.close()


def test_a_sweep_respelled_compactly_resumes_and_sends_nothing_again(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VPBATCH_DATA", str(data_dir))

    texts: dict[str, str] = {}

    async def main() -> None:
        async with serving() as srv:
            verbose = load(tmp_path, VERBOSE.replace("{url}", srv.url))
            first = await sweep(verbose, tmp_path / "run", handle_signals=False, progress=False)
            assert first.complete and srv.stats.requests == 9
            compact = load(tmp_path, COMPACT.replace("{url}", srv.url))
            texts["compact"] = compact.text
            again = await sweep(compact, tmp_path / "run", handle_signals=False, progress=False)
            assert again.complete and srv.stats.requests == 9
            assert {n: (m.sent, m.skipped) for n, m in again.models.items()} == {
                "universalist": (0, 3), "ach": (0, 3), "sim": (0, 3)}

    anyio.run(main)
    assert (tmp_path / "run" / "config.toml").read_text() == texts["compact"]


def test_the_overnight_guide_example_is_a_dozen_models_in_under_40_lines(
    tmp_path: Path,
) -> None:
    readme = (REPO / "docs" / "guides" / "overnight.md").read_text(encoding="utf-8")
    text = readme.split("`overnight.toml`: a dozen models", 1)[1].split("```toml\n", 1)[1]
    text = text.split("```", 1)[0]
    cfg = load_config(write(tmp_path, text), check_env=False, check_data=False)
    assert len(text.splitlines()) < 40 and len(cfg.models) == 12
    assert {m.provider for m in cfg.models} == {"openai", "anthropic", "openrouter"}
