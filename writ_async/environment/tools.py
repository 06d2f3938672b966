"""Tools as plain functions: marking, schema generation, and exact-error dispatch.

A domain's tool is a function ``fn(db, **arguments)`` whose first parameter is the
episode's state and whose other parameters are what the model passes. It is marked
``@read``, ``@write`` or ``@generic``; its OpenAI schema is generated from its signature
and its Google-style docstring (summary line, ``Args:`` section).

``Toolbox.call`` is where model output meets the code, so it treats the call as
untrusted input the way tau2-bench's tools see it: an unknown name, an unexpected or a
missing argument becomes an error result carrying the text Python would have raised
(tau2-bench binds the JSON arguments as keyword arguments without schema checks), and a
``ToolError`` from the tool becomes ``"Error: <message>"``. Any other exception is a bug
in the tool and propagates.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, get_args, get_origin

import msgspec

from writ_async.environment.tau2.canonical import dump_output
from writ_async.errors import ToolError


class ToolKind(StrEnum):
    READ = "read"
    WRITE = "write"
    GENERIC = "generic"


_KIND_ATTR = "__writ_tool_kind__"


def _mark(kind: ToolKind) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        setattr(fn, _KIND_ATTR, kind)
        return fn

    return mark


read = _mark(ToolKind.READ)
write = _mark(ToolKind.WRITE)
generic = _mark(ToolKind.GENERIC)


class ToolResult(msgspec.Struct, frozen=True):
    """What a tool call returns to the model: the content string and the error flag."""

    output: str
    error: bool


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    kind: ToolKind
    fn: Callable[..., Any]
    params: tuple[str, ...]
    required: tuple[str, ...]
    schema: dict[str, Any]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _quote_names(names: Sequence[str]) -> str:
    # Python's own wording: 'a'; 'a' and 'b'; 'a', 'b', and 'c'.
    quoted = [f"'{n}'" for n in names]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


class Toolbox:
    """The tools of one domain, by name, callable on an episode's state.

    ``owner`` is the class name tau2-bench's tools live on (``AirlineTools``), which
    appears in Python's argument-binding errors. ``shown_schemas`` replaces the generated
    schemas with ones loaded from a file (e.g. tau2-bench's ``tools.json``), so training
    data carries exactly the descriptions the benchmark shows.
    """

    def __init__(
        self,
        owner: str,
        functions: Iterable[Callable[..., Any]],
        shown_schemas: list[dict[str, Any]] | None = None,
    ) -> None:
        self.owner = owner
        self.tools: dict[str, Tool] = {}
        for fn in functions:
            tool = describe(fn)
            if tool.name in self.tools:
                raise ValueError(f"duplicate tool name {tool.name!r}")
            self.tools[tool.name] = tool
        self._shown = shown_schemas

    def names(self) -> list[str]:
        return list(self.tools)

    def kind(self, name: str) -> ToolKind | None:
        tool = self.tools.get(name)
        return tool.kind if tool else None

    def schemas(self) -> list[dict[str, Any]]:
        """OpenAI ``tools`` entries in the order the model is shown them."""
        if self._shown is not None:
            return self._shown
        return [t.schema for t in self.tools.values()]

    def with_schemas(self, shown: list[dict[str, Any]]) -> Toolbox:
        box = Toolbox.__new__(Toolbox)
        box.owner, box.tools, box._shown = self.owner, self.tools, shown
        return box

    def binding_error(self, tool: Tool, arguments: Mapping[str, Any]) -> str | None:
        """Python's TypeError text for calling ``tool`` with these keywords, if any."""
        where = f"{self.owner}.{tool.name}()"
        for key in arguments:
            if key == "self":
                return f"{where} got multiple values for argument 'self'"
            if key not in tool.params:
                return f"{where} got an unexpected keyword argument '{key}'"
        missing = [p for p in tool.required if p not in arguments]
        if missing:
            n = len(missing)
            return (
                f"{where} missing {_plural(n, 'required positional argument')}: "
                f"{_quote_names(missing)}"
            )
        return None

    def call(self, db: Any, name: Any, arguments: Mapping[str, Any]) -> ToolResult:
        """Run one tool call on ``db``; refusals come back as error results."""
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            return ToolResult(f"Error: Tool '{name}' not found.", True)
        problem = self.binding_error(tool, arguments)
        if problem is not None:
            return ToolResult(f"Error: {problem}", True)
        try:
            value = tool.fn(db, **arguments)
        except ToolError as refusal:
            return ToolResult(f"Error: {refusal}", True)
        return ToolResult(dump_output(value), False)

    def __repr__(self) -> str:
        return f"<Toolbox {self.owner} tools={len(self.tools)}>"


# -- schema generation -------------------------------------------------------------------

_ARG_LINE = re.compile(r"^\s{4,}(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The description (text before ``Args:``) and the per-argument descriptions."""
    text = inspect.cleandoc(doc or "")
    head, _, tail = text.partition("\nArgs:")
    description = head.strip()
    args: dict[str, str] = {}
    current: str | None = None
    for line in tail.splitlines():
        if re.match(r"^\S", line):  # a following section such as Returns:
            break
        m = _ARG_LINE.match(line)
        if m and len(line) - len(line.lstrip()) <= 4:
            current = m.group(1)
            args[current] = m.group(2).strip()
        elif current and line.strip():
            args[current] += " " + line.strip()
    return description, args


def _title(name: str) -> str:
    return " ".join(part.capitalize() for part in name.split("_"))


def _json_type(annotation: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = get_origin(annotation)
    if annotation is str:
        return {"type": "string"}
    if annotation is bool:
        return {"type": "boolean"}
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation is dict or origin is dict:
        return {"additionalProperties": True, "type": "object"}
    if origin is Literal:
        return {"enum": list(get_args(annotation)), "type": "string"}
    if origin is list:
        (item,) = get_args(annotation)
        return {"items": _json_type(item, defs), "type": "array"}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_json_type(a, defs) for a in get_args(annotation)]}
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        name = annotation.__name__
        if name not in defs:
            hints = typing.get_type_hints(annotation, include_extras=False)
            _, docs = parse_docstring(annotation.__doc__)
            props = {}
            for field in msgspec.structs.fields(annotation):
                prop = {"description": docs.get(field.name, ""), "title": _title(field.name)}
                prop.update(_json_type(hints[field.name], defs))
                props[field.name] = prop
            required = [
                f.name for f in msgspec.structs.fields(annotation) if f.required
            ]
            defs[name] = {
                "properties": props, "required": required, "title": name, "type": "object"
            }
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no JSON schema for annotation {annotation!r}")


def describe(fn: Callable[..., Any]) -> Tool:
    """Build the ``Tool`` record (kind, parameters, schema) of a marked function."""
    kind = getattr(fn, _KIND_ATTR, None)
    if kind is None:
        raise ValueError(f"{fn.__name__} is not marked @read, @write or @generic")
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    params = list(signature.parameters.values())[1:]  # the first is the episode state
    description, arg_docs = parse_docstring(fn.__doc__)
    defs: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for p in params:
        prop = {"description": arg_docs.get(p.name, ""), "title": _title(p.name)}
        prop.update(_json_type(hints[p.name], defs))
        properties[p.name] = prop
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
    parameters: dict[str, Any] = {}
    if defs:
        parameters["$defs"] = defs
    parameters["properties"] = properties
    if required:
        parameters["required"] = required
    parameters["title"] = "parameters"
    parameters["type"] = "object"
    schema = {
        "type": "function",
        "function": {"name": fn.__name__, "description": description, "parameters": parameters},
    }
    return Tool(
        name=fn.__name__,
        kind=kind,
        fn=fn,
        params=tuple(p.name for p in params),
        required=tuple(required),
        schema=schema,
    )
