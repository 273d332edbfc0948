"""Limit groups: `limit_group = "NAME"` and `[limits.NAME]`; what a group means to its members,
how mistakes are reported, how `models` and `plan` show groups, and a shard's share of them.
(The engine's side, against real servers, is in test_engine.py.)"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from vpbatch.cli import main
from vpbatch.config.digest import differences
from vpbatch.config.schema import Config, config_digest, config_meaning, load_config
from vpbatch.errors import ConfigError
from vpbatch.sweep.pipeline import Limits, group_limits
from vpbatch.sweep.shards import shard_limits

Cap = pytest.CaptureFixture[str]

GROUPED = """
[run]
versions = ["v1"]
items = 2

[providers.openrouter]
limit_group = "openrouter"
rpm = 300
concurrency = 16

[limits.openrouter]
rpm = 500
tpm = 2_000_000

[[models]]
provider = "openrouter"
model = ["meta-llama/llama-3.1-8b-instruct", "qwen/qwen-2.5-72b-instruct"]

[[models]]
provider = "openai"
name = "mini"
model = "gpt-4o-mini"
concurrency = 4
limit_group = "openrouter"

[[models]]
provider = "openai"
name = "mini-batch"
model = "gpt-4o-mini"
mode = "batch"
limit_group = "openrouter"

[[models]]
provider = "openai"
name = "alone"
model = "gpt-4o"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sweep.toml"
    p.write_text(text, encoding="utf-8")
    return p


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write(tmp_path, text), check_env=False, check_data=False)


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, text)
    assert "\n" not in str(exc.value) and exc.value.exit_code == 2
    return str(exc.value)


def cli(capsys: Cap, *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().out


# -- what a group means ----------------------------------------------------------------------


def test_limit_group_is_set_per_model_or_through_a_provider_table(tmp_path: Path) -> None:
    cfg = load(tmp_path, GROUPED)
    groups = {m.name: m.limit_group for m in cfg.models}
    assert groups == {"llama-3.1-8b-instruct": "openrouter", "qwen-2.5-72b-instruct": "openrouter",
                      "mini": "openrouter", "mini-batch": "openrouter", "alone": None}
    g = cfg.limits["openrouter"]
    assert (g.rpm, g.tpm, g.concurrency) == (500.0, 2_000_000.0, None)


def test_the_online_members_share_one_group_limit_and_keep_their_own(tmp_path: Path) -> None:
    cfg = load(tmp_path, GROUPED)
    shared = group_limits(cfg)["openrouter"]
    # No concurrency of its own: the members' sum (16 + 16 + 4), the batch member left out.
    assert shared.cap.ceiling == 36
    assert shared.rate is not None and shared.rate.rpm == 500
    assert shared.tokens is not None and shared.tokens.tpm == 2_000_000
    llama = Limits.for_model(cfg.models[0], shared)
    assert llama.layers == (llama, shared)
    assert llama.rate is not None and llama.rate.rpm == 300 and llama.cap.ceiling == 16


def test_a_groups_own_concurrency_is_its_cap(tmp_path: Path) -> None:
    cfg = load(tmp_path, GROUPED.replace("tpm = 2_000_000", "concurrency = 6"))
    assert group_limits(cfg)["openrouter"].cap.ceiling == 6


def test_a_config_without_groups_keeps_the_digest_it_had_and_a_group_change_is_named(
    tmp_path: Path,
) -> None:
    plain = GROUPED.split("[providers.openrouter]")[0] + '[[models]]\nprovider = "openai"\n' \
        'name = "alone"\nmodel = "gpt-4o"\n'
    assert "limits" not in config_meaning(plain)
    faster = GROUPED.replace("rpm = 500", "rpm = 800")
    assert config_digest(faster) != config_digest(GROUPED)
    assert differences(config_meaning(GROUPED), config_meaning(faster)) == ["limits.openrouter"]


# -- mistakes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "expected"), [
    (('limit_group = "openrouter"\nrpm = 300', 'limit_group = "openroute"\nrpm = 300'),
     "providers.openrouter.limit_group (used by models[0].model[0] (meta-llama/llama-3.1-8b-"
     "instruct)): names the limit group 'openroute', which has no [limits.openroute] table; "
     "add [limits.openroute] with its rpm, tpm and/or concurrency (or did you mean "
     "'openrouter'?)"),
    (("[limits.openrouter]", "[limits.vllm]\nrpm = 100\n[limits.openrouter]"),
     "limits.vllm: is used by no model; set limit_group = \"vllm\" on the models that share it"),
    (("tpm = 2_000_000", "tpm = 2_000_000\nburst = 10"),
     "limits.openrouter: unknown key 'burst'; remove it (allowed: rpm, tpm, concurrency)"),
    (("rpm = 500\ntpm = 2_000_000", ""),
     "limits.openrouter: sets no limit; give it rpm, tpm and/or concurrency"),
    (("rpm = 500", "rpm = 0"), "limits.openrouter.rpm: must be positive, got 0; set rpm above 0"),
    (("rpm = 500", 'rpm = "fast"'), "limits.openrouter.rpm: expected a number, got a string"),
    (('name = "mini"\nmodel = "gpt-4o-mini"\nconcurrency = 4\nlimit_group = "openrouter"',
      'name = "mini"\nmodel = "gpt-4o-mini"\nconcurrency = 4\nlimit_group = ""'),
     "models[1] (mini).limit_group: is empty; name a [limits.NAME] table"),
])
def test_each_limit_group_mistake_is_one_line_naming_the_place_and_the_fix(
    tmp_path: Path, change: tuple[str, str], expected: str,
) -> None:
    old, new = change
    assert old in GROUPED
    assert expected in error_of(tmp_path, GROUPED.replace(old, new, 1))


