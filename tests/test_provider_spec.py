"""A provider is one registered ProviderSpec: the config loader and the registry read it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vpbatch.config.schema import load_config
from vpbatch.errors import ConfigError
from vpbatch.providers.openai import openai_wire
from vpbatch.providers.registry import key_env_of, wire_for
from vpbatch.providers.spec import ProviderSpec, Setting, register, spec_of, specs, unregister
from vpbatch.sweep.explain import explain

CONFIG = """
[[models]]
name = "m"
provider = "shaped"
model = "my-model"
{extra}
"""


@pytest.fixture
def shaped() -> Iterator[ProviderSpec]:
    """A provider with two settings of its own, registered for one test."""
    spec = register(ProviderSpec(
        name="shaped", wire=lambda cfg, env: openai_wire(cfg), key_env="SHAPED_KEY",
        settings=(Setting("deployment", str, "", "the deployment name"),
                  Setting("api_version", str, "2024-10-21", "the API version")),
    ))
    yield spec
    unregister("shaped")


def load(tmp_path: Path, extra: str = "") -> object:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.format(extra=extra))
    return load_config(path, check_env=False, check_data=False)


def test_the_builtin_providers_are_registered_in_order() -> None:
    assert [s.name for s in specs()][:4] == ["openai", "anthropic", "openrouter", "sim"]


def test_a_registered_provider_is_accepted_with_its_settings_and_defaults(
    tmp_path: Path, shaped: ProviderSpec
) -> None:
    cfg = load(tmp_path, 'deployment = "prod"')
    m = cfg.models[0]  # type: ignore[attr-defined]
    assert m.settings == {"deployment": "prod", "api_version": "2024-10-21"}
    assert spec_of(m) is shaped and key_env_of(m) == "SHAPED_KEY"
    assert wire_for(m).label == "openai"


def test_a_misspelt_provider_setting_names_the_entry_and_the_fix(
    tmp_path: Path, shaped: ProviderSpec
) -> None:
    with pytest.raises(ConfigError, match=r"models\[0\] \(m\): unknown key 'deploymnt'; "
                       r"remove it \(did you mean 'deployment'\?\)"):
        load(tmp_path, 'deploymnt = "prod"')


def test_a_provider_setting_of_the_wrong_type_is_refused(
    tmp_path: Path, shaped: ProviderSpec
) -> None:
    with pytest.raises(ConfigError, match=r"deployment: expected"):
        load(tmp_path, "deployment = 3")


def test_another_providers_setting_is_unknown(tmp_path: Path, shaped: ProviderSpec) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[models]]\nname = "m"\nprovider = "openai"\nmodel = "x"\n'
                    'deployment = "prod"\n')
    with pytest.raises(ConfigError, match="unknown key 'deployment'"):
        load_config(path, check_env=False, check_data=False)


def test_a_provider_registered_twice_is_refused(shaped: ProviderSpec) -> None:
    with pytest.raises(RuntimeError, match="registered twice"):
        register(ProviderSpec(name="shaped", wire=shaped.wire))


def test_a_provider_table_gives_its_models_a_setting(tmp_path: Path, shaped: ProviderSpec) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[providers.shaped]\napi_version = "v1"\n' + CONFIG.format(extra=""))
    cfg = load_config(path, check_env=False, check_data=False)
    assert cfg.models[0].settings["api_version"] == "v1"


def test_vpbatch_models_shows_a_provider_setting_with_its_source(
    tmp_path: Path, shaped: ProviderSpec
) -> None:
    cfg = load(tmp_path, 'deployment = "prod"')
    rows = {s.key: (s.value, s.source) for s in explain(cfg)[0].settings}  # type: ignore[arg-type]
    assert rows["deployment"] == ("prod", "model") and rows["api_version"][1] == "default"
