"""Config loading: SPEC §2's TOML, validated before any request; one-line errors, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from vpbatch.cli import main
from vpbatch.config.schema import ModelConfig, load_config
from vpbatch.errors import ConfigError

GOOD = """
[run]
name = "overnight"
versions = ["v1", "v1_reversed", "v2", "v2_reversed", "v3", "v3_reversed"]

[[models]]
name = "gpt-4o-mini"
provider = "openai"
model = "gpt-4o-mini-2024-07-18"
api_key_env = "OPENAI_API_KEY"
rpm = 5000
tpm = 2000000
concurrency = 64

[grids]
personas = ["gender=male", "gender=female"]
steering = "all"
"""
ENV = {"OPENAI_API_KEY": "sk-test-not-a-real-key"}
Cap = pytest.CaptureFixture[str]


def write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(tmp_path: Path, text: str, *, env: dict[str, str] = ENV) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text), env=env)
    msg = str(exc.value)
    assert "\n" not in msg, "errors are one line"
    assert exc.value.exit_code == 2
    return msg


def cli_error(tmp_path: Path, capsys: Cap, text: str) -> str:
    """Run `vpbatch plan` on a config; return stderr after asserting exit code 2."""
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(write(tmp_path, text))])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ")
    return err


def test_the_spec_example_loads_into_the_dataclasses(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), env=ENV)
    assert cfg.run.name == "overnight" and cfg.run.repeats == 1 and cfg.run.seed == 42
    m = cfg.models[0]
    assert isinstance(m, ModelConfig)
    assert (m.name, m.provider, m.rpm, m.concurrency) == ("gpt-4o-mini", "openai", 5000.0, 64)
    assert isinstance(m.rpm, float)  # TOML ints become floats where the field is a float
    assert cfg.grids.personas == ["gender=male", "gender=female"] and cfg.grids.steering == "all"
    assert cfg.text.startswith("\n[run]") and cfg.source == tmp_path / "sweep.toml"


def test_unknown_key_names_the_key_and_the_fix(tmp_path: Path, capsys: Cap) -> None:
    err = cli_error(tmp_path, capsys, GOOD.replace("rpm = 5000", "rmp = 5000"))
    assert "models[0] (gpt-4o-mini)" in err and "unknown key 'rmp'" in err
    assert "did you mean 'rpm'" in err


def test_unknown_top_level_table_is_refused(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD + "\n[model]\nname = 'x'\n")
    assert "unknown key 'model'" in msg and "the top level" in msg


def test_a_key_put_in_the_config_is_refused_without_echoing_it(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace('api_key_env = "OPENAI_API_KEY"',
                                          'api_key = "sk-live-SECRET123"'))
    assert "unknown key 'api_key'" in msg and "SECRET123" not in msg


def test_a_key_given_as_api_key_env_is_not_echoed(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace('"OPENAI_API_KEY"', '"sk-live-SECRET-123"'))
    assert "api_key_env" in msg and "NAME" in msg and "SECRET" not in msg


def test_wrong_type_names_field_expected_type_and_example(
    tmp_path: Path, capsys: Cap
) -> None:
    err = cli_error(tmp_path, capsys, GOOD.replace("concurrency = 64", 'concurrency = "64"'))
    assert "models[0] (gpt-4o-mini).concurrency" in err
    assert "expected an integer, got a string" in err and "concurrency = 8" in err


def test_a_boolean_is_not_a_number(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("rpm = 5000", "rpm = true"))
    assert ".rpm: expected a number, got a boolean" in msg


def test_duplicate_model_names_are_refused(tmp_path: Path, capsys: Cap) -> None:
    second = GOOD.split("[grids]")[0].split("[[models]]")[1]
    err = cli_error(tmp_path, capsys, GOOD + "\n[[models]]" + second)
    assert "models[1] (gpt-4o-mini).name: duplicate model name 'gpt-4o-mini'" in err


def test_missing_api_key_variable_names_it_and_the_fix(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD, env={})
    assert "api_key_env: environment variable OPENAI_API_KEY is not set" in msg
    assert "export OPENAI_API_KEY=" in msg


def test_plan_needs_no_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), env={}, check_env=False)
    assert cfg.models[0].api_key_env == "OPENAI_API_KEY"


def test_missing_api_key_variable_exits_2_from_the_cli(
    tmp_path: Path, capsys: Cap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--check-keys", str(write(tmp_path, GOOD))])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "API key variable(s) not set: OPENAI_API_KEY (for gpt-4o-mini)" in err
    assert "export OPENAI_API_KEY=" in err


TWO_KEYS = GOOD + """
[[models]]
name = "claude"
provider = "anthropic"
model = "claude-3-5-haiku-20241022"
api_key_env = "ANTHROPIC_API_KEY"
"""


def test_check_keys_names_every_missing_key_at_once(
    tmp_path: Path, capsys: Cap, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--check-keys", str(write(tmp_path, TWO_KEYS))])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "2 API key variable(s) not set: OPENAI_API_KEY (for gpt-4o-mini); " in err
    assert "ANTHROPIC_API_KEY (for claude)" in err


def test_check_keys_says_keys_ok_when_all_are_set(
    tmp_path: Path, capsys: Cap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-not-a-real-key")
    main(["plan", "--check-keys", str(write(tmp_path, TWO_KEYS))])
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == (
        "keys OK: OPENAI_API_KEY, ANTHROPIC_API_KEY set for 2 model(s)")
    assert "sk-" not in out


def test_run_whose_models_all_lack_keys_exits_2_before_making_a_run_dir(
    tmp_path: Path, capsys: Cap, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["run", str(write(tmp_path, TWO_KEYS)), "--run-dir", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY (for gpt-4o-mini)" in err and "ANTHROPIC_API_KEY (for claude)" in err
    assert not (tmp_path / "run").exists()


def test_unknown_provider_lists_the_known_ones(
    tmp_path: Path, capsys: Cap
) -> None:
    err = cli_error(tmp_path, capsys, GOOD.replace('provider = "openai"', 'provider = "palm"'))
    assert ".provider: unknown provider 'palm'" in err
    assert "openai, anthropic, openrouter, sim" in err


def test_unreadable_dataset_names_the_file(
    tmp_path: Path, capsys: Cap
) -> None:
    (tmp_path / "empty").mkdir()
    err = cli_error(tmp_path, capsys, GOOD.replace('name = "overnight"',
                                                   'name = "overnight"\ndata = "empty"'))
    assert "run.data: cannot read the dataset at" in err
    assert str(tmp_path / "empty") in err and "vpbatch data fetch" in err


def test_unreadable_dataset_from_the_environment_is_named(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD, env={**ENV, "VPBATCH_DATA": str(tmp_path / "nowhere")})
    assert msg.split(": ")[1] == "VPBATCH_DATA"


def test_unknown_persona_suggests_the_close_name(
    tmp_path: Path, capsys: Cap
) -> None:
    err = cli_error(tmp_path, capsys, GOOD.replace('"gender=female"', '"gender=femal"'))
    assert "grids.personas: unknown persona 'gender=femal'" in err
    assert "did you mean 'gender=female'" in err


def test_unknown_steering_value_is_refused_per_model(tmp_path: Path) -> None:
    text = GOOD.replace("concurrency = 64", 'concurrency = 64\nsteering = ["Self-Direction"]')
    msg = error_of(tmp_path, text)
    assert "models[0] (gpt-4o-mini).steering: unknown steering value 'Self-Direction'" in msg
    assert "'Self_Direction'" in msg


def test_unknown_version_is_refused(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace('"v3_reversed"', '"v4"'))
    assert "run.versions: unknown version 'v4'" in msg


@pytest.mark.parametrize(("old", "new", "field"), [
    ("rpm = 5000", "rpm = 0", "rpm"),
    ("concurrency = 64", "concurrency = -1", "concurrency"),
    ('name = "overnight"', 'name = "overnight"\nrepeats = 0', "repeats"),
])
def test_limits_must_be_positive(tmp_path: Path, old: str, new: str, field: str) -> None:
    msg = error_of(tmp_path, GOOD.replace(old, new))
    assert f".{field}: must be positive" in msg


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD.replace("concurrency = 64", 'concurrency = 64\nmode = "bulk"'))
    assert ".mode: unknown mode 'bulk'" in msg and '"online" or "batch"' in msg


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    msg = error_of(tmp_path, GOOD + "\nrpm = = 3\n")
    assert "invalid TOML" in msg and "sweep.toml" in msg


def test_a_config_without_models_says_how_to_add_one(tmp_path: Path) -> None:
    msg = error_of(tmp_path, '[run]\nname = "x"\n')
    assert "models: no [[models]] table" in msg


def test_required_model_fields_are_named(tmp_path: Path) -> None:
    msg = error_of(tmp_path, '[[models]]\nname = "a"\nprovider = "openai"\n')
    assert "models[0] (a).model: is required" in msg


def test_keys_default_per_provider_and_not_for_local_servers(tmp_path: Path) -> None:
    text = """
