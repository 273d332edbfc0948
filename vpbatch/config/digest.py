"""What a config means, as one hash: the run dir's resume check compares these.

The normal form is the expanded config (one plain model per model, provider defaults filled
in) with every value that equals its default left out and the models in name order. Two
spellings of one sweep (a model list or one table per model, a key in `[providers.<p>]` or in
each model, `concurrency = 8` or nothing) give the same form; and a key added to the config
later, with a default, leaves the digest of every existing config as it was.
"""

from __future__ import annotations

import hashlib
from dataclasses import MISSING, fields
from typing import Any

import orjson

__all__ = ["normal_form", "digest", "differences", "FORMAT"]

FORMAT = 1  # bump if the normal form's layout changes meaning


def _set(obj: Any, keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The dataclass's fields that differ from their defaults (and `keep`, always)."""
    out = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.default is not MISSING:
            default = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        if f.name in keep or value != default:
            out[f.name] = value
    return out


def normal_form(cfg: Any) -> dict[str, Any]:
    """The config's meaning as plain data (a `config.schema.Config`; typed loosely: no cycle)."""
    form: dict[str, Any] = {
        "format": FORMAT,
        "run": _set(cfg.run),
        "grids": _set(cfg.grids),
        "models": sorted((_model(m, cfg.run) for m in cfg.models), key=lambda m: m["name"]),
    }
    if cfg.limits:  # only when there are groups: a config without them keeps its old digest
        form["limits"] = {name: _set(g) for name, g in cfg.limits.items()}
    return form


def _model(m: Any, run: Any) -> dict[str, Any]:
    """A model's set fields, less those that only repeat [run]'s value (`answer` is filled in
    from [run] when the config loads; a model saying what [run] says means the same)."""
    keep = ("name", "provider", "model")
    # A model's name is its own, never inherited: a run named like its model ([run] name =
    # "m", a model "m") would otherwise lose the model's name from its form.
    inherited = ({f.name for f in fields(m)} & {f.name for f in fields(run)}) - set(keep)
    return {k: v for k, v in _set(m, keep=keep).items()
            if not (k in inherited and v == getattr(run, k))}


def digest(form: dict[str, Any]) -> str:
    """sha256 of a normal form, as canonical JSON (sorted keys)."""
    return hashlib.sha256(orjson.dumps(form, option=orjson.OPT_SORT_KEYS)).hexdigest()


def differences(old: dict[str, Any], new: dict[str, Any], most: int = 4) -> list[str]:
    """What changed between two normal forms, in a few words each (at most `most` of them)."""
    out: list[str] = []
    for table in ("run", "grids"):
        out += [f"{table}.{k}" for k in _changed(old.get(table, {}), new.get(table, {}))]
    was_g, now_g = old.get("limits", {}), new.get("limits", {})
    out += [f"limits.{g}" for g in _changed(was_g, now_g)]
    was = {m["name"]: m for m in old.get("models", [])}
    now = {m["name"]: m for m in new.get("models", [])}
    if added := [n for n in now if n not in was]:
        out.append("models added: " + ", ".join(added))
    if gone := [n for n in was if n not in now]:
        out.append("models removed: " + ", ".join(gone))
    out += [f"{n}.{k}" for n in now if n in was for k in _changed(was[n], now[n])]
    return out[:most] + ([f"{len(out) - most} more"] if len(out) > most else [])


def _changed(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
