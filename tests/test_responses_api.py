"""OpenAI's Responses API (``api = "responses"``): the wire mapping, pure; the client
against the mock's ``/v1/responses`` over loopback, streamed and not, with its faults;
reasoning items kept on the agent's messages and sent back; whole runs through the CLI
that grade and replay as the chat API's do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from writ_async.config import load_config
from writ_async.conversation.messages import AssistantMessage, UserMessage
from writ_async.errors import (
    CallTimeout,
    ConfigError,
    MalformedResponse,
    RateLimited,
    ToolCallParseFailure,
    TransientError,
)
from writ_async.llm.client import EndpointClient, Timeouts, open_session
from writ_async.llm.protocol import (
    ChatRequest,
    FunctionCall,
    Message,
    ToolCall,
    encode_request,
)
from writ_async.llm.responses_wire import (
    ResponsesStreamAssembler,
    chat_request_of,
    decode_response,
    request_body,
)
from writ_async.llm.setup import open_pool
from writ_async.mock.config import FaultRates, MockConfig, Quirks
from writ_async.mock.policies import PlausiblePolicy
from writ_async.mock.server import open_mock_server
from writ_async.participants.llm import LLMAgent
from writ_async.participants.prompts import agent_view

REPO = Path(__file__).resolve().parents[1]
TOOL = {"type": "function", "function": {
    "name": "get_user_details", "description": "Look a user up.",
    "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                   "required": ["user_id"]}}}
REASONING_ITEM = {"type": "reasoning", "id": "rs_1", "encrypted_content": "opaque==",
                  "summary": [{"type": "summary_text", "text": "look the user up"}]}


def _conversation() -> list[Message]:
    return [
        Message(role="system", content="You are an agent."),
        Message(role="user", content="I am mia_1."),
        Message(role="assistant", content="Let me look.", tool_calls=[ToolCall(
            id="call_1", function=FunctionCall("get_user_details", '{"user_id":"mia_1"}'))],
            reasoning_content="look the user up", reasoning_items=[REASONING_ITEM]),
        Message(role="tool", tool_call_id="call_1", content='{"name":"Mia"}'),
    ]


# -- the wire mapping, pure ------------------------------------------------------------------


def test_a_chat_request_becomes_a_responses_body() -> None:
    request = ChatRequest(
        model="gpt-5", messages=_conversation(), tools=[TOOL],
        tool_choice={"type": "function", "function": {"name": "get_user_details"}},
        seed=7, temperature=0.5, top_p=0.9, max_tokens=64, reasoning_effort="low",
        parallel_tool_calls=False, user="t:0|agent|7", stream=True,
        extra_body={"service_tier": "flex"})
    body = json.loads(request_body(request))
    assert body == {
        "model": "gpt-5", "instructions": "You are an agent.",
        "input": [
            {"type": "message", "role": "user", "content": "I am mia_1."},
            REASONING_ITEM,  # verbatim, before the turn it produced
            {"type": "message", "role": "assistant", "content": "Let me look."},
            {"type": "function_call", "call_id": "call_1", "name": "get_user_details",
             "arguments": '{"user_id":"mia_1"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": '{"name":"Mia"}'},
        ],
        "tools": [{"type": "function", "name": "get_user_details",
                   "description": "Look a user up.",
                   "parameters": TOOL["function"]["parameters"]}],  # type: ignore[index]
        "tool_choice": {"type": "function", "name": "get_user_details"},
        "parallel_tool_calls": False, "temperature": 0.5, "top_p": 0.9,
        "max_output_tokens": 64, "reasoning": {"effort": "low"}, "user": "t:0|agent|7",
        "store": False, "include": ["reasoning.encrypted_content"], "stream": True,
        "service_tier": "flex",
    }  # no seed, no stream_options: the API has neither


def test_extra_body_overrides_what_the_mapping_sets() -> None:
    # a model without encrypted reasoning refuses `include`: extra_body clears it
    request = ChatRequest(model="m", messages=[Message(role="user", content="hi")],
                          max_completion_tokens=9, extra_body={"include": []})
    body = json.loads(request_body(request))
    assert body["include"] == [] and body["max_output_tokens"] == 9
    assert "instructions" not in body


def test_the_mock_reads_back_the_request_it_was_sent() -> None:
    request = ChatRequest(model="m", messages=_conversation(), tools=[TOOL],
                          tool_choice="auto", max_tokens=32, user="tag")
    chat, encrypted = chat_request_of(request_body(request))
    assert encrypted
    assert chat.messages == request.messages
    assert chat.tools == request.tools and chat.tool_choice == "auto"
    assert chat.max_completion_tokens == 32 and chat.user == "tag"


def _response(**fields: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "resp_1", "object": "response", "created_at": 5, "status": "completed",
        "model": "m", "output": [], "usage": {"input_tokens": 10, "output_tokens": 4,
                                              "total_tokens": 14}}
    body.update(fields)
    return json.dumps(body).encode()


def test_output_items_become_the_chat_answer() -> None:
    raw = _response(output=[
        REASONING_ITEM,
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "One "}, {"type": "output_text", "text": "moment."}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_9",
         "name": "get_user_details", "arguments": '{"user_id":"x"}'},
        {"type": "web_search_call", "id": "ws_1"},  # not the engine's: ignored
    ])
    completion = decode_response(raw, "application/json", "e")
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    message = choice.message
    assert message.content == "One moment."
    assert message.tool_calls == [ToolCall(id="call_9", function=FunctionCall(
        "get_user_details", '{"user_id":"x"}'))]
    assert message.reasoning == "look the user up"
    assert message.reasoning_items == [REASONING_ITEM]
    assert completion.usage is not None and completion.usage.prompt_tokens == 10


@pytest.mark.parametrize(("fields", "reason"), [
    ({"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}, "length"),
    ({"status": "incomplete", "incomplete_details": {"reason": "content_filter"}},
     "content_filter"),
])
def test_an_incomplete_response_is_a_cut_answer(fields: dict[str, Any], reason: str) -> None:
    raw = _response(output=[{"type": "message", "content": [
        {"type": "output_text", "text": "Sure, let"}]}], **fields)
    assert decode_response(raw, "application/json", "e").choices[0].finish_reason == reason


@pytest.mark.parametrize(("raw", "reason"), [
    (_response(status="failed", error={"message": "boom", "code": "server_error"}),
     "error_object"),
    (b'{"error": {"message": "overloaded", "type": "server_error"}}', "error_object"),
    (b"<html>502</html>", "html"),
    (b'{"id": "resp_1", "out', "invalid_json"),
    (_response(status="in_progress"), "interrupted_stream"),
    (_response(output=[{"type": "function_call", "name": "f", "arguments": "{}"}]),
     "invalid_tool_call"),
])
def test_unusable_bodies_are_typed_failures(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedResponse) as caught:
        decode_response(raw, "application/json", "e")
    assert caught.value.reason == reason


def _events(*payloads: dict[str, Any]) -> list[str]:
    return [json.dumps(p) for p in payloads]


def test_a_stream_is_assembled_from_its_deltas() -> None:
    # a terminal event without its output (allowed): the items come from the stream
    assembler = ResponsesStreamAssembler(started=0.0)
    for now, data in enumerate(_events(
        {"type": "response.created", "response": {"status": "in_progress"}},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {"type": "message", "role": "assistant", "content": []}},
        {"type": "response.output_text.delta", "output_index": 0, "delta": "Hel"},
        {"type": "response.output_text.delta", "output_index": 0, "delta": "lo"},
        {"type": "response.output_item.added", "output_index": 1,
         "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"a"'},
        {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": ":1}"},
        {"type": "response.completed", "response": {"status": "completed", "usage": {
            "input_tokens": 3, "output_tokens": 2}}},
    ), start=1):
        assembler.feed_event(data, float(now))
    message = assembler.result().choices[0].message
    assert message.content == "Hello"
    assert message.tool_calls == [ToolCall(id="c1", function=FunctionCall("f", '{"a":1}'))]
    assert assembler.ttft == 3.0 and assembler.token_chunks == 4 and assembler.chunks == 8


def test_a_stream_whose_events_name_their_items_not_places() -> None:
    # llama.cpp's llama-server: deltas carry item_id and no output_index; the terminal
    # event lists the output. Same answer as OpenAI's shape, and a first token.
    assembler = ResponsesStreamAssembler(started=0.0)
    for now, data in enumerate(_events(
        {"type": "response.created", "response": {"status": "in_progress"}},
        {"type": "response.output_item.added",
         "item": {"id": "msg_1", "type": "message", "role": "assistant", "content": []}},
        {"type": "response.content_part.added", "item_id": "msg_1",
         "part": {"type": "output_text", "text": ""}},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "Hel"},
        {"type": "response.output_text.delta", "item_id": "msg_1", "delta": "lo"},
        {"type": "response.output_text.done", "item_id": "msg_1", "text": "Hello"},
        {"type": "response.output_item.done", "item": {
            "id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Hello"}]}},
        {"type": "response.completed", "response": {"status": "completed", "output": [{
            "id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Hello"}]}],
            "usage": {"input_tokens": 10, "output_tokens": 2}}},
    ), start=1):
        assembler.feed_event(data, float(now))
    assert assembler.result().choices[0].message.content == "Hello"
    assert assembler.ttft == 4.0 and assembler.token_chunks == 2


def test_a_stream_cut_before_its_end_is_truncated() -> None:
    assembler = ResponsesStreamAssembler()
    assembler.feed_event(json.dumps({"type": "response.output_text.delta",
                                     "output_index": 0, "delta": "Hi"}), 0.0)
    with pytest.raises(MalformedResponse, match="truncated_stream"):
        assembler.result()
    with pytest.raises(MalformedResponse, match="error_object: rate limited"):
        ResponsesStreamAssembler().feed_event(json.dumps(
            {"type": "error", "message": "rate limited"}), 0.0)


# -- the client against the mock, over loopback -------------------------------------------------


def _request(stream: bool, **fields: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="system", content="sys"),
                                            Message(role="user", content="hello")],
                       tools=[TOOL], tool_choice="auto", stream=stream, **fields)


async def _complete(config: MockConfig, request: ChatRequest, *,
                    timeouts: Timeouts | None = None) -> Any:
    async with open_mock_server(config) as server, open_session() as session:
        client = EndpointClient("r", server.url, session, model="m", api="responses",
                                timeouts=timeouts)
        return await client.complete(request)


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_the_client_speaks_responses_to_the_mock(stream: bool) -> None:
    config = MockConfig(quirks=Quirks(reasoning="reasoning"), tokens_per_chunk=2)
    result = await _complete(config, _request(stream))
    message = result.completion.choices[0].message
    assert message.tool_calls and message.tool_calls[0].function.name == "get_user_details"
    json.loads(message.tool_calls[0].function.arguments)
    assert message.reasoning and message.reasoning.startswith("The conversation has")
    [item] = message.reasoning_items
    assert item["type"] == "reasoning" and item["encrypted_content"].startswith("writ-mock:")
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0
    assert (result.ttft is not None) == stream


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_the_same_answer_over_either_api(stream: bool) -> None:
    # a seeded policy answers the same request the same on both routes (the mock reads
    # both into one ChatRequest); the Responses API has no seed, so the policy's rng
    # here is fixed by the server's own seed and its first request
    answers = []
    for api in ("chat", "responses"):
        async with open_mock_server(MockConfig(seed=3), PlausiblePolicy(8, 16)) as server, \
                open_session() as session:
            client = EndpointClient("r", server.url, session, model="m", api=api)  # type: ignore[arg-type]
            result = await client.complete(_request(stream))
            answers.append((result.completion.choices[0].message.tool_calls,
                            # the chat stream opens with content "": no text either way
                            result.completion.choices[0].message.content or None,
                            result.usage))
    assert answers[0] == answers[1]


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("fault", "error", "reason"), [
    ("error_5xx", TransientError, None),
    ("reset", TransientError, None),
    ("error_object_200", MalformedResponse, "error_object"),
    ("malformed_json", MalformedResponse, None),
    ("no_usage", MalformedResponse, "missing_usage"),
    ("invalid_tool_args", MalformedResponse, "invalid_tool_arguments"),
])
async def test_the_mock_faults_on_the_responses_route(stream: bool, fault: str,
                                                      error: type[Exception],
                                                      reason: str | None) -> None:
    config = MockConfig(faults=FaultRates(**{fault: 1.0}))
    with pytest.raises(error) as caught:
        await _complete(config, _request(stream))
    if reason is not None:
        assert isinstance(caught.value, MalformedResponse) and caught.value.reason == reason


@pytest.mark.asyncio
async def test_a_truncated_responses_stream_is_refused() -> None:
    config = MockConfig(faults=FaultRates(truncated_stream=1.0), tokens_per_chunk=1)
    with pytest.raises(MalformedResponse) as caught:
        await _complete(config, _request(True))
    assert caught.value.reason == "truncated_stream"


@pytest.mark.asyncio
async def test_a_stalled_responses_call_times_out() -> None:
    config = MockConfig(faults=FaultRates(stall=1.0), stall_s=60.0)
    with pytest.raises(CallTimeout) as caught:
        await _complete(config, _request(False),
                        timeouts=Timeouts(first_token=0.2, total=5.0))
    assert caught.value.phase == "first_token"


@pytest.mark.asyncio
async def test_the_responses_route_rate_limits_with_headers() -> None:
    async with open_mock_server(MockConfig(rpm_limit=1)) as server, \
            open_session() as session:
        client = EndpointClient("r", server.url, session, model="m", api="responses")
        await client.complete(_request(False))
        with pytest.raises(RateLimited) as caught:
            await client.complete(_request(False))
    assert caught.value.retry_after is not None and caught.value.retry_after > 0


@pytest.mark.asyncio
async def test_an_answer_cut_at_its_budget_is_a_length_answer() -> None:
    request = msgspec.structs.replace(_request(True), tools=None, tool_choice=None,
                                      max_tokens=2)
    with pytest.raises(MalformedResponse) as caught:
        await _complete(MockConfig(reply_tokens_min=40, reply_tokens_max=40), request)
    assert caught.value.reason == "length"


@pytest.mark.asyncio
async def test_a_tool_call_left_in_the_text_is_a_parse_failure() -> None:
    config = MockConfig(quirks=Quirks(tool_call_parse_failure="hermes"))
    with pytest.raises(ToolCallParseFailure) as caught:
        await _complete(config, _request(True))
    assert caught.value.kind == "markup_in_content"


# -- reasoning items through the agent ---------------------------------------------------------


class _Recording(PlausiblePolicy):
    def __init__(self) -> None:
        super().__init__(8, 16)
        self.requests: list[ChatRequest] = []

    def respond(self, request: ChatRequest, rng: Any) -> Message:
        self.requests.append(request)
        return super().respond(request, rng)


@pytest.mark.asyncio
async def test_the_agent_keeps_reasoning_items_and_sends_them_back(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[models.endpoints.mock]\napi = "responses"\n', encoding="utf-8")
    config = load_config(path)
    policy = _Recording()
    async with open_pool(config.models, mock_config=MockConfig(
            quirks=Quirks(reasoning="reasoning")), mock_policy=policy) as pool:
        agent = LLMAgent(pool, "agent", "sys", [TOOL], seed=1, tag="t")
        history: list[Any] = [UserMessage(content="hello")]
        first = (await agent.reply(history)).message
        assert isinstance(first, AssistantMessage)
        [item] = first.reasoning_items  # type: ignore[misc]
        assert item["encrypted_content"].startswith("writ-mock:")
        history.append(first)
        history.append(UserMessage(content="and then?"))
        await agent.reply(history)
    sent = [m for m in policy.requests[1].messages if m.role == "assistant"]
    assert sent[0].reasoning_items == [item]  # back in the input, verbatim


def test_a_message_without_reasoning_items_encodes_as_before() -> None:
    plain = AssistantMessage(content="Hi", turn_idx=2)
    assert b"reasoning_items" not in msgspec.msgpack.encode(plain)
    kept = AssistantMessage(content="Hi", reasoning_items=(REASONING_ITEM,))
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(kept), type=AssistantMessage) == kept


def test_the_chat_api_never_sends_reasoning_items() -> None:
    view = agent_view("sys", [AssistantMessage(content="Hi", reasoning_items=(REASONING_ITEM,))])
    assert view[1].reasoning_items == [REASONING_ITEM]
    request = ChatRequest(model="m", messages=view)
    # the chat client strips them before encoding (a role may fail over to chat)
    from writ_async.llm.client import _without_reasoning_items

    assert b"reasoning_items" not in encode_request(_without_reasoning_items(request))


# -- config and whole runs -------------------------------------------------------------------


def test_an_unknown_api_is_a_config_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[models.endpoints.mock]\napi = "completions"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "models.endpoints.mock.api" in str(caught.value)
    assert "chat" in str(caught.value) and "responses" in str(caught.value)


def _writ(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ_async", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=180)


def _simulations(run: Path) -> list[tuple[str, Any, Any]]:
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    return [(s["task_id"], s["messages"], s["reward_info"]["reward"])
            for s in results["simulations"]]


def test_a_responses_run_grades_and_replays_like_a_chat_run(tmp_path: Path) -> None:
    runs = {}
    for api, stream in (("chat", False), ("responses", False), ("responses", True)):
        config = tmp_path / f"{api}-{stream}.toml"
        config.write_text(f"""
[simulate]
agent = "scripted-http"
user = "scripted-http"
task_count = 6
[models.endpoints.mock]
api = "{api}"
stream = {str(stream).lower()}
""", encoding="utf-8")
        run = runs[api, stream] = tmp_path / f"{api}-{stream}"
        done = _writ("simulate", "--config", str(config), "--out", str(run))
        assert done.returncode == 0, done.stderr
    chat = _simulations(runs["chat", False])
    assert len(chat) == 6 and any(reward == 1.0 for _, _, reward in chat)
    for stream in (False, True):
        replayed = _writ("replay", str(runs["responses", stream]), "--all")
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        # the same messages, usage and rewards (a streamed chat answer's tool-only turn
        # has content "" where the plain one has null; a Responses answer has null both ways)
        assert _simulations(runs["responses", stream]) == chat
