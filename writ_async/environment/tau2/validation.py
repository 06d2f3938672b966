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

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

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


# -- a model's tool-call arguments ---------------------------------------------------------
#
# A model writes a tool call's arguments as JSON text, and anything may be in it. Before
# the runner journals and runs the call, the text must be an object the rest of the run
# can hold: the journal (msgpack) stores integers of at most 64 bits, JSON has no NaN or
# Infinity (and a float like 1e400 would be read as one), and every reader of the run
# (replay, results.json, export) recurses once per nesting level. Arguments that break
# any of these are not run: the model gets an error result saying why, as
# `writ tools call` says it for the same input.

MAX_ARGUMENT_DEPTH = 64  # nesting levels; tau2's deepest argument (a list of objects) has 3
INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # the integers msgpack, hence the journal, holds
_EXCERPT = 40

_object_decoder = msgspec.json.Decoder(dict[str, Any])


def parse_arguments(text: str) -> dict[str, Any]:
    """The arguments object a model wrote as ``text``, or a ``ToolError`` whose message
    completes "the arguments of TOOL ..." (see ``arguments_problem``)."""
    try:
        value = _object_decoder.decode(text)
    except msgspec.DecodeError:  # ValidationError too: JSON, but not an object
        raise ToolError(_unreadable_why(text)) from None
    except RecursionError:  # the decoder recurses once per level
        raise ToolError(_too_deep()) from None
    problem = _value_problem(value)
    if problem is not None:
        raise ToolError(problem)
    return value


def arguments_problem(text: str) -> str:
    """Why ``text`` is not usable tool-call arguments, completing "the arguments of TOOL
    ...": "are not a JSON object" for text that is not one (the wording runs journaled
    before this check recorded), else what in it cannot be held."""
    try:
        parse_arguments(text)
    except ToolError as problem:
        return str(problem)
    raise ValueError("these arguments are usable")  # a caller's bug: nothing to explain


def _too_deep() -> str:
    return f"cannot be read: arrays or objects nested more than {MAX_ARGUMENT_DEPTH} levels deep"


def strict_json_loads(text: str, parse_int: Callable[[str], int]) -> Any:
    """``json.loads`` that refuses the numbers JSON cannot carry: NaN and Infinity (not
    JSON, though Python reads them) and floats beyond 64 bits (1e400 would be read as
    infinity) raise a ``ToolError`` naming the number; ``parse_int`` reads each integer
    and raises ``ToolError`` to refuse one. The stdlib parser keeps 100 and 100.0
    distinct, as tau2 sees them; it raises RecursionError past its nesting depth."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float,
                      parse_int=parse_int)


def _refuse_constant(name: str) -> Any:
    # An amount of NaN or inf would be stored and hashed as if it were money.
    raise ToolError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # e.g. 1e400: valid JSON, beyond any 64-bit float
        clipped = text if len(text) <= _EXCERPT else f"{text[:_EXCERPT - 3]}..."
        raise ToolError(f"number {clipped} is too large: it is beyond the range of a 64-bit "
                        "float and would be read as infinity")
    return value


def _int_in_range(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > 20:  # beyond 64 bits whatever the digits; int() refuses over 4,300 anyway
        raise ToolError(_int_out_of_range(digits))
    value = int(text)
    if not INT_MIN <= value <= INT_MAX:
        raise ToolError(_int_out_of_range(digits))
    return value


def _int_out_of_range(digits: int | str) -> str:
    return f"an integer of {digits} digits is beyond the 64-bit range a run can record"


def _unreadable_why(text: str) -> str:
    """Why the object decoder refused ``text``. The stdlib parser is asked again only to
    name the cause: it reports NaN, Infinity and out-of-range floats by their hooks,
    where the decoder says only "malformed" or "out of range"."""
    try:
        strict_json_loads(text, _int_in_range)
    except ToolError as exc:
        return f"cannot be read: {exc}"
    except RecursionError:
        return _too_deep()
    except ValueError:  # JSONDecodeError, or an integer too long for int()
        pass
    return "are not a JSON object"


def _value_problem(value: Any) -> str | None:
    """What in a decoded arguments object the run cannot hold, or None. Iterative: the
    depth is what is being checked."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_ARGUMENT_DEPTH:
                return _too_deep()
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, int) and not isinstance(item, bool) and \
                not INT_MIN <= item <= INT_MAX:
            # (str() of an int over 4,300 digits raises: those are counted from the bits)
            digits = len(str(abs(item))) if item.bit_length() < 14_000 else "over 4,000"
            return f"cannot be read: {_int_out_of_range(digits)}"
        elif isinstance(item, float) and not math.isfinite(item):
            return "cannot be read: NaN and Infinity are not JSON numbers"
    return None
