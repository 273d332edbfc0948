"""The docs say what the code does: every config example loads, the generated pages are current.

Every ```toml fence of README.md and docs/ is a whole config that `vpbatch plan` accepts; a
piece of one is marked ```toml fragment and is the only kind skipped. The README stays one
screen (12 KB), shows what `vpbatch plan` really prints, and every page is in mkdocs.yml's nav.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from vpbatch.benchmark.dims import FAMILY_DIMS, VANILLA
from vpbatch.cli import cli, main

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted([REPO / "README.md", *DOCS.rglob("*.md")])
FENCE = re.compile(r"^```toml([^\n]*)\n(.*?)^```", re.S | re.M)
README_LIMIT = 12 * 1024


def _tool(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fences() -> list[Any]:
    out = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text[: m.start()].count("\n") + 1
            rel = page.relative_to(REPO)
            marks = (pytest.mark.skip(reason="marked ```toml fragment"),) if (
                m[1].strip() == "fragment") else ()
            out.append(pytest.param(m[2], id=f"{rel}:{line}", marks=marks))
    return out


def _plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(["plan", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("config", _fences())
def test_every_toml_example_in_the_docs_is_a_config_vpbatch_plan_accepts(
    config: str, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "example.toml"
    path.write_text(config, encoding="utf-8")
    code, out, err = _plan(capsys, str(path), "--data", str(data_dir))
    assert (code, err) == (0, "")
    assert out.startswith("plan for run ")


def test_the_docs_have_toml_examples_and_mark_the_fragments_they_skip() -> None:
    fences = _fences()
    assert len(fences) >= 3
    unmarked = [f for f in fences if not f.marks]
    assert unmarked, "every example is a fragment: none is tested"


def _shown_plan(page: Path) -> tuple[str, str]:
    """(the page's first config, the output it says `vpbatch plan overnight.toml` prints)."""
    text = page.read_text(encoding="utf-8")
    config = FENCE.search(text)
    assert config is not None
    after = text.split("`vpbatch plan overnight.toml`", 1)[1]
    shown = re.search(r"^```\n(.*?)^```", after, re.S | re.M)
    assert shown is not None
    return config[2], shown[1]


@pytest.mark.parametrize("page", ["README.md", "docs/guides/overnight.md"])
def test_the_plan_output_a_page_shows_is_what_vpbatch_plan_prints(
    page: str, tmp_path: Path, data_dir: Path
) -> None:
    config, shown = _shown_plan(REPO / page)
    (tmp_path / "overnight.toml").write_text(config, encoding="utf-8")
    env = {**os.environ, "VPBATCH_DATA": str(data_dir), "PYTHONPATH": str(REPO)}
    got = subprocess.run([sys.executable, "-m", "vpbatch", "plan", "overnight.toml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert got.stdout == shown


def test_the_readme_is_one_screen_of_at_most_12_kb() -> None:
    assert (REPO / "README.md").stat().st_size <= README_LIMIT


def test_the_readmes_links_and_picture_name_files_that_exist() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"(?:\]\(|href=\"|src=\")(docs/[^)\"#]+)", readme)
    assert "docs/img/overview.svg" in links
    assert [link for link in links if not (REPO / link).exists()] == []


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in _nav_pages(v)]
    return [p for item in nav for p in _nav_pages(item)]


def test_the_nav_names_every_page_and_every_page_it_names_exists() -> None:
    conf = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(conf["nav"])
    generated = {_tool("docs_hooks").CONFIG_PAGE}
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert sorted(on_disk | generated) == sorted(nav)


def _command_paths(group: Any, prefix: str = "vpbatch") -> list[str]:
    import click

    out = [prefix]
    if isinstance(group, click.Group):
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            out += _command_paths(cmd, f"{prefix} {name}")
    return out


def test_the_cli_reference_renders_the_root_group_that_vpbatch_runs() -> None:
    page = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert ":module: vpbatch.cli" in page and ":command: cli" in page
    assert ":commands:" not in page, "a :commands: filter would leave commands out"


def test_every_command_and_subcommand_is_in_the_cli_reference() -> None:
    docs = pytest.importorskip("mkdocs_click._docs", reason="the docs extra (make docs)")
    page = "\n".join(docs.make_command_docs("vpbatch", cli, depth=1, style="table",
                                            list_subcommands=True))
    stack: list[str] = []
    headings = set()
    for hashes, name in re.findall(r"^(#+) ([\w-]+)$", page, re.M):
        depth = len(hashes) - 2  # the root group is the page's second level
        stack[depth:] = [name]
        headings.add(" ".join(stack))
    paths = _command_paths(cli)
    assert len(paths) > 10
    assert [p for p in paths if p not in headings] == []


def test_every_config_key_has_a_meaning_and_every_meaning_a_key() -> None:
    import dataclasses

    hooks = _tool("docs_hooks")  # the one place the schema and its meanings are imported
    assert list(hooks.KEY_DOCS) == list(hooks.SCHEMA) == list(hooks.TABLE_DOCS)
    for table, (cls, extra) in hooks.SCHEMA.items():
        own = [f.name for f in dataclasses.fields(cls) if f.name not in hooks.INTERNAL]
        keys = own + list(extra)
        assert sorted(hooks.KEY_DOCS[table]) == sorted(keys), table


def test_the_config_reference_lists_every_key_with_its_default() -> None:
    page = _tool("docs_hooks").config_reference()
    assert "| `rpm` | a number | unlimited |" in page
    assert '| `name` | a string | `"run"` |' in page
    assert "| `concurrency` | an integer | `8` |" in page


def _doc(trust: dict[str, Any] | None) -> dict[str, Any]:
    def family(f: str) -> dict[str, Any]:
        return {d: {"score": 0.1 * i, "raw": 3.0, "n_items": 5, "human_percentile": 40.0 + i}
                for i, d in enumerate(FAMILY_DIMS[f])}

    models: dict[str, Any] = {}
    for m in ("model-a", "model-b", "model-c"):
        cond: dict[str, Any] = {f: family(f) for f in FAMILY_DIMS}
        if trust is not None and m != "model-c":
            cond["trust"] = trust
        models[m] = {VANILLA: cond}
    return {"models": models, "answers": {"ok": 10, "failed": 0},
            "options": {"threshold": 0.3, "p_max": 0.05},
            "bootstrap": {"n_boot": 10, "seed": 0}}


def test_the_results_page_shows_each_models_verdict_once_scores_have_the_trust_panel() -> None:
    page = _tool("results_page").results_page(
        _doc({"verdict": "replicates", "order_bias": 0.1}), (269, 270))
    assert "| model | Universalism |" in page and "| verdict |" in page
    assert "| replicates |" in page and "| not measured |" in page
    assert "**269 of 270 cells**" in page


def test_the_results_page_has_no_verdict_column_without_the_trust_panel() -> None:
    page = _tool("results_page").results_page(_doc(None), None)
    assert "verdict" not in page and "| `model-a` | 40 | 41 |" in page


@pytest.mark.slow
def test_the_committed_results_page_image_and_references_are_what_make_results_writes(
    data_dir: Path,
) -> None:
    tool = _tool("results_page")
    stale = [key for key, text in tool.build(data_dir).items()
             if tool.OUTPUTS[key].read_text(encoding="utf-8") != text]
    assert stale == [], "run `make results` and commit what it rewrites"
