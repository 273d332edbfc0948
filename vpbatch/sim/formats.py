"""What a request asks the simulator to answer in: free text, or a choice among the six phrases.

The simulator honours the forms a real server takes: OpenAI's structured outputs
(`response_format` of type `json_schema`), llama-cpp-python's `json_object` with a `schema`,
Anthropic's forced tool (`tool_choice` naming a tool whose `input_schema` is the schema), and
Gemini's `responseSchema`.
It answers only the choice schema vpbatch sends; any other schema is refused, as a server
that cannot honour a format should do.
"""

from __future__ import annotations

from typing import Any, Final

from vpbatch.benchmark.choice import CHOICE_PROPERTY
from vpbatch.benchmark.dims import PHRASES

__all__ = ["requested_choice", "forced_tool"]

_ONLY: Final = (
    f"the simulator answers only the choice schema: an object with one required string "
    f"property {CHOICE_PROPERTY!r} whose enum is the six answer phrases"
)


def forced_tool(body: dict[str, Any]) -> str | None:
    """The tool an Anthropic request forces the model to call, if it forces one."""
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool":
        name = choice.get("name")
        return name if isinstance(name, str) else None
    return None


def requested_choice(kind: str, body: dict[str, Any]) -> tuple[str, ...] | None | str:
    """The phrases a request asks to choose among (its enum), None for free text, or what is
    wrong with the request (for a 400). `kind` is "openai", "anthropic" or "gemini"."""
    if kind == "gemini":  # responseMimeType application/json with a responseSchema
        gen = body.get("generationConfig")
        if not isinstance(gen, dict) or gen.get("responseMimeType") != "application/json":
            return None
        return _enum_of(gen.get("responseSchema"))
    if kind == "anthropic":
        name = forced_tool(body)
        if name is None:
            return None
        tools = body.get("tools")
        tool = next((t for t in tools if isinstance(t, dict) and t.get("name") == name),
                    None) if isinstance(tools, list) else None
        if tool is None:
            return f"tool_choice names {name!r}, which is not among the tools"
        return _enum_of(tool.get("input_schema"))
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind_of = fmt.get("type") if isinstance(fmt, dict) else None
    if kind_of == "text":
        return None
    if kind_of == "json_schema":
        spec = fmt.get("json_schema")
        return _enum_of(spec.get("schema") if isinstance(spec, dict) else None)
    if kind_of == "json_object":
        return _enum_of(fmt.get("schema"))
    return f"response_format.type must be text, json_object or json_schema, not {kind_of!r}"


def _enum_of(schema: Any) -> tuple[str, ...] | str:
    if not isinstance(schema, dict) or schema.get("required") != [CHOICE_PROPERTY]:
        return _ONLY
    props = schema.get("properties")
    prop = props.get(CHOICE_PROPERTY) if isinstance(props, dict) else None
    options = prop.get("enum") if isinstance(prop, dict) else None
    if not isinstance(options, list) or sorted(map(str, options)) != sorted(PHRASES):
        return _ONLY
    return tuple(options)
