"""Tool calls that servers fail to parse and pass through as text (issue 16): classified
(``ToolCallParseFailure`` and its kind), journaled, counted in the run summary, and
handled per role (retry the turn, or keep the call and answer it with an error result),
never taken as a final answer. Over loopback against the real mock server, whose quirks
play vLLM's hermes pass-through, a parser-less server's bare JSON, SGLang's empty
``tool_calls`` and trailing data after the arguments; the whole run through the CLI."""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from writ_async.config import Config, load_config
from writ_async.conversation.episode import refusal
from writ_async.conversation.messages import AssistantMessage, ToolCall, UserMessage
from writ_async.errors import ConfigError, MalformedResponse, ToolCallParseFailure
from writ_async.llm.assemble import check_completion, text_tool_calls
from writ_async.llm.protocol import ChatCompletion, ChatRequest, Choice, FunctionCall
from writ_async.llm.protocol import Message as WireMessage
from writ_async.llm.protocol import ToolCall as WireToolCall
from writ_async.llm.setup import open_pool
from writ_async.participants.llm import LLMAgent, LLMUser

REPO = Path(__file__).resolve().parents[1]
TOOL = {"type": "function", "function": {
    "name": "get_user_details", "description": "Look a user up.",
    "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                   "required": ["user_id"]}}}
ARGS = '{"user_id": "mia_li_3668"}'
HISTORY = [UserMessage(content="Hello, I am mia_li_3668.")]


def _call() -> WireMessage:
    return WireMessage(role="assistant", content=None, tool_calls=[WireToolCall(
        id="call_1", function=FunctionCall("get_user_details", ARGS))])


class Calls:
    """Answers with a tool call (or ``answers`` in turn, then a tool call); keeps every
    request the server decoded."""

    def __init__(self, *answers: WireMessage) -> None:
        self.answers = list(answers)
        self.requests: list[ChatRequest] = []

    def respond(self, request: ChatRequest, rng: random.Random) -> WireMessage:
        self.requests.append(request)
        return self.answers.pop(0) if self.answers else _call()


def _config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _quirk(how: str, stream: bool = False, params: str = "") -> str:
    return (f"[models.endpoints.mock]\nstream = {str(stream).lower()}\n"
            f"[mock.quirks]\ntool_call_parse_failure = \"{how}\"\n{params}")


def _request(tools: bool = True) -> ChatRequest:
    return ChatRequest(model="", messages=[WireMessage(role="user", content="Hi")],
                       tools=[TOOL] if tools else None, seed=1)


KINDS = {"hermes": "markup_in_content", "json": "json_in_content",
         "sglang_empty": "empty_tool_calls", "trailing_data": "trailing_data"}


# -- classification --------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("how", sorted(KINDS))
@pytest.mark.asyncio
async def test_each_server_quirk_is_classified(how: str, stream: bool, tmp_path: Path) -> None:
    config = _config(tmp_path, _quirk(how, stream))
    async with open_pool(config.models, mock_config=config.mock, mock_policy=Calls()) as pool:
        with pytest.raises(ToolCallParseFailure) as caught:
            await pool.complete("agent", _request())
    failure = caught.value
    assert (failure.kind, failure.reason) == (KINDS[how], "tool_call_parse_failure")
    assert failure.completion is not None and failure.call is not None  # kept for the turn


@pytest.mark.asyncio
async def test_prose_about_tools_and_a_users_words_are_not_failures(tmp_path: Path) -> None:
    config = _config(tmp_path, "")
    prose = WireMessage(role="assistant", content="I will call get_user_details for you.",
                        tool_calls=[])  # present but empty, finish_reason "stop": words
    markup = WireMessage(role="assistant", content='<tool_call>{"name": "x"}</tool_call>')
    policy = Calls(prose, markup)
    async with open_pool(config.models, mock_config=config.mock, mock_policy=policy) as pool:
        said = await pool.complete("agent", _request())
        # a request without tools (the user simulator's) never reads its text as a call
        heard = await pool.complete("user", _request(tools=False))
    assert said.completion.choices[0].message.content == prose.content
    assert heard.completion.choices[0].message.content == markup.content


def _completion(message: WireMessage, finish: str) -> ChatCompletion:
    return ChatCompletion(choices=[Choice(message=message, finish_reason=finish)])


@pytest.mark.parametrize("arguments", ['{"a": 1}{"b": 2}', '{"a":1} trailing', '{"a": 1}}'])
def test_data_after_the_arguments_object_is_trailing_data(arguments: str) -> None:
    message = WireMessage(role="assistant", tool_calls=[WireToolCall(
        id="c", function=FunctionCall("f", arguments))])
    with pytest.raises(ToolCallParseFailure) as caught:
        check_completion(_completion(message, "tool_calls"), require_usage=False)
    assert caught.value.kind == "trailing_data"


def test_arguments_that_are_only_cut_stay_invalid_tool_arguments() -> None:
    message = WireMessage(role="assistant", tool_calls=[WireToolCall(
        id="c", function=FunctionCall("f", '{"a": '))])
    with pytest.raises(MalformedResponse) as caught:
        check_completion(_completion(message, "tool_calls"), require_usage=False)
    assert not isinstance(caught.value, ToolCallParseFailure)
    assert caught.value.reason == "invalid_tool_arguments"


def test_calls_are_recovered_from_the_text() -> None:
    text = ('Let me look.\n<tool_call>\n{"name": "get_user_details", "arguments": '
            '{"user_id": "u1"}}\n</tool_call>\n<tool_call>\n{"name": broken\n</tool_call>')
    assert text_tool_calls(text) == [("get_user_details", '{"user_id": "u1"}'),
                                     ("", '{"name": broken')]
    fenced = '```json\n{"name": "f", "parameters": {"x": 1}}\n```'
    assert text_tool_calls(fenced) == [("f", '{"x": 1}')]
    assert text_tool_calls("I will call f now.") == []


# -- policies --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", sorted(KINDS))
@pytest.mark.asyncio
async def test_error_result_keeps_the_call_and_answers_it_with_an_error(
        how: str, tmp_path: Path) -> None:
    config = _config(tmp_path, _quirk(how) + (
        "[models.params.agent]\non_tool_call_parse_failure = \"error_result\"\n"))
    policy = Calls()
    async with open_pool(config.models, mock_config=config.mock, mock_policy=policy) as pool:
        turn = await LLMAgent(pool, "agent", "You help.", [TOOL], seed=1,
                              tag="t").reply(HISTORY)
    assert len(policy.requests) == 1 and turn.discarded == ()  # no retry
    message = turn.message
    assert isinstance(message, AssistantMessage) and message.is_tool_call  # not an answer
    assert message.parse_failures == (KINDS[how],)
    assert turn.call is not None and turn.call.malformed == f"tool_call_parse_failure:{KINDS[how]}"
    calls = message.tool_calls or ()
    assert calls and all(c.parse_failure == KINDS[how] for c in calls)
    # the model wrote which tool it meant, except where the server dropped the call
    assert [c.name for c in calls] == (["unparsed_tool_call"] if how == "sglang_empty"
                                       else ["get_user_details"])
    result = refusal(calls[0])
    assert result is not None and result.error
    assert "it was not run" in result.output
    assert {"hermes": "<tool_call> block", "json": "JSON object in the message",
            "sglang_empty": "returned no tool call",
            "trailing_data": "extra data after the JSON object"}[how] in result.output


@pytest.mark.asyncio
async def test_retry_makes_fresh_calls_then_keeps_an_error_result(tmp_path: Path) -> None:
    # the default policy: retry twice (another seed each time), then the error result
    config = _config(tmp_path, _quirk("hermes"))
    policy = Calls()
    async with open_pool(config.models, mock_config=config.mock, mock_policy=policy) as pool:
        turn = await LLMAgent(pool, "agent", "You help.", [TOOL], seed=1,
                              tag="t").reply(HISTORY)
    assert len(policy.requests) == 3
    assert len({r.seed for r in policy.requests}) == 3  # fresh draws, not the same call
    assert [c.malformed for c in turn.discarded] == ["tool_call_parse_failure:"
                                                     "markup_in_content"] * 2
    message = turn.message
    assert isinstance(message, AssistantMessage)
    assert message.parse_failures == ("markup_in_content",) * 3
    assert message.tool_calls and message.tool_calls[0].parse_failure == "markup_in_content"


@pytest.mark.asyncio
async def test_a_retry_that_succeeds_gives_the_clean_call(tmp_path: Path) -> None:
    config = _config(tmp_path, "[models.params.agent]\ntool_call_parse_retries = 1\n")
    hermes = WireMessage(role="assistant", content=f'<tool_call>\n{{"name": '
                         f'"get_user_details", "arguments": {ARGS}}}\n</tool_call>')
    policy = Calls(hermes)
    async with open_pool(config.models, mock_config=config.mock, mock_policy=policy) as pool:
        turn = await LLMAgent(pool, "agent", "You help.", [TOOL], seed=1,
                              tag="t").reply(HISTORY)
    message = turn.message
    assert isinstance(message, AssistantMessage) and message.tool_calls
    call = message.tool_calls[0]
    assert (call.name, call.arguments, call.raw_arguments) == (
        "get_user_details", {"user_id": "mia_li_3668"}, None)
    assert refusal(call) is None  # runs
    assert message.parse_failures == ("markup_in_content",)
    assert len(turn.discarded) == 1 and turn.call is not None and turn.call.malformed is None


@pytest.mark.asyncio
async def test_an_endpoints_policy_wins_over_the_roles(tmp_path: Path) -> None:
    config = _config(tmp_path, _quirk("json") + (
        "[models.params.agent]\non_tool_call_parse_failure = \"retry\"\n"
        "[models.endpoints.mock.params]\non_tool_call_parse_failure = \"error_result\"\n"))
    policy = Calls()
    async with open_pool(config.models, mock_config=config.mock, mock_policy=policy) as pool:
        assert pool.parse_failure_handling("agent", "mock") == ("error_result", 0)
        turn = await LLMAgent(pool, "agent", "You help.", [TOOL], seed=1,
                              tag="t").reply(HISTORY)
        # the user simulator has no tools: its turn never meets the policy
        heard = await LLMUser(pool, "user", "You are a customer.", seed=1,
                              tag="u").reply(HISTORY)
    assert len(policy.requests) == 2 and turn.discarded == ()
    assert isinstance(heard.message, UserMessage)


@pytest.mark.parametrize("text, key", [
    ("on_tool_call_parse_failure = \"ignore\"", "models.params.agent.on_tool_call_parse_failure"),
    ("tool_call_parse_retries = -1", "models.params.agent.tool_call_parse_retries"),
])
def test_a_bad_policy_is_a_config_error_naming_the_key(text: str, key: str,
                                                       tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _config(tmp_path, f"[models.params.agent]\n{text}\n")
    assert caught.value.key_path == key


def test_messages_without_parse_failures_encode_as_before() -> None:
    # old journals decode, and a clean run's journal bytes do not change
    call = ToolCall(id="c", name="f", arguments={})
    message = AssistantMessage(content="Hi", tool_calls=(call,), turn_idx=3)
    encoded = msgspec.msgpack.encode(message)
    assert b"parse_failure" not in encoded
    assert msgspec.msgpack.decode(encoded, type=AssistantMessage) == message


# -- a whole run through the CLI ---------------------------------------------------------------

RUN = """
[simulate]
agent = "agent"
user = "scripted"
task_count = 4
max_steps = 20

[mock.quirks]
tool_call_parse_failure = "hermes"
tool_call_parse_failure_rate = 0.8
"""


def _writ(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ_async", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _events(path: Path) -> list[dict[str, Any]]:
    buf = path.read_bytes()
    out, offset = [], 0
    while offset < len(buf):
        length, _crc = struct.unpack_from("<II", buf, offset)
        out.append(msgspec.msgpack.decode(buf[offset + 8:offset + 8 + length]))
        offset += 8 + length
    return out


def test_a_run_counts_journals_and_replays_parse_failures(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(RUN, encoding="utf-8")
    run = tmp_path / "run"
    done = _writ("simulate", "--config", str(config), "--out", str(run))
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if "tool_call_parse_failures" in x)
    counted = json.loads(line.split("tool_call_parse_failures", 1)[1].strip()
                         .replace("'", '"'))
    events = _events(run / "journal.bin")
    journaled = [e["malformed"] for e in events if e["kind"] == "model_called"
                 and (e.get("malformed") or "").startswith("tool_call_parse_failure")]
    assert counted == {"markup_in_content": len(journaled)} and journaled
    # each policy outcome happened: turns retried into a clean call, and calls kept and
    # answered by an error result; no episode took one for a final answer
    said = [e["message"] for e in events if e["kind"] == "message"
            and e["message"].get("parse_failures")]
    kept = [m for m in said if any("parse_failure" in c for c in m["tool_calls"] or ())]
    assert kept and len(kept) < len(said)
    assert sum(len(m["parse_failures"]) for m in said) == len(journaled)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert all(s["termination_reason"] != "agent_error" for s in results["simulations"])
    answers = [m["content"] for s in results["simulations"] for m in s["messages"]
               if m["role"] == "tool" and "it was not run" in m["content"]]
    assert answers and all("<tool_call> block" in a for a in answers)
    replayed = _writ("replay", str(run), "--all")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
