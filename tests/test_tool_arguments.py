"""A model's tool-call arguments that no run can hold, over the real CLI.

JSON text can spell NaN, 1e400, a 400-digit integer or arrays nested 100,000 deep; none
of them can be run, journaled (msgpack holds 64-bit integers), graded or exported. The
mock's ``unholdable_tool_args`` fault makes the model emit them; each call must become an
error tool result that says why, never a traceback or a stored inf/nan, and the run must
still replay exactly.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from writ_async.config import ModelsConfig
from writ_async.conversation.messages import AssistantMessage, ToolMessage
from writ_async.engine.journal import read_journal
from writ_async.environment.tau2.validation import parse_arguments
from writ_async.errors import ToolError
from writ_async.llm.setup import open_pool
from writ_async.mock.server import UNHOLDABLE_VALUES

REPO = Path(__file__).resolve().parents[1]

UNHOLDABLE = """
[simulate]
agent = "agent"
user = "scripted-http"
task_count = 4
max_errors = 6
max_steps = 30
[mock.faults]
unholdable_tool_args = 1.0
"""

# What the error result says for each value (validation.parse_arguments).
WHY = {"NaN": "NaN is not a JSON number", "1e400": "number 1e400 is too large",
       "9" * 400: "an integer of 400 digits is beyond the 64-bit range",
       "[" * 100_000 + "]" * 100_000: "nested more than 64 levels deep"}


def _writ(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ_async", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def _holdable(value: Any) -> bool:
    """Whether ``value`` is plain JSON data a journal can hold (iteratively: no depth)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif (isinstance(item, float) and not math.isfinite(item)) or (
                isinstance(item, int) and not -(2**63) <= item < 2**64):
            return False
    return True


def test_unholdable_tool_arguments_become_error_results_and_the_run_replays(
        tmp_path: Path) -> None:
    config = tmp_path / "unholdable.toml"
    config.write_text(UNHOLDABLE, encoding="utf-8")
    run = tmp_path / "run"
    done = _writ("simulate", "--config", str(config), "--out", str(run))
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    journal = read_journal(run / "journal.bin")
    records = list(journal.finished.values())
    assert len(records) == 4
    errors = [m.content for r in records for m in r.messages
              if isinstance(m, ToolMessage) and m.error]
    calls = [c for r in records for m in r.messages if isinstance(m, AssistantMessage)
             for c in m.tool_calls or ()]
    assert calls and errors
    # every call kept its text and ran with nothing; every stored value is holdable
    assert all(c.raw_arguments is not None and c.arguments == {} for c in calls)
    assert all(_holdable(c.arguments) for c in calls)
    for value, why in WHY.items():
        assert any(why in e for e in errors), (value[:10], errors[:3])
    # none of it is training data: an episode with an unreadable call is not kept
    exported = (run / "export" / "sft_openai.jsonl").read_text(encoding="utf-8")
    assert exported == "" and "unreadable tool call" in done.stdout
    # the run is whole and replays to the same bytes
    replayed = _writ("replay", str(run), "--all")
    assert replayed.returncode == 0, (replayed.stdout, replayed.stderr)


@pytest.mark.parametrize("value", UNHOLDABLE_VALUES, ids=["nan", "1e400", "int400", "deep"])
def test_parse_arguments_refuses_what_no_run_can_hold(value: str) -> None:
    with pytest.raises(ToolError) as refused:
        parse_arguments(f'{{"amount": {value}}}')
    assert WHY[value] in str(refused.value)


def test_parse_arguments_keeps_ordinary_objects_and_refuses_non_objects() -> None:
    text = '{"amount": 12.5, "ids": ["a", "b"], "n": 18446744073709551615}'
    assert parse_arguments(text) == {"amount": 12.5, "ids": ["a", "b"],
                                     "n": 18446744073709551615}
    for bad in ("[1]", "```json\n{}\n```", '{"a": 1'):
        with pytest.raises(ToolError, match="are not a JSON object"):
            parse_arguments(bad)


@pytest.mark.asyncio
async def test_the_embedded_mock_lists_the_configured_model_names() -> None:
    """A client that discovers its model asks GET /v1/models: the in-process mock lists
    the model names its endpoints were configured with, as `writ mock-server` does."""
    async with open_pool(ModelsConfig()) as pool:
        url = pool.roles["agent"][0].client.url.removesuffix("/chat/completions")
        async with aiohttp.ClientSession() as session, \
                session.get(f"{url}/models") as answer:
            listed = await answer.json()
    assert [card["id"] for card in listed["data"]] == [ModelsConfig().endpoints["mock"].model]