def test_limits_must_be_tables_of_tables(tmp_path: Path) -> None:
    text = GROUPED.replace("[limits.openrouter]\nrpm = 500\ntpm = 2_000_000", "").replace(
        "[run]", "limits = { openrouter = 5 }\n[run]")
    assert "limits.openrouter: must be a table, got an integer" in error_of(tmp_path, text)


# -- seeing groups -----------------------------------------------------------------------------


def test_vpbatch_models_lists_each_group_with_its_members_and_the_batch_ones_apart(
    tmp_path: Path, capsys: Cap,
) -> None:
    path = str(write(tmp_path, GROUPED))
    code, out = cli(capsys, "models", path)
    assert code == 0
    assert ("[limits.openrouter]  rpm 500, tpm 2,000,000, concurrency 36 (members' sum, "
            "adaptive)") in out
    assert "  members (3): llama-3.1-8b-instruct, qwen-2.5-72b-instruct, mini" in out
    assert "  batch mode, not paced by the group (1): mini-batch" in out
    _, js = cli(capsys, "models", path, "--json")
    (group,) = orjson.loads(js)["limit_groups"]
    assert group["members"] == ["llama-3.1-8b-instruct", "qwen-2.5-72b-instruct", "mini"]
    assert orjson.loads(js)["models"][0]["settings"]["limit_group"] == {
        "value": "openrouter", "source": "providers.openrouter"}


def test_plan_gives_a_groups_members_requests_together_at_the_groups_limits(
    tmp_path: Path, capsys: Cap, data_dir: Path,
) -> None:
    path = str(write(tmp_path, GROUPED.replace("tpm = 2_000_000", "")))
    code, out = cli(capsys, "plan", path, "--data", str(data_dir))
    # 3 online members x 2 items x 1 version x 1 condition = 6 requests at 500 rpm.
    assert code == 0
    assert ("limit group 'openrouter' (3 models online): 6 requests together, "
            "time ≥ 0.0 min (rpm)") in out
    _, js = cli(capsys, "plan", path, "--json", "--shard", "1/2", "--data", str(data_dir))
    assert orjson.loads(js)["limit_groups"]["openrouter"]["rpm"] == 250


# -- shards ------------------------------------------------------------------------------------


def test_each_shard_takes_its_share_of_a_groups_rpm_and_tpm(tmp_path: Path) -> None:
    cfg = load(tmp_path, GROUPED)
    g = shard_limits(cfg, (0, 4)).limits["openrouter"]
    assert (g.rpm, g.tpm) == (125.0, 500_000.0)
    own = load(tmp_path, GROUPED.replace("[run]", "[run]\nlimits_per_shard = true"))
    assert shard_limits(own, (0, 4)).limits["openrouter"].rpm == 500
