"""SFT export: filter reasons, both row formats, dedupe, canonical bytes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import msgspec
import pytest

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    Usage,
    UserMessage,
)
from writ_async.conversation.records import Check, EpisodeRecord, RewardInfo, Timing
from writ_async.export.sft import (
    OPENAI_FILE,
    SHAREGPT_FILE,
    ExportContext,
    ExportFilter,
    keep,
    openai_row,
    sharegpt_conversation,
    sharegpt_row,
    write_exports,
)
from writ_async.participants.prompts import agent_system_prompt

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "get_user_details", "description": "Get a user's profile.",
        "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                       "required": ["user_id"]}}},
    {"type": "function", "function": {
        "name": "cancel_reservation", "description": "Cancel a reservation.",
        "parameters": {"type": "object",
                       "properties": {"reservation_id": {"type": "string"}},
                       "required": ["reservation_id"]}}},
]
RETAIL_TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "find_user_id_by_email", "description": "Find a user.",
        "parameters": {"type": "object", "properties": {"email": {"type": "string"}},
                       "required": ["email"]}}},
]
CONTEXT = ExportContext(
    system_prompt_by_domain={"airline": agent_system_prompt("Airline policy."),
                             "retail": agent_system_prompt("Retail policy.")},
    tools_by_domain={"airline": TOOLS, "retail": RETAIL_TOOLS},
)
TASK_ORDER = ["t10", "t2", "t1", "t3"]  # deliberately not sorted


def conversation(user_name: str = "mia_li_3668") -> list[Message]:
    """Greeting, a request, a turn with two tool calls (one with text), a reply, a stop."""
    return [
        AssistantMessage(content="Hi! How can I help you today?", turn_idx=0),
        UserMessage(content=f"Cancel reservation ABC123 for {user_name}, s'il vous plaît ✈",
                    turn_idx=1, usage=Usage(prompt_tokens=9, completion_tokens=9)),
        AssistantMessage(
            content="Let me look that up.",
            tool_calls=(
                ToolCall(id="call_1", name="get_user_details",
                         arguments={"user_id": user_name}),
                ToolCall(id="call_2", name="cancel_reservation",
                         arguments={"reservation_id": "ABC123",
                                    "nested": {"z": [1, 2.5, None], "a": "é"}}),
            ),
            turn_idx=2, usage=Usage(prompt_tokens=100, completion_tokens=20)),
        ToolMessage(id="call_1", content='{"user_id": "mia_li_3668"}', turn_idx=3),
        ToolMessage(id="call_2", content="Error: reservation not found", error=True,
                    turn_idx=4),
        AssistantMessage(content="Done: ABC123 is cancelled.", turn_idx=5),
        UserMessage(content="Thanks! ###STOP###", turn_idx=6),
    ]


def make_record(task_id: str = "t1", trial: int = 0, *, domain: str = "airline",
                reward: float | None = 1.0, evidence_ok: bool = True,
                termination: str = "user_stop", messages: list[Message] | None = None,
                timing: Timing | None = None) -> EpisodeRecord:
    info = None
    if reward is not None:
        checks = [] if evidence_ok else [
            Check(name="cancel_reservation", passed=False,
                  detail="reservation_id not read before the write")]
        info = RewardInfo(reward=reward, reward_basis=["DB", "COMMUNICATE"],
                          evidence_checks=checks, evidence_ok=evidence_ok)
    return EpisodeRecord(
        episode_id=f"{task_id}:{trial}", task_id=task_id, trial=trial, seed=1000 + trial,
        domain=domain, termination=termination,
        messages=conversation(f"user_{task_id}_{trial}") if messages is None else messages,
        final_db_hash="abc", reward_info=info, trajectory_type="read_heavy",
        axes={"writes": 1, "evidence": 3}, model_calls=4,
        timing=timing or Timing(start_time=1.0, end_time=2.0, duration=1.0))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- filter ------------------------------------------------------------------------------


def test_filter_defaults() -> None:
    f = ExportFilter()
    assert (f.min_reward, f.terminations, f.require_evidence, f.dedupe) == (
        1.0, ["user_stop", "agent_stop"], True, True)


@pytest.mark.parametrize(("record", "expected"), [
    (make_record(), (True, "")),
    (make_record(termination="agent_stop"), (True, "")),
    (make_record(reward=0.0), (False, "reward 0.0 < 1.0")),
    (make_record(termination="max_steps", reward=0.0), (False, "termination max_steps")),
    (make_record(termination="agent_error", reward=None), (False, "termination agent_error")),
    (make_record(reward=None), (False, "ungraded")),
    (make_record(evidence_ok=False),
     (False, "evidence check failed: cancel_reservation: reservation_id not read before "
             "the write")),
])
def test_keep_reasons(record: EpisodeRecord, expected: tuple[bool, str]) -> None:
    assert keep(record, ExportFilter()) == expected


def test_keep_with_a_looser_filter() -> None:
    loose = ExportFilter(min_reward=0.0, terminations=["user_stop", "max_steps"],
                         require_evidence=False)
    assert keep(make_record(reward=0.0, termination="max_steps", evidence_ok=False),
                loose) == (True, "")
    assert keep(make_record(termination="agent_stop"), loose) == (
        False, "termination agent_stop")
    evidence_without_detail = msgspec.structs.replace(
        make_record(), reward_info=RewardInfo(reward=1.0, reward_basis=["DB"],
                                              evidence_ok=False))
    assert keep(evidence_without_detail, ExportFilter()) == (False, "evidence check failed")


# -- OpenAI rows -------------------------------------------------------------------------


def check_openai_messages(messages: list[dict[str, Any]]) -> None:
    """System first; every tool call answered, in order, right after its message; tool
    messages only there; no two user or two text-assistant turns in a row."""
    assert messages[0] == {"role": "system", "content": messages[0]["content"]}
    i = 1
    previous = "system"
    while i < len(messages):
        m = messages[i]
        assert m["role"] in ("assistant", "user"), m
        if m["role"] == "user":
            assert previous != "user"
            previous = "user"
            i += 1
            continue
        calls = m.get("tool_calls") or []
        i += 1
        for call in calls:
            assert messages[i]["role"] == "tool"
            assert messages[i]["tool_call_id"] == call["id"]
            i += 1
        if not calls:
            assert previous != "assistant"
        previous = "tool" if calls else "assistant"


def test_openai_row_structure() -> None:
    record = make_record()
    row = openai_row(record, CONTEXT)
    assert list(row) == ["messages", "tools", "metadata"]
    assert row["tools"] == TOOLS
    messages = row["messages"]
    assert messages[0] == {"role": "system", "content": agent_system_prompt("Airline policy.")}
    check_openai_messages(messages)
    assert [m["role"] for m in messages] == [
        "system", "assistant", "user", "assistant", "tool", "tool", "assistant", "user"]
    original = {c.id: c for m in record.messages if isinstance(m, AssistantMessage)
                for c in m.tool_calls or ()}
    calls = messages[3]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    for c in calls:
        assert c["type"] == "function"
        assert isinstance(c["function"]["arguments"], str)
        assert json.loads(c["function"]["arguments"]) == original[c["id"]].arguments
        assert c["function"]["name"] == original[c["id"]].name
    assert messages[3]["content"] == "Let me look that up."
    assert messages[5] == {"role": "tool", "tool_call_id": "call_2",
                           "content": "Error: reservation not found"}
    assert row["metadata"] == {
        "domain": "airline", "task_id": "t1", "trial": 0, "episode_id": "t1:0",
        "trajectory_type": "read_heavy", "axes": {"evidence": 3, "writes": 1},
        "reward": 1.0, "termination": "user_stop", "seed": 1000, "behaviours": []}


def test_missing_domain_context_is_an_error() -> None:
    with pytest.raises(ValueError, match="'travel'"):
        openai_row(make_record(domain="travel"), CONTEXT)


# -- ShareGPT rows -----------------------------------------------------------------------


def check_llamafactory_sharegpt(turns: list[dict[str, str]]) -> None:
    """LLaMA-Factory's sharegpt loader's rules: human/observation at even positions,
    gpt/function_call at odd ones, an even count."""
    for i, turn in enumerate(turns):
        allowed = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        assert turn["from"] in allowed, (i, turn)
        assert isinstance(turn["value"], str)
    assert turns and len(turns) % 2 == 0


def test_sharegpt_row_structure() -> None:
    record = make_record()
    row = sharegpt_row(record, CONTEXT)
    assert list(row) == ["conversations", "tools", "system", "metadata"]
    assert row["system"] == agent_system_prompt("Airline policy.")
    assert json.loads(row["tools"]) == [t["function"] for t in TOOLS]
    assert row["metadata"] == openai_row(record, CONTEXT)["metadata"]
    turns = row["conversations"]
    check_llamafactory_sharegpt(turns)
    assert [t["from"] for t in turns] == [
        "human", "function_call", "observation", "function_call", "observation", "gpt"]
    assert turns[0]["value"].startswith("Cancel reservation ABC123")
    assert json.loads(turns[1]["value"]) == {"name": "get_user_details",
                                             "arguments": {"user_id": "user_t1_0"}}
    assert list(json.loads(turns[1]["value"])) == ["name", "arguments"]
    assert turns[2]["value"] == '{"user_id": "mia_li_3668"}'
    assert json.loads(turns[3]["value"])["arguments"]["nested"] == {
        "z": [1, 2.5, None], "a": "é"}
    assert turns[4]["value"] == "Error: reservation not found"
    assert turns[5] == {"from": "gpt", "value": "Done: ABC123 is cancelled."}


def test_sharegpt_multi_turn_and_agent_stop() -> None:
    messages: list[Message] = [
        AssistantMessage(content="Hello."),
        UserMessage(content="Who am I?"),
        AssistantMessage(tool_calls=(ToolCall(id="a", name="get_user_details",
                                              arguments={"user_id": "u"}),)),
        ToolMessage(id="a", content="{}"),
        AssistantMessage(content="Your id?"),
        UserMessage(content="u"),
        AssistantMessage(content="Bye ###STOP###"),
    ]
    turns = sharegpt_conversation(messages)
    check_llamafactory_sharegpt(turns)
    assert [t["from"] for t in turns] == [
        "human", "function_call", "observation", "gpt", "human", "gpt"]
    assert turns[-1]["value"] == "Bye ###STOP###"


def test_sharegpt_pairs_results_by_call_id() -> None:
    messages: list[Message] = [
        UserMessage(content="Go."),
        AssistantMessage(tool_calls=(
            ToolCall(id="x", name="get_user_details", arguments={"user_id": "1"}),
            ToolCall(id="y", name="get_user_details", arguments={"user_id": "2"}))),
        ToolMessage(id="y", content="two"),
        ToolMessage(id="x", content="one"),
        AssistantMessage(content="Done."),
    ]
    turns = sharegpt_conversation(messages)
    assert [t["value"] for t in turns if t["from"] == "observation"] == ["one", "two"]
    with pytest.raises(ValueError, match="no tool result"):
        sharegpt_conversation(messages[:3])


# -- writing -----------------------------------------------------------------------------


def mixed_records() -> list[EpisodeRecord]:
    return [
        make_record("t1", 0), make_record("t1", 1), make_record("t2", 0),
        make_record("t10", 2), make_record("t10", 0), make_record("t3", 0, domain="retail"),
        make_record("t2", 1, reward=0.0),
        make_record("t3", 1, domain="retail", termination="max_steps", reward=0.0),
        make_record("t3", 2, domain="retail", evidence_ok=False),
        make_record("t1", 2, reward=None),
    ]


def test_write_exports_counts_order_and_rows(tmp_path: Path) -> None:
    report = write_exports(mixed_records(), tmp_path, CONTEXT, ExportFilter(), TASK_ORDER)
    assert (report.total, report.kept, report.written, report.duplicates) == (10, 6, 6, 0)
    assert report.dropped == {"evidence check failed": 1, "reward 0.0 < 1.0": 1,
                              "termination max_steps": 1, "ungraded": 1}
    assert report.drop_reasons == {
        "t2:1": "reward 0.0 < 1.0", "t1:2": "ungraded",
        "t3:1": "termination max_steps",
        "t3:2": "evidence check failed: cancel_reservation: reservation_id not read "
                "before the write"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [OPENAI_FILE, SHAREGPT_FILE]
    openai = read_jsonl(tmp_path / OPENAI_FILE)
    sharegpt = read_jsonl(tmp_path / SHAREGPT_FILE)
    order = ["t10:0", "t10:2", "t2:0", "t1:0", "t1:1", "t3:0"]
    assert [r["metadata"]["episode_id"] for r in openai] == order
    assert [r["metadata"]["episode_id"] for r in sharegpt] == order
    for row in openai:
        check_openai_messages(row["messages"])
        assert row["tools"] == CONTEXT.tools_by_domain[row["metadata"]["domain"]]
    for row in sharegpt:
        check_llamafactory_sharegpt(row["conversations"])
    assert openai[-1]["messages"][0]["content"] == agent_system_prompt("Retail policy.")
    text = (tmp_path / OPENAI_FILE).read_text(encoding="utf-8")
    assert "✈" in text and "\\u" not in text  # UTF-8, not ASCII escapes
    for banned in ("start_time", "duration", "usage", "prompt_tokens", "turn_idx"):
        assert banned not in text


def test_duplicates_are_exported_once(tmp_path: Path) -> None:
    same = conversation("twin")
    records = [
        make_record("t2", 3, messages=same), make_record("t2", 1, messages=same),
        make_record("t1", 0, messages=same),
        make_record("t3", 0, messages=same, domain="retail"),  # other tools: not a twin
        make_record("t1", 1),
    ]
    report = write_exports(records, tmp_path, CONTEXT, ExportFilter(), TASK_ORDER)
    assert (report.kept, report.written, report.duplicates) == (5, 3, 2)
    assert report.duplicate_of == {"t2:3": "t2:1", "t1:0": "t2:1"}
    ids = [r["metadata"]["episode_id"] for r in read_jsonl(tmp_path / OPENAI_FILE)]
    assert ids == ["t2:1", "t1:1", "t3:0"]
    assert ids == [r["metadata"]["episode_id"] for r in read_jsonl(tmp_path / SHAREGPT_FILE)]

    report = write_exports(records, tmp_path, CONTEXT, ExportFilter(dedupe=False), TASK_ORDER)
    assert (report.written, report.duplicates) == (5, 0)


def test_exports_are_byte_identical_for_any_arrival_order(tmp_path: Path) -> None:
    records = mixed_records()
    write_exports(records, tmp_path / "ref", CONTEXT, ExportFilter(), TASK_ORDER)
    expected = {name: (tmp_path / "ref" / name).read_bytes()
                for name in (OPENAI_FILE, SHAREGPT_FILE)}
    rng = random.Random(7)
    for k in range(5):
        shuffled = records[:]
        rng.shuffle(shuffled)
        # timing and usage differ between runs; they must not reach the files
        shuffled = [msgspec.structs.replace(r, timing=Timing(start_time=k, duration=k + 0.5),
                                            model_calls=k) for r in shuffled]
        out = tmp_path / f"run{k}"
        report = write_exports(iter(shuffled), out, CONTEXT, ExportFilter(), TASK_ORDER)
        assert report.written == 6
        for name, data in expected.items():
            assert (out / name).read_bytes() == data


def test_rewrite_replaces_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    write_exports(mixed_records(), tmp_path, CONTEXT, ExportFilter(), TASK_ORDER)
    write_exports([make_record("t1", 0)], tmp_path, CONTEXT, ExportFilter(), TASK_ORDER)
    assert len(read_jsonl(tmp_path / OPENAI_FILE)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [OPENAI_FILE, SHAREGPT_FILE]


def test_failure_mid_export_keeps_the_old_files(tmp_path: Path) -> None:
    write_exports([make_record("t1", 0)], tmp_path, CONTEXT, ExportFilter(), TASK_ORDER)
    before = (tmp_path / OPENAI_FILE).read_bytes()
    with pytest.raises(ValueError, match="'travel'"):
        write_exports([make_record("t1", 1), make_record("t3", 0, domain="travel")],
                      tmp_path, CONTEXT, ExportFilter(), TASK_ORDER)
    assert (tmp_path / OPENAI_FILE).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [OPENAI_FILE, SHAREGPT_FILE]


def test_unknown_task_or_repeated_episode_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in the task order"):
        write_exports([make_record("t99", 0)], tmp_path, CONTEXT, ExportFilter(), TASK_ORDER)
    with pytest.raises(ValueError, match="t1:0 given more than once"):
        write_exports([make_record("t1", 0), make_record("t1", 0)], tmp_path, CONTEXT,
                      ExportFilter(), TASK_ORDER)
    assert not any(tmp_path.iterdir())


def test_empty_export_writes_empty_files(tmp_path: Path) -> None:
    report = write_exports([], tmp_path / "new", CONTEXT, ExportFilter(), TASK_ORDER)
    assert (report.total, report.written) == (0, 0)
    assert (tmp_path / "new" / OPENAI_FILE).read_bytes() == b""
    assert (tmp_path / "new" / SHAREGPT_FILE).read_bytes() == b""
