"""The 6 prompt versions, verbatim from the data, and the pure function that fills them.

How the authors built the `prompt` field of their recorded outputs (checked against all
102,960 records of the 33 models × 6 versions in tests/test_prompts.py): Python's
`str.format(title=..., text=..., content=...)` on the template file read as is, with the
query's `title`, its `text` and the response's `content` unchanged: no stripping, no
newline added, no escaping. Titles are None exactly for 3xxx/4xxx items, whose `sharegpt`
template has no `{title}`, so a None title is never substituted in the official data; we
substitute "" if a template ever asks for one (str.format would print "None").
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

from vpbatch.benchmark import layout
from vpbatch.benchmark.choice import options_in
from vpbatch.benchmark.dataset import Dataset
from vpbatch.benchmark.dims import VERSIONS
from vpbatch.errors import ConfigError, DataError

__all__ = [
    "KINDS",
    "load_templates",
    "template_kind",
    "template_path",
    "render_prompt",
    "item_prompt",
    "item_options",
]

KINDS: Final = ("reddit", "sharegpt")
# First digit of portrait_id -> template: Reddit AITA and Dear Abby have titles, chats do not.
_KIND_BY_SOURCE: Final = {1: "reddit", 2: "reddit", 3: "sharegpt", 4: "sharegpt"}


def template_path(root: Path, version: str, kind: str) -> Path:
    return root / layout.prompt_template(version, kind)


def load_templates(root: Path) -> dict[str, dict[str, str]]:
    """version -> {"reddit": template, "sharegpt": template}, read byte-exact from the data."""
    out: dict[str, dict[str, str]] = {}
    for version in VERSIONS:
        out[version] = {}
        for kind in KINDS:
            path = template_path(Path(root), version, kind)
            try:
                # Bytes, not text mode: universal newlines would silently rewrite a "\r\n".
                out[version][kind] = path.read_bytes().decode("utf-8")
            except FileNotFoundError:
                raise DataError(
                    f"prompt template {path} is missing; run `vpbatch data fetch` or restore it"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise DataError(
                    f"prompt template {path} is unreadable ({exc}); re-fetch it with "
                    "`vpbatch data fetch`"
                ) from exc
    return out


def template_kind(portrait_id: int) -> str:
    """"reddit" for 1xxx/2xxx, "sharegpt" for 3xxx/4xxx (the first digit names the source)."""
    kind = _KIND_BY_SOURCE.get(int(portrait_id) // 1000)
    if kind is None:
        raise DataError(
            f"portrait_id {portrait_id} has no prompt template: ids are 1xxx-4xxx "
            "(Reddit, Dear Abby, ShareGPT, LMSYS)"
        )
    return kind


def render_prompt(template: str, *, title: str | None, text: str, content: str) -> str:
    """The user message: the template with {title}, {text}, {content} filled in, nothing else."""
    try:
        return template.format(title="" if title is None else title, text=text, content=content)
    except (KeyError, IndexError, ValueError) as exc:
        raise DataError(
            f"prompt template has a placeholder other than {{title}}, {{text}}, {{content}} "
            f"({type(exc).__name__}: {exc}); double literal braces as {{{{ }}}}"
        ) from exc


@functools.lru_cache(maxsize=8)
def _templates(root: Path) -> dict[str, dict[str, str]]:
    return load_templates(root)


def _template(ds: Dataset, version: str, i: int) -> str:
    """The template item row `i` is asked with under `version` (read once per data root)."""
    by_kind = _templates(ds.root).get(version)
    if by_kind is None:
        raise ConfigError(
            f"unknown prompt version {version!r}; choose from {', '.join(VERSIONS)}"
        )
    return by_kind[template_kind(int(ds.portrait_id[i]))]


def item_prompt(ds: Dataset, version: str, i: int) -> str:
    """The prompt of item row `i` under `version` (templates read once per data root)."""
    return render_prompt(
        _template(ds, version, i), title=ds.title[i], text=ds.text[i], content=ds.output[i]
    )


def item_options(ds: Dataset, version: str, i: int) -> tuple[str, ...]:
    """The six answer phrases in the order item row `i`'s prompt lists them (choice mode)."""
    return options_in(_template(ds, version, i))
