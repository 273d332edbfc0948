"""MkDocs hook (mkdocs.yml `hooks:`): the config reference, generated from the code at build time.

It also keeps the CLI reference's help texts literal (mkdocs-click passes `<model>` on as HTML).

`reference/config.md` is not a file in docs/: every build writes it from the config dataclasses
(keys, types, defaults) and `keydocs.KEY_DOCS` (meanings), so it cannot drift from what
`vpbatch plan` accepts. `python tools/docs_hooks.py` prints the page.
"""

from __future__ import annotations

import dataclasses
import html
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # mkdocs loads this file by path, not as a package module
    sys.path.insert(0, str(REPO))

# The ONE place the config schema is imported from (the schema may move; fix the path here).
from vpbatch.config.keydocs import KEY_DOCS, TABLE_DOCS  # noqa: E402
from vpbatch.config.models import LIST_KEYS  # noqa: E402
from vpbatch.config.schema import GridConfig, LimitGroup, ModelConfig, RunConfig  # noqa: E402
from vpbatch.config.tomlvalues import describe  # noqa: E402
from vpbatch.providers.spec import specs  # noqa: E402  (registers the builtin providers)

__all__ = ["CONFIG_PAGE", "SCHEMA", "KEY_DOCS", "TABLE_DOCS", "config_reference", "on_config",
           "on_files"]

CONFIG_PAGE = "reference/config.md"
# Filled from the provider's own declared keys (ProviderSpec.settings), never written itself.
INTERNAL = frozenset({"settings"})
# Each TOML table and the dataclass that holds it; extra keys the loader consumes first.
SCHEMA: dict[str, tuple[type, tuple[str, ...]]] = {
    "run": (RunConfig, ()),
    "models": (ModelConfig, LIST_KEYS),
    "limits": (LimitGroup, ()),
    "grids": (GridConfig, ()),
}


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        value: Any = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value!r}`"


def _rows(table: str) -> list[tuple[str, str, str, str]]:
    cls, extra = SCHEMA[table]
    hints = typing.get_type_hints(cls)
    docs = KEY_DOCS[table]
    rows = []
    for f in dataclasses.fields(cls):
        if f.name in INTERNAL:
            continue
        d = docs[f.name]
        rows.append((f.name, describe(hints[f.name]), d.default or _default(f), d.meaning))
    for key in extra:
        d = docs[key]
        rows.append((key, "list of strings" if key == "names" else "string",
                     d.default or "none", d.meaning))
    return rows


def _cell(s: str) -> str:
    return s.replace("|", "\\|")


def config_reference() -> str:
    """The page: one table per TOML table, every key with its type, default and meaning."""
    out = ["# Config keys", "",
           "Generated from the config schema at every docs build: every key `vpbatch plan` "
           "and `vpbatch run` accept, with its type, default and meaning. An unknown key, a "
           "wrong type or a value out of range is refused before anything is sent (exit 2), "
           "with the field and the fix. A guide to writing one: "
           "[Running overnight](../guides/overnight.md).", ""]
    for table in SCHEMA:
        out += [f"## `{table}`", "", TABLE_DOCS[table], "",
                "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        out += [f"| `{k}` | {_cell(t)} | {_cell(d)} | {_cell(m)} |" for k, t, d, m in _rows(table)]
        out.append("")
    return "\n".join(out + _provider_settings())


def _provider_settings() -> list[str]:
    """Each provider's own keys, as its module declares them (ProviderSpec.settings)."""
    out = ["## Provider settings", "",
           "Keys of a `[[models]]` or `[providers.<p>]` table that only one provider takes; "
           "each provider module declares them with its default key variable.", ""]
    for spec in sorted(specs(), key=lambda x: x.name):
        key = f"`{spec.key_env}`" if spec.key_env else "none"
        out += [f"### `{spec.name}`", "", f"Default key variable: {key}.", ""]
        if spec.settings:
            out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
            out += [f"| `{x.name}` | {_cell(describe(x.type))} | "
                    f"{_cell('none' if x.default is None else repr(x.default))} | "
                    f"{_cell(x.meaning)} |" for x in spec.settings]
            out.append("")
    return out


_UNSET = "`Sentinel.UNSET`"  # click >= 8.2's "no default", which mkdocs-click prints as is


def _readable(lines: Iterator[str]) -> Iterator[str]:
    """mkdocs-click's Markdown with help texts kept literal: `<provider>` is text, not HTML."""
    fenced = False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        if fenced:
            yield line
            continue
        parts = line.replace(_UNSET, "").split("`")
        yield "`".join(html.escape(x, quote=False) if i % 2 == 0 else x
                       for i, x in enumerate(parts))


def on_config(config: Any) -> Any:
    import mkdocs_click._extension as ext  # the directive's renderer, wrapped once

    if not getattr(ext.make_command_docs, "vpbatch_readable", False):
        render = ext.make_command_docs

        def readable(*args: Any, **kwargs: Any) -> Iterator[str]:
            return _readable(render(*args, **kwargs))

        readable.vpbatch_readable = True  # type: ignore[attr-defined]
        ext.make_command_docs = readable
    return config


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, CONFIG_PAGE, content=config_reference()))
    return files


if __name__ == "__main__":
    print(config_reference())
