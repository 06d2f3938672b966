"""Lax model validation with tau2-bench's observable behaviour.

tau2-bench converts some tool arguments into pydantic models, so a model that sends
``{"dob": 19900101}`` or ``"cabin": "first"`` gets a validation error, and a model that
sends ``"amount": "100"`` gets the value coerced. The first line of such an error,
``N validation error(s) for <Model>``, is part of the tool output that must match byte for
byte, so the *count* of errors and the *coercions* must be exact. The detail lines below
it are written here in the same layout (field path, message, error type, input).

Only the field types the airline and retail models use are supported: str, int, float,
a literal choice of strings, optional variants of those, nested models and lists of
models. Validation is pure: it returns the coerced values or raises ``ToolError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from writ_async.errors import ToolError


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a validated model: its name and kind, and whether it may be absent."""

    name: str
    kind: Kind
    required: bool = True
    default: Any = None


@dataclass(frozen=True, slots=True)
class Kind:
    """What a field accepts. ``tag`` is one of str/int/float/literal/model/list/any."""

    tag: str
    choices: tuple[str, ...] = ()
    model: Model | None = None
    item: Kind | None = None
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    fields: tuple[Field, ...]


STR = Kind("str")
INT = Kind("int")
FLOAT = Kind("float")
ANY = Kind("any")
OPT_STR = Kind("str", nullable=True)


def literal(*choices: str) -> Kind:
    return Kind("literal", choices=choices)


def model_kind(model: Model) -> Kind:
    return Kind("model", model=model)


def list_of(item: Kind) -> Kind:
    return Kind("list", item=item)


@dataclass(frozen=True, slots=True)
class _Issue:
    loc: str
    message: str
    type: str
    value: Any


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
_INT_TEXT = re.compile(r"^\s*[+-]?\d+(_\d+)*\s*$")


def validate(model: Model, data: Any) -> dict[str, Any]:
    """The coerced field values of ``model`` built from ``data``, or a ToolError."""
    issues: list[_Issue] = []
    values = _check_model(model, data, "", issues)
    if issues:
        raise ToolError(_render(model.name, issues))
    assert isinstance(values, dict)
    return values


def _render(model_name: str, issues: Sequence[_Issue]) -> str:
    n = len(issues)
    lines = [f"{n} validation error{'s' if n != 1 else ''} for {model_name}"]
    for issue in issues:
        lines.append(issue.loc or "(root)")
        lines.append(
            f"  {issue.message} [type={issue.type}, input_value={issue.value!r}, "
            f"input_type={type(issue.value).__name__}]"
        )
    return "\n".join(lines)


def _join(loc: str, part: str | int) -> str:
    return f"{loc}.{part}" if loc else str(part)


def _check_model(model: Model, data: Any, loc: str, issues: list[_Issue]) -> Any:
    if not isinstance(data, Mapping):
        issues.append(
            _Issue(loc, f"Input should be a valid dictionary or instance of {model.name}",
                   "model_type", data)
        )
        return None
    out: dict[str, Any] = {}
    for field in model.fields:
        where = _join(loc, field.name)
        if field.name not in data:
            if field.required:
                issues.append(_Issue(where, "Field required", "missing", dict(data)))
            else:
                out[field.name] = field.default
            continue
        out[field.name] = _check(field.kind, data[field.name], where, issues)
    return out


def _check(kind: Kind, value: Any, loc: str, issues: list[_Issue]) -> Any:
    if value is None and kind.nullable:
        return None
    tag = kind.tag
    if tag == "any":
        return value
    if tag == "str":
        if isinstance(value, str):
            return value
        issues.append(_Issue(loc, "Input should be a valid string", "string_type", value))
        return None
    if tag == "int":
        return _check_int(value, loc, issues)
    if tag == "float":
        return _check_float(value, loc, issues)
    if tag == "literal":
        if isinstance(value, str) and value in kind.choices:
            return value
        quoted = [repr(c) for c in kind.choices]
        expected = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
        issues.append(_Issue(loc, f"Input should be {expected}", "literal_error", value))
        return None
    if tag == "model":
        assert kind.model is not None
        return _check_model(kind.model, value, loc, issues)
    if tag == "list":
        assert kind.item is not None
        if not isinstance(value, list | tuple):
            issues.append(_Issue(loc, "Input should be a valid list", "list_type", value))
            return None
        return [_check(kind.item, v, _join(loc, i), issues) for i, v in enumerate(value)]
    raise AssertionError(f"unknown kind {tag}")


def _check_int(value: Any, loc: str, issues: list[_Issue]) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            issues.append(_Issue(loc, "Input should be a finite number", "finite_number", value))
        elif value != int(value):
            issues.append(
                _Issue(loc, "Input should be a valid integer, got a number with a fractional part",
                       "int_from_float", value)
            )
        else:
            return int(value)
        return None
    if isinstance(value, str):
        # Bounded: an integer string longer than this is not a plausible id or amount,
        # and converting it would cost quadratic time in the digit count.
        if len(value) <= 4300 and _INT_TEXT.match(value):
            return int(value.strip().replace("_", ""))
        issues.append(
            _Issue(loc, "Input should be a valid integer, unable to parse string as an integer",
                   "int_parsing", value)
        )
        return None
    issues.append(_Issue(loc, "Input should be a valid integer", "int_type", value))
    return None


def _check_float(value: Any, loc: str, issues: list[_Issue]) -> Any:
    if isinstance(value, bool | int):
        try:
            return float(value)
        except OverflowError:
            # An int beyond the float range (e.g. 400 digits): pydantic's conversion to a
            # double fails the same way and it reports the input as not a number.
            issues.append(_Issue(loc, "Input should be a valid number", "float_type", value))
            return None
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            issues.append(
                _Issue(loc, "Input should be a valid number, unable to parse string as a number",
                       "float_parsing", value)
            )
            return None
    issues.append(_Issue(loc, "Input should be a valid number", "float_type", value))
    return None
