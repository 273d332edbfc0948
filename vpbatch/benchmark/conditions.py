"""Conditions as data: the persona and value-steering system messages of configs/personas.toml.

A condition is "vanilla" (no system message), "persona:<group>=<value>" or "steer:<Dimension>".
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpbatch.benchmark.dims import PVQ, VANILLA
from vpbatch.errors import ConfigError

__all__ = [
    "Persona",
    "Conditions",
    "DEFAULT_CONDITIONS",
    "PERSONA_PREFIX",
    "STEER_PREFIX",
    "load_conditions",
    "select_conditions",
    "system_message",
    "persona_condition",
    "steer_condition",
]

# The package keeps the file (so a non-editable install has it); configs/personas.toml links here.
DEFAULT_CONDITIONS = Path(__file__).resolve().parent / "personas.toml"
PERSONA_PREFIX = "persona:"
STEER_PREFIX = "steer:"


@dataclass(slots=True)
class Persona:
    name: str  # "<group>=<value>", e.g. "gender=male"
    group: str
    value: str
    text: str  # the whole system message
    paper_group: str | None = None  # key in the paper's tables (persona_steering_tables.json)
    paper_value: str | None = None


@dataclass(slots=True)
class Conditions:
    personas: dict[str, Persona]  # name -> persona, in file order
    steering: dict[str, str]  # dataset dimension -> the whole system message, in file order
    definitions: dict[str, str] = field(default_factory=dict)  # dimension -> definition
    source: Path | None = None


def persona_condition(name: str) -> str:
    return PERSONA_PREFIX + name


def steer_condition(dim: str) -> str:
    return STEER_PREFIX + dim


def load_conditions(path: str | Path | None = None) -> Conditions:
    """Read a personas/steering file; None = the packaged configs/personas.toml."""
    p = Path(path) if path is not None else DEFAULT_CONDITIONS
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{p}: cannot read the conditions file ({exc.strerror or exc}); set "
            "run.conditions_file to a copy of configs/personas.toml"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML ({exc}); fix the syntax there") from exc
    _keys(p, doc, {"version", "personas", "steering"}, "the top level")
    personas = _personas(p, doc.get("personas", []))
    steering, definitions = _steering(p, doc.get("steering", {}))
    return Conditions(personas=personas, steering=steering, definitions=definitions, source=p)


def _personas(p: Path, rows: Any) -> dict[str, Persona]:
    if not isinstance(rows, list):
        raise ConfigError(f"{p}: personas: must be an array of tables; write [[personas]]")
    out: dict[str, Persona] = {}
    for i, row in enumerate(rows):
        where = f"personas[{i}]"
        _keys(p, row, {"name", "text", "paper_group", "paper_value"}, where)
        name, text = row.get("name"), row.get("text")
        if not isinstance(name, str) or name.count("=") != 1 or name.startswith("="):
            raise ConfigError(f'{p}: {where}.name: expected "<group>=<value>"; e.g. '
                              'name = "gender=male"')
        if not isinstance(text, str) or not text.strip():
            raise ConfigError(f"{p}: {where} ({name}).text: missing; give the system message")
        if name in out:
            raise ConfigError(f"{p}: {where}.name: duplicate persona {name!r}; keep one")
        group, value = name.split("=")
        out[name] = Persona(name, group, value, text,
                            row.get("paper_group"), row.get("paper_value"))
    return out


def _steering(p: Path, table: Any) -> tuple[dict[str, str], dict[str, str]]:
    if not isinstance(table, dict):
        raise ConfigError(f"{p}: steering: must be a table; write [steering]")
    _keys(p, table, {"template", "values"}, "steering")
    template = table.get("template", "")
    rows = table.get("values", [])
    if rows and not (isinstance(template, str) and "{definition}" in template):
        raise ConfigError(f"{p}: steering.template: must contain {{name}} and {{definition}}; "
                          "copy it from configs/personas.toml")
    texts: dict[str, str] = {}
    definitions: dict[str, str] = {}
    for i, row in enumerate(rows):
        where = f"steering.values[{i}]"
        _keys(p, row, {"dimension", "name", "definition"}, where)
        dim, definition = row.get("dimension"), row.get("definition")
        if dim not in PVQ:
            raise ConfigError(f"{p}: {where}.dimension: {dim!r} is not a value dimension; use "
                              "one of " + ", ".join(PVQ))
        if dim in texts:
            raise ConfigError(f"{p}: {where}.dimension: {dim} appears twice; keep one")
        if not isinstance(definition, str) or not definition.strip():
            raise ConfigError(f"{p}: {where} ({dim}).definition: missing; give the definition")
        label = row.get("name") or dim
        # str.replace, not str.format: a definition may contain braces of its own.
        texts[dim] = template.replace("{name}", str(label)).replace("{definition}", definition)
        definitions[dim] = definition
    return texts, definitions


def _keys(p: Path, row: Any, allowed: set[str], where: str) -> None:
    if not isinstance(row, dict):
        raise ConfigError(f"{p}: {where}: must be a table; see configs/personas.toml")
    for key in row:
        if key not in allowed:
            raise ConfigError(f"{p}: {where}: unknown key {key!r}; remove it (allowed: "
                              + ", ".join(sorted(allowed)) + ")")


def _select(chosen: list[str] | str | None, known: dict[str, Any]) -> list[str]:
    if chosen is None:
        return []
    return list(known) if chosen == "all" else list(chosen)


def select_conditions(
    personas: list[str] | str | None, steering: list[str] | str | None, conds: Conditions
) -> list[str]:
    """Condition names for chosen personas and steered values ("all" = every one), vanilla first."""
    out = [VANILLA]
    out += [persona_condition(n) for n in _select(personas, conds.personas)]
    out += [steer_condition(d) for d in _select(steering, conds.steering)]
    return list(dict.fromkeys(out))  # a name listed twice is still one condition


def system_message(condition: str, conds: Conditions) -> str | None:
    """The system message of a condition; None for vanilla (the paper sends none)."""
    if condition == VANILLA:
        return None
    if condition.startswith(PERSONA_PREFIX):
        persona = conds.personas.get(condition[len(PERSONA_PREFIX):])
        if persona is not None:
            return persona.text
    elif condition.startswith(STEER_PREFIX):
        text = conds.steering.get(condition[len(STEER_PREFIX):])
        if text is not None:
            return text
    raise ConfigError(f"unknown condition {condition!r}; use vanilla, persona:<name> or "
                      "steer:<Dimension> with names from the conditions file")
