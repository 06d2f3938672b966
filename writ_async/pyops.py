"""Python operations on model-supplied values, failing the way tau2-bench's tools fail.

tau2-bench's tools do arithmetic and lookups directly on the JSON values a model sent,
so a model that sends ``"total_baggages": "2"`` gets back Python's own TypeError text
(``unsupported operand type(s) for -: 'str' and 'int'``). Reproducing that output means
applying the same operation to the same values; these helpers do exactly one operation
and turn *only its* TypeError into the ToolError the model sees. They are used solely on
values that came from the model, never to paper over errors in our own code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from writ_async.errors import ToolError


def apply(op: Callable[[Any, Any], Any], a: Any, b: Any) -> Any:
    """``op(a, b)``; a TypeError from mixing the operands' types becomes a ToolError."""
    try:
        return op(a, b)
    except TypeError as exc:
        raise ToolError(str(exc)) from None


def sub(a: Any, b: Any) -> Any:
    return apply(operator.sub, a, b)


def mul(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, str | list) and a * len(b) > 10_000_000:
        raise ToolError("repetition too large")  # str * int: never allocate without bound
    return apply(operator.mul, a, b)


def iadd(a: Any, b: Any) -> Any:
    return apply(operator.iadd, a, b)


def isub(a: Any, b: Any) -> Any:
    return apply(operator.isub, a, b)


def lt(a: Any, b: Any) -> bool:
    return bool(apply(operator.lt, a, b))


def ne(a: Any, b: Any) -> bool:
    return bool(apply(operator.ne, a, b))


def py_max(a: Any, b: Any) -> Any:
    """``max(a, b)``: Python compares ``b > a`` and keeps the first of equals."""
    return b if apply(operator.gt, b, a) else a


def py_len(value: Any) -> int:
    try:
        return len(value)
    except TypeError as exc:
        raise ToolError(str(exc)) from None


def py_sum(values: Iterable[Any]) -> Any:
    total: Any = 0
    for v in values:
        total = apply(operator.add, total, v)
    return total


def iterate(value: Any) -> list[Any]:
    """The items ``for x in value`` would visit (a dict yields its keys)."""
    if isinstance(value, list | str | dict | tuple):
        return list(value)
    raise ToolError(f"'{type(value).__name__}' object is not iterable")


def attr(obj: Any, name: str) -> Any:
    """``obj.name`` for a record; anything else fails as Python's AttributeError does."""
    if isinstance(obj, msgspec.Struct):
        return getattr(obj, name)
    raise ToolError(f"'{type(obj).__name__}' object has no attribute '{name}'")


def key(value: Any) -> str:
    """``dict[value]`` failing like Python for an unhashable key."""
    if isinstance(value, list | dict | set):
        raise ToolError(f"unhashable type: '{type(value).__name__}'")
    return value
