"""Compact model spellings, expanded into one plain model table per model before validation.

A `[[models]]` entry may list several ids in `model` (each becomes its own model, every other
key shared), named by `names`, by inline tables `{ id = ..., name = ... }`, or after the id
(the part after its last "/"); `model_prefix` goes before each listed id. A
`[providers.<provider>]` table gives defaults under the model's own keys. What comes out is one
table per model plus its `Origin` (which entry, which id, where each key was written), so
validation and `vpbatch models` speak of the place the user wrote, and the rest of the code
sees plain models only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

__all__ = ["Origin", "expand_models", "MODEL", "LIST_KEYS", "INLINE_FORBIDDEN"]

MODEL = "model"  # the source of a key written in the model's own entry (or inline table)
LIST_KEYS = ("names", "model_prefix")  # entry keys that shape the list; no model has them
# Keys an inline table cannot set: they belong to the entry (the provider picks the defaults).
INLINE_FORBIDDEN = ("provider", "model", "names", "model_prefix")

Fail = Callable[[str, str, str], NoReturn]  # (where, problem, fix) -> raises ConfigError


@dataclass(slots=True)
class Origin:
    """Where one expanded model was written: its entry, its id in the list, its keys' sources."""

    entry: int  # index of its [[models]] table in the file
    member: int | None  # index of its id in that table's `model` list; None for a single id
    id: str | None  # the id as listed (before model_prefix); None when the entry gives none
    name: str | None  # its name, if a string
    named: bool = True  # False: the name was derived from the id
    sources: dict[str, str] = field(default_factory=dict)  # key -> "model" | "providers.<p>"

    @property
    def where(self) -> str:
        """How a message names this model: `models[3] (gpt-4o)`, `models[3].model[1] (a/b)`."""
        if self.member is None:
            label = self.name if self.name is not None else self.id
            return f"models[{self.entry}]" + (f" ({label})" if label else "")
        return f"models[{self.entry}].model[{self.member}] ({self.id})"

    def at(self, key: str) -> str:
        """Where `key`'s value was written, for a message about that value."""
        src = self.sources.get(key, MODEL)
        if src.startswith("providers."):
            return f"{src}.{key} (used by {self.where})"
        return f"{self.where}.{key}"


def expand_models(
    entries: list[dict[str, Any]], providers: Mapping[str, Mapping[str, Any]], fail: Fail
) -> list[tuple[dict[str, Any], Origin]]:
    """One plain model table per model, in file order; names checked unique across entries."""
    out: list[tuple[dict[str, Any], Origin]] = []
    for i, entry in enumerate(entries):
        out.extend(_expand_entry(i, entry, providers, fail))
    _check_unique(out, fail)
    return out


def _expand_entry(
    i: int, entry: dict[str, Any], providers: Mapping[str, Mapping[str, Any]], fail: Fail
) -> list[tuple[dict[str, Any], Origin]]:
    ids = entry.get("model")
    prefix = entry.get("model_prefix", "")
    if not isinstance(prefix, str):
        fail(f"models[{i}].model_prefix", f"expected a string, got {_kind(prefix)}",
             'write e.g. model_prefix = "meta-llama/"')
    if prefix and ids is None:
        fail(f"models[{i}].model_prefix", "has no model id to go before",
             "add model = [...], or remove model_prefix")
    shared = {k: v for k, v in entry.items() if k not in (MODEL, *LIST_KEYS)}
    defaults = _defaults(entry, providers)
    if not isinstance(ids, list):
        if "names" in entry:
            fail(f"models[{i}].names", "goes with a list of ids, and model is not a list",
                 'write name = "..." for one model, or list the ids: model = ["a", "b"]')
        if ids is not None and not isinstance(ids, str):
            fail(f"models[{i}].model", f"expected a model id (a string) or a list of ids, got "
                 f"{_kind(ids)}", 'write e.g. model = "gpt-4o-mini" or model = ["a", "b"]')
        table, origin = _member(i, None, ids, shared, {}, defaults, prefix, fail)
        return [(table, origin)]
    if not ids:
        fail(f"models[{i}].model", "is an empty list",
             "list at least one model id, or remove this [[models]] table")
    if "name" in entry:
        fail(f"models[{i}].name", f"names one model, but model lists {len(ids)} ids",
             'use names = [...] (one per id, in order) or inline tables '
             '{ id = "...", name = "..." }, or leave names out to derive them from the ids')
    names = _names(i, entry.get("names"), len(ids), fail)
    out = []
    for k, item in enumerate(ids):
        listed, inline = _item(i, k, item, fail)
        if names is not None:
            if "name" in inline:
                fail(f"models[{i}].model[{k}] ({listed}).name", "is given twice (in names and "
                     "in the inline table)", "keep one of them")
            inline = {**inline, "name": names[k]}
        out.append(_member(i, k, listed, shared, inline, defaults, prefix, fail))
    return out


