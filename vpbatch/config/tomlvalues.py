"""TOML values against dataclass type hints: does a value fit, what to call it in a message.

Config messages say what was expected and what was found ("expected a number, got a string")
and show a value that would do; these helpers are that vocabulary, shared by the config loader
and the model-list expansion.
"""

from __future__ import annotations

import types
import typing
from typing import Any

__all__ = ["fits", "coerce", "describe", "example", "kind"]


def fits(value: Any, hint: Any) -> bool:
    """Whether a TOML value matches a field's type hint (bool is never a number here)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(fits(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return False  # TOML has no null: an absent key is how you say "default"
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(fits(x, item) for x in value)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint)


def coerce(value: Any, hint: Any) -> Any:
    # TOML writes `rpm = 500` as an int; float fields get a float so arithmetic stays uniform.
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) \
        else (hint,)
    if float in args and int not in args and isinstance(value, int):
        return float(value)
    return value


def describe(hint: Any) -> str:
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    args = [a for a in (typing.get_args(hint) if union else (hint,)) if a is not type(None)]
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    parts = []
    for a in args:
        if typing.get_origin(a) is list:
            parts.append("a list of strings")
        elif typing.get_origin(a) is dict:
            parts.append("a table")
        else:
            parts.append(names.get(a, getattr(a, "__name__", str(a))))
    return " or ".join(parts)


def example(hint: Any) -> str:
    desc = describe(hint)
    for key, ex in (("a list", '["a", "b"]'), ("an integer", "8"), ("a number", "0.5"),
                    ("true", "true"), ("a string", '"text"'), ("a table", "{ key = 1 }")):
        if desc.startswith(key):
            return ex
    return "..."


def kind(value: Any) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    if isinstance(value, list):
        odd = next((x for x in value if not isinstance(x, str)), None)
        if odd is not None:
            return f"a list holding {kind(odd)}"
    return kinds.get(type(value), type(value).__name__)