[[models]]
name = "claude"
provider = "anthropic"
model = "claude-3-5-sonnet"
[[models]]
name = "local"
provider = "openai"
model = "llama"
base_url = "http://127.0.0.1:8080/v1"
[[models]]
name = "sim"
provider = "sim"
"""
    cfg = load_config(write(tmp_path, text), env={"ANTHROPIC_API_KEY": "x"})
    assert [m.api_key_env for m in cfg.models] == ["ANTHROPIC_API_KEY", None, None]
    assert cfg.models[2].model == "sim"


def test_conditions_file_resolves_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mine.toml").write_text(
        '[[personas]]\nname = "pet=cat"\ntext = "**Your Profile**: You own a cat."\n')
    text = GOOD.replace('name = "overnight"', 'name = "overnight"\nconditions_file = "mine.toml"')
    text = text.replace('personas = ["gender=male", "gender=female"]', 'personas = ["pet=cat"]')
    text = text.replace('steering = "all"', "")
    cfg = load_config(write(tmp_path / "conf", text), env=ENV)
    assert cfg.run.conditions_file == str((tmp_path / "conf" / "mine.toml").resolve())


LOCAL = GOOD.replace('api_key_env = "OPENAI_API_KEY"', 'base_url = "http://127.0.0.1:8000/v1"')


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:/v1", "empty or zero port"),
    ("http://127.0.0.1:0/v1", "empty or zero port"),
    ("http://127.0.0.1:99999/v1", "Port out of range"),
    ("127.0.0.1:8000/v1", "no scheme"),
    ("localhost:8000", "scheme 'localhost'"),
    ("ftp://example.org/v1", "scheme 'ftp'"),
    ("http:///v1", "no host"),
    ("http://[::1/v1", "not a valid URL"),
    ("http://127.0.0.1:8000/v1?api-version=1", "a query"),
])
def test_a_base_url_without_scheme_host_or_valid_port_is_a_config_error(
    tmp_path: Path, capsys: Cap, url: str, problem: str
) -> None:
    err = cli_error(tmp_path, capsys, LOCAL.replace("http://127.0.0.1:8000/v1", url))
    assert "models[0] (gpt-4o-mini).base_url" in err and problem in err
    assert 'e.g. "http://127.0.0.1:8000/v1"' in err or "API root" in err


def test_a_base_url_holding_credentials_is_refused_without_echoing_them(tmp_path: Path) -> None:
    msg = error_of(tmp_path, LOCAL.replace("http://127.0.0.1", "http://me:sk-secret@127.0.0.1"))
    assert "sk-secret" not in msg and "api_key_env" in msg


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "https://api.together.xyz/v1",
                                 "http://[::1]:8080/v1", "http://gpu-box/v1/"])
def test_a_usable_base_url_loads(tmp_path: Path, url: str) -> None:
    text = GOOD.replace("concurrency = 64", f'concurrency = 64\nbase_url = "{url}"')
    assert load_config(write(tmp_path, text), env=ENV).models[0].base_url == url


def test_max_response_bytes_defaults_to_one_mib_and_must_be_positive(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD), env=ENV).models[0].max_response_bytes == 1 << 20
    msg = error_of(tmp_path, GOOD.replace("concurrency = 64", "max_response_bytes = 0"))
    assert "max_response_bytes" in msg and "positive" in msg


def test_fail_on_error_is_a_fraction_below_1_or_a_count(tmp_path: Path) -> None:
    def run_table(line: str) -> str:
        return GOOD.replace("[run]\n", f"[run]\n{line}\n", 1)

    cfg = load_config(write(tmp_path, GOOD), env=ENV)
    assert (cfg.run.fail_on_error, cfg.run.stop_after) == (0.05, 20)
    assert load_config(write(tmp_path, run_table("fail_on_error = 50")),
                       env=ENV).run.fail_on_error == 50
    msg = error_of(tmp_path, run_table("fail_on_error = 1.0"))
    assert "run.fail_on_error: a fraction must be below 1" in msg and "(50)" in msg
    msg = error_of(tmp_path, GOOD.replace("concurrency = 64", "stop_after = -1"))
    assert "stop_after: must not be negative" in msg


@pytest.mark.parametrize(("key", "value", "where"), [
    ("base_url", '"http://127.0.0.1:8000/v1"', "put base_url in each [[models]] table, or in "
     "[providers.<provider>] to share it among that provider's models"),
    ("api_key_env", '"OPENAI_API_KEY"', "put api_key_env in each [[models]] table"),
    ("personas", '["gender=male"]', "move personas under [grids]"),
])
def test_a_key_misplaced_in_run_says_which_table_it_belongs_in(
    tmp_path: Path, key: str, value: str, where: str
) -> None:
    msg = error_of(tmp_path, GOOD.replace('name = "overnight"\n',
                                          f'name = "overnight"\n{key} = {value}\n', 1))
    assert f"run: {key!r} " in msg and where in msg
    assert value.strip('"[]') not in msg  # the key is named, never its value
