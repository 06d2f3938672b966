"""Python's own errors for the operations tau2's retail tools apply to model input.

tau2-bench does not check tool arguments against their schema: a model that sends
``item_ids: null`` or ``email: 42`` reaches the tool body, and whatever Python raises
there becomes the tool output ``"Error: <message>"``. These helpers perform the same
operations on the JSON values a model can send (str, int, float, bool, None, list, dict)
and raise ``ToolError`` with the text CPython 3.12 would have raised, so the failure is
data the model sees and never an escaping exception. Messages are spelled out rather
than caught from Python because their wording changes between Python versions.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sized
from typing import Any

from writ_async.errors import ToolError


def type_name(value: Any) -> str:
    return type(value).__name__


def require_hashable(key: Any) -> None:
    """``key in some_dict`` raises this for a list or dict key."""
    if not isinstance(key, Hashable):
        raise ToolError(f"unhashable type: '{type_name(key)}'")


def iterate(value: Any) -> Iterator[Any]:
    """``for x in value``."""
    if not isinstance(value, Iterable):
        raise ToolError(f"'{type_name(value)}' object is not iterable")
    return iter(value)


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
    items = list(iterate(value))
    if all(isinstance(x, str) for x in items):
        return sorted(items)
    # Not reachable from the tools (every element was matched against string ids first);
    # kept so that an impossible mix fails as data rather than escaping as a TypeError.
    kinds = [type_name(x) for x in items]
    other = next(k for k in kinds if k != "str")
    raise ToolError(f"'<' not supported between instances of '{other}' and 'str'")
