"""Python operations on model-supplied values, failing the way tau2-bench's tools fail.

tau2-bench does not check tool arguments against their schema: a model that sends
``item_ids: null`` or ``"total_baggages": "2"`` reaches the tool body, and whatever
Python raises there becomes the tool output ``"Error: <message>"``. These helpers perform
the same operations on the JSON values a model can send and raise ``ToolError`` with the
text CPython 3.12 gives. Where the wording differs between Python versions (lookups,
iteration, ``len``) it is spelled out here; for arithmetic and comparisons, whose wording
is stable, the helpers apply the one operation and turn *only its* TypeError into the
ToolError. They are used solely on values that came from the model, never to paper over
errors in our own code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Hashable, Iterable, Sized
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


def py_sum(values: Iterable[Any]) -> Any:
    total: Any = 0
    for v in values:
        total = apply(operator.add, total, v)
    return total


def attr(obj: Any, name: str) -> Any:
    """``obj.name`` for a record; anything else fails as Python's AttributeError does."""
    if isinstance(obj, msgspec.Struct):
        return getattr(obj, name)
    raise ToolError(f"'{type(obj).__name__}' object has no attribute '{name}'")



def type_name(value: Any) -> str:
    return type(value).__name__


def require_hashable(key: Any) -> None:
    """``key in some_dict`` raises this for a list or dict key."""
    if not isinstance(key, Hashable):
        raise ToolError(f"unhashable type: '{type_name(key)}'")


def hashable(key: Any) -> Any:
    """``key``, after failing as ``key in some_dict`` would for a list or dict."""
    require_hashable(key)
    return key


def iterate(value: Any) -> list[Any]:
    """The items ``for x in value`` visits (a dict yields its keys, a str its characters)."""
    if not isinstance(value, Iterable):
        raise ToolError(f"'{type_name(value)}' object is not iterable")
    return list(value)


def length(value: Any) -> int:
    """``len(value)``."""
    if not isinstance(value, Sized):
        raise ToolError(f"object of type '{type_name(value)}' has no len()")
    return len(value)


def count(value: Any, item: Any) -> int:
    """``value.count(item)``: a list counts equal elements, a str counts substrings."""
    if isinstance(value, list):
        return value.count(item)
    if isinstance(value, str):
        if not isinstance(item, str):
            raise ToolError(f"must be str, not {type_name(item)}")
        return value.count(item)
    raise ToolError(f"'{type_name(value)}' object has no attribute 'count'")


def lower(value: Any) -> str:
    """``value.lower()``."""
    if not isinstance(value, str):
        raise ToolError(f"'{type_name(value)}' object has no attribute 'lower'")
    return value.lower()


def sorted_ids(value: Any) -> list[Any]:
    """``sorted(value)`` of an id list that earlier checks already proved to be strings."""
    items = iterate(value)
    if all(isinstance(x, str) for x in items):
        return sorted(items)
    # Not reachable from the tools (every element was matched against string ids first);
    # kept so that an impossible mix fails as data rather than escaping as a TypeError.
    kinds = [type_name(x) for x in items]
    other = next(k for k in kinds if k != "str")
    raise ToolError(f"'<' not supported between instances of '{other}' and 'str'")
