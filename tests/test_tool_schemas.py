"""Generated tool schemas agree with tau2-bench's tools.json on everything a model relies
on: tool names, parameter names, JSON types, enums and required-ness."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import require, tau2_dir

from domains import get_domain
from writ_async.errors import DataError

DOMAINS = ("airline", "retail")


def shape(schema: dict[str, Any]) -> dict[str, Any]:
    """What must agree: per parameter its type (items type for arrays), enum, required."""
    fn = schema["function"]
    params = fn["parameters"]
    out = {}
    for name, prop in params["properties"].items():
        items = prop.get("items", {})
        item_type = items.get("type") or ("object" if "anyOf" in items else None)
        out[name] = (prop.get("type"), prop.get("enum"), item_type)
    return {"name": fn["name"], "params": out, "required": sorted(params.get("required", []))}


def reference(domain: str) -> list[dict[str, Any]]:
    path = require(tau2_dir() / domain / "tools.json", f"tau2-bench {domain} tools.json")
    return json.loads(path.read_text())


@pytest.mark.parametrize("domain", DOMAINS)
def test_generated_schemas_match_tau2(domain: str) -> None:
    ours = {s["function"]["name"]: shape(s) for s in get_domain(domain).toolbox.schemas()}
    theirs = {s["function"]["name"]: shape(s) for s in reference(domain)}
    assert ours == theirs


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_generated_parameter_is_described(domain: str) -> None:
    for schema in get_domain(domain).toolbox.schemas():
        fn = schema["function"]
        assert fn["description"], fn["name"]
        for name, prop in fn["parameters"]["properties"].items():
            assert prop["description"], f"{fn['name']}.{name} has no description"


@pytest.mark.parametrize("domain", DOMAINS)
def test_schemas_can_be_loaded_from_tools_json(domain: str) -> None:
    path = tau2_dir() / domain / "tools.json"
    require(path, "tau2-bench tools.json")
    box = get_domain(domain).toolbox_with_schemas(path)
    assert box.schemas() == reference(domain)
    # Calls still run through our own implementations.
    assert box.tools is get_domain(domain).toolbox.tools


def test_tools_json_with_wrong_names_is_refused(tmp_path) -> None:
    bad = tmp_path / "tools.json"
    bad.write_text(json.dumps([{"type": "function", "function": {"name": "fly"}}]))
    with pytest.raises(DataError, match="tool names differ"):
        get_domain("airline").toolbox_with_schemas(bad)


def test_tools_json_not_json_is_refused(tmp_path) -> None:
    bad = tmp_path / "tools.json"
    bad.write_text("[{")
    with pytest.raises(DataError, match="malformed JSON at line 1"):
        get_domain("airline").toolbox_with_schemas(bad)


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_tool_is_marked(domain: str) -> None:
    kinds = {t.name: t.kind.value for t in get_domain(domain).toolbox.tools.values()}
    assert set(kinds.values()) <= {"read", "write", "generic"}
    assert kinds["calculate"] == "generic"
    assert kinds["transfer_to_human_agents"] == "generic"
    assert kinds["get_user_details"] == "read"