def _defaults(entry: dict[str, Any], providers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    provider = entry.get("provider")
    return dict(providers.get(provider, {})) if isinstance(provider, str) else {}


def _names(i: int, names: Any, n: int, fail: Fail) -> list[str] | None:
    if names is None:
        return None
    if not isinstance(names, list):
        fail(f"models[{i}].names", f"expected a list of names, got {_kind(names)}",
             'write names = ["a", "b"], one per id')
    for k, name in enumerate(names):
        if not isinstance(name, str):
            fail(f"models[{i}].names[{k}]", f"expected a string, got {_kind(name)}",
                 'quote it: names = ["a", "b"]')
    if len(names) != n:
        fail(f"models[{i}].names", f"gives {len(names)} names for {n} ids",
             "give one name per id, in the same order (or drop names to derive them from the "
             "ids)")
    return names


def _item(i: int, k: int, item: Any, fail: Fail) -> tuple[str, dict[str, Any]]:
    """(the id as listed, the inline table's own keys) of one list member."""
    if isinstance(item, str):
        return item, {}
    if not isinstance(item, dict):
        fail(f"models[{i}].model[{k}]", f"expected a model id (a string) or an inline table "
             f"{{ id = ..., name = ... }}, got {_kind(item)}", f'quote it: "{item}"')
    listed = item.get("id")
    if not isinstance(listed, str):
        problem = "has no id" if listed is None else f"id must be a string, got {_kind(listed)}"
        fail(f"models[{i}].model[{k}]", problem, 'write it as { id = "vendor/model", name = '
             '"label" }')
    for key in item:
        if key in INLINE_FORBIDDEN:
            fail(f"models[{i}].model[{k}] ({listed})", f"an inline table cannot set {key!r}",
                 f"set {key} in the [[models]] table, or give this id a [[models]] table of "
                 "its own")
    return listed, {key: v for key, v in item.items() if key != "id"}


def _member(
    i: int, k: int | None, listed: Any, shared: dict[str, Any], inline: dict[str, Any],
    defaults: dict[str, Any], prefix: str, fail: Fail,
) -> tuple[dict[str, Any], Origin]:
    """One model's plain table: provider defaults, under the entry's keys, under its own."""
    provider = shared.get("provider")
    src = f"providers.{provider}"
    table: dict[str, Any] = dict(defaults)
    sources = dict.fromkeys(defaults, src)
    for key, value in (*shared.items(), *inline.items()):
        if isinstance(value, dict) and isinstance(table.get(key), dict):
            # Tables (extra_body, sim) merge one level: a model's own extra_body must not drop
            # a provider-wide setting it does not mention (a privacy flag, say).
            table[key] = {**table[key], **value}
            sources[key] = f"{MODEL} + {sources[key]}" if sources[key] != MODEL else MODEL
        else:
            table[key] = value
            sources[key] = MODEL
    named = "name" in table
    if isinstance(listed, str):
        table[MODEL] = prefix + listed
        sources[MODEL] = MODEL
        if not named:
            table["name"] = _derived_name(i, k, listed, fail)
    name = table.get("name")
    origin = Origin(i, k, listed if isinstance(listed, str) else None,
                    name if isinstance(name, str) else None, named, sources)
    return table, origin


def _derived_name(i: int, k: int | None, listed: str, fail: Fail) -> str:
    name = listed.rsplit("/", 1)[-1]
    if not name:
        where = f"models[{i}]" + (f".model[{k}]" if k is not None else ".model")
        fail(where, f"cannot derive a name from the id {listed!r}",
             'give it a name (name = "...", names = [...] or { id = "...", name = "..." })')
    return name


def _check_unique(models: list[tuple[dict[str, Any], Origin]], fail: Fail) -> None:
    seen: dict[str, Origin] = {}
    for _, o in models:
        if o.name is None:
            continue  # not a string: the type check names it
        first = seen.setdefault(o.name, o)
        if first is o:
            continue
        derived = "" if o.named else " (derived from its id)"
        first_how = "" if first.named else ", derived from its id"
        fail(f"{o.where}.name", f"duplicate model name {o.name!r}{derived}, as "
             f"{first.where}{first_how}", "names label logs and scores and must be unique: give "
             'one of them another (name = "...", names = [...] or { id = "...", name = "..." })')


def _kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return kinds.get(type(value), type(value).__name__)
