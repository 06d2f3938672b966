"""Tool dispatch: Python's own argument-binding errors, refusals as data, bugs propagate."""

from __future__ import annotations

from typing import Literal

import msgspec
import pytest

from writ_async.environment.tools import Toolbox, describe, generic, parse_docstring, read, write
from writ_async.errors import ToolError


class Pair(msgspec.Struct):
    """A pair.

    Args:
        a: First.
        b: Second.
    """

    a: str
    b: int


@read
def lookup(db: object, key: str, extra: int = 0) -> dict:
    """Look a key up.

    Args:
        key: The key to find,
            continued on a second line.
        extra: Something optional.
    """
    if key == "missing":
        raise ToolError(f"Key {key} not found")
    return {"key": key, "extra": extra}


@write
def store(db: object, a: str, b: int, c: list[Pair | dict], mode: Literal["x", "y"]) -> str:
    """Store things.

    Args:
        a: A.
        b: B.
        c: C.
        mode: M.
    """
    return "stored"


@generic
def broken(db: object) -> str:
    """Has a bug."""
    return {}["nope"]


BOX = Toolbox("DemoTools", [lookup, store, broken])


def test_success_is_rendered_as_python_json() -> None:
    result = BOX.call(None, "lookup", {"key": "é"})
    assert result.output == '{"key": "\\u00e9", "extra": 0}'
    assert result.error is False


def test_string_results_are_raw() -> None:
    assert BOX.call(None, "store", {"a": "", "b": 1, "c": [], "mode": "x"}).output == "stored"


def test_refusal_becomes_error_result() -> None:
    result = BOX.call(None, "lookup", {"key": "missing"})
    assert (result.output, result.error) == ("Error: Key missing not found", True)


def test_unknown_tool() -> None:
    assert BOX.call(None, "think", {}).output == "Error: Tool 'think' not found."
    assert BOX.call(None, None, {}).output == "Error: Tool 'None' not found."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"key": "k", "confirm": True},
         "DemoTools.lookup() got an unexpected keyword argument 'confirm'"),
        ({}, "DemoTools.lookup() missing 1 required positional argument: 'key'"),
        ({"self": 1, "key": "k"}, "DemoTools.lookup() got multiple values for argument 'self'"),
    ],
)
def test_binding_errors_read_like_python(args: dict, message: str) -> None:
    result = BOX.call(None, "lookup", args)
    assert (result.output, result.error) == (f"Error: {message}", True)


def test_several_missing_arguments() -> None:
    two = BOX.call(None, "store", {"a": "", "b": 1}).output
    assert two == "Error: DemoTools.store() missing 2 required positional arguments: 'c' and 'mode'"
    three = BOX.call(None, "store", {"a": ""}).output
    assert three.endswith("arguments: 'b', 'c', and 'mode'")


def test_unexpected_is_reported_before_missing() -> None:
    out = BOX.call(None, "store", {"zzz": 1}).output
    assert out == "Error: DemoTools.store() got an unexpected keyword argument 'zzz'"


def test_bugs_are_not_turned_into_data() -> None:
    with pytest.raises(KeyError):
        BOX.call(None, "broken", {})


def test_schema_from_signature_and_docstring() -> None:
    schema = describe(store).schema["function"]
    params = schema["parameters"]
    assert schema["description"] == "Store things."
    assert params["required"] == ["a", "b", "c", "mode"]
    assert params["properties"]["b"]["type"] == "integer"
    assert params["properties"]["mode"]["enum"] == ["x", "y"]
    items = params["properties"]["c"]["items"]["anyOf"]
    assert items[0] == {"$ref": "#/$defs/Pair"}
    assert params["$defs"]["Pair"]["required"] == ["a", "b"]
    assert params["$defs"]["Pair"]["properties"]["a"]["description"] == "First."


def test_optional_parameter_is_not_required() -> None:
    params = describe(lookup).schema["function"]["parameters"]
    assert params["required"] == ["key"]
    assert params["properties"]["key"]["description"] == (
        "The key to find, continued on a second line."
    )


def test_unmarked_function_is_refused() -> None:
    def plain(db: object) -> str:
        return ""

    with pytest.raises(ValueError, match="not marked"):
        Toolbox("X", [plain])


def test_docstring_without_args() -> None:
    assert parse_docstring("Just a summary.") == ("Just a summary.", {})
