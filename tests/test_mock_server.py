"""The mock OpenAI-compatible server, over real HTTP on loopback.

Every test talks to a live server through an aiohttp ClientSession and decodes what comes
back with the protocol's own decoders. No assertion depends on timing, except two lower
bounds (a paced stream cannot be faster than its time to first token).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import pytest
from conftest import require, tau2_dir

from writ_async.errors import ConfigError
from writ_async.llm.protocol import (
    ChatChunk,
    ChatCompletion,
    ChatRequest,
    FunctionCall,
    Message,
    ModelList,
    ToolCall,
    chunk_decoder,
    completion_decoder,
    error_decoder,
)
from writ_async.mock.config import FAULT_KINDS, FaultRates, MockConfig, resolve_api_key
from writ_async.mock.policies import (
    PlausiblePolicy,
    count_tokens,
    plausible_text,
    sample_arguments,
)
from writ_async.mock.ratelimit import format_duration
from writ_async.mock.server import MockServer, build_app, open_mock_server, serve_forever
from writ_async.mock.stats import MockStats, stats_decoder

# -- fixtures and helpers ------------------------------------------------------------------

BOOK = {
    "type": "function",
    "function": {
        "name": "book_trip",
        "description": "Book a trip.",
        "parameters": {
            "$defs": {
                "Leg": {
                    "type": "object",
                    "properties": {
                        "flight_number": {"type": "string"},
                        "date": {"type": "string", "description": "In YYYY-MM-DD format"},
                    },
                    "required": ["flight_number", "date"],
                },
                "Passenger": {
                    "type": "object",
                    "properties": {
                        "first_name": {"type": "string"},
                        "last_name": {"type": "string"},
                        "age": {"type": "integer", "minimum": 0, "maximum": 120},
                        "address": {"$ref": "#/$defs/Address"},
                    },
                    "required": ["first_name", "last_name", "address"],
                },
                "Address": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                    "required": ["city"],
                },
            },
            "type": "object",
            "properties": {
                "user_id": {"type": "string"},
                "cabin": {"type": "string", "enum": ["economy", "business"]},
                "legs": {
                    "type": "array",
                    "items": {"anyOf": [{"$ref": "#/$defs/Leg"},
                                        {"type": "object", "additionalProperties": True}]},
                },
                "passengers": {"type": "array", "items": {"$ref": "#/$defs/Passenger"},
                               "minItems": 1},
                "bags": {"type": "integer", "minimum": 0, "maximum": 5},
                "price": {"type": "number"},
                "insurance": {"type": "boolean"},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["user_id", "cabin", "legs", "passengers", "bags"],
        },
    },
}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "get_user",
        "description": "Look up a user.",
        "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                       "required": ["user_id"]},
    },
}
TOOLS = [BOOK, LOOKUP]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def conforms(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    """A small JSON-schema check: $ref, anyOf, enum, types, required, items, bounds."""
    if "$ref" in schema:
        return conforms(value, defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in schema:
        return any(conforms(value, s, defs) for s in schema["anyOf"])
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return False
        props = schema.get("properties", {})
        return all(r in value for r in schema.get("required", ())) and all(
            conforms(v, props[k], defs) for k, v in value.items() if k in props)
    if kind == "array":
        return (isinstance(value, list) and len(value) >= schema.get("minItems", 0)
                and all(conforms(v, schema.get("items", {}), defs) for v in value))
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)
                and schema.get("minimum", value) <= value <= schema.get("maximum", value))
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    return True


def check_tool_call(call: ToolCall, schemas: dict[str, dict[str, Any]] = SCHEMAS) -> None:
    schema = schemas[call.function.name]
    arguments = json.loads(call.function.arguments)
    assert conforms(arguments, schema, schema.get("$defs", {})), arguments


def chat_body(content: str = "Hello, I need to change my flight.", **extra: Any) -> dict[str, Any]:
    return {"model": "mock", "messages": [{"role": "user", "content": content}], **extra}


@asynccontextmanager
async def serving(config: MockConfig | None = None, policy: Any = None,
                  **kw: Any) -> AsyncIterator[tuple[MockServer, aiohttp.ClientSession]]:
    async with open_mock_server(config or MockConfig(), policy, **kw) as server, \
            aiohttp.ClientSession() as session:
        yield server, session


async def post(session: aiohttp.ClientSession, server: MockServer, body: Any,
               **kw: Any) -> tuple[aiohttp.ClientResponse, bytes]:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    async with session.post(f"{server.url}/chat/completions", data=data, **kw) as resp:
        return resp, await resp.read()


async def complete(session: aiohttp.ClientSession, server: MockServer,
                   **extra: Any) -> ChatCompletion:
    resp, raw = await post(session, server, chat_body(**extra))
    assert resp.status == 200, raw
    assert resp.content_type == "application/json"
    return completion_decoder.decode(raw)


def sse_payloads(raw: bytes) -> tuple[list[bytes], bool]:
    """The data payloads of an SSE body, and whether it ended with [DONE]."""
    payloads: list[bytes] = []
    done = False
    for event in raw.split(b"\n\n"):
        if not event.strip():
            continue
        assert event.startswith(b"data: "), event
        assert not done, "nothing may follow [DONE]"
        data = event[len(b"data: "):]
        if data == b"[DONE]":
            done = True
        else:
            payloads.append(data)
    return payloads, done


async def stream(session: aiohttp.ClientSession, server: MockServer,
                 **extra: Any) -> tuple[list[ChatChunk], bool]:
    resp, raw = await post(session, server, chat_body(stream=True, **extra))
    assert resp.status == 200, raw
    assert resp.content_type == "text/event-stream"
    payloads, done = sse_payloads(raw)
    return [chunk_decoder.decode(p) for p in payloads], done


def assemble(chunks: list[ChatChunk]) -> tuple[str, list[ToolCall], str | None]:
    """Content, tool calls and finish reason put back together from stream chunks."""
    content: list[str] = []
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                content.append(delta.content)
            for tc in delta.tool_calls or ():
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = tc.id or slot["id"]
                if tc.function is not None:
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    tool_calls = [ToolCall(id=c["id"], function=FunctionCall(c["name"], c["arguments"]))
                  for _, c in sorted(calls.items())]
    return "".join(content), tool_calls, finish


async def get_stats(session: aiohttp.ClientSession, server: MockServer,
                    path: str = "/stats") -> MockStats:
    async with session.get(server.base_url + path) as resp:
        assert resp.status == 200
        return stats_decoder.decode(await resp.read())


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait (up to a few seconds) for something the server does in the background."""
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never became true")


def faulty(**rates: float) -> MockConfig:
    return MockConfig(faults=FaultRates(**rates))


# -- routes --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_health_models_and_stats_routes() -> None:
    async with serving() as (server, session):
        assert server.url == f"http://127.0.0.1:{server.port}/v1"
        async with session.get(server.base_url + "/health") as resp:
            assert resp.status == 200
            assert await resp.read() == b""
        async with session.get(server.url + "/models") as resp:
            assert resp.status == 200
            models = msgspec.json.decode(await resp.read(), type=ModelList)
        assert [m.id for m in models.data] == ["mock"]
        await complete(session, server)
        stats = await get_stats(session, server)
        assert stats == await get_stats(session, server, "/metrics")
        assert stats == server.stats()
        assert stats.requests == 1 and stats.completions == 1 and stats.in_flight == 0
        assert stats.statuses == {200: 1}
        assert stats.latency.count == 1
        assert 0 < stats.latency.p50_ms <= stats.latency.p99_ms <= stats.latency.max_ms
        assert stats.latency.mean_ms > 0
        async with session.post(server.base_url + "/stats/reset") as resp:
            assert resp.status == 200
            assert stats_decoder.decode(await resp.read()) == MockStats(
                faults=dict.fromkeys(FAULT_KINDS, 0))
        assert server.stats().requests == 0
        assert "requests=0" in repr(server)


@pytest.mark.asyncio
async def test_models_allow_list_and_unknown_model_404() -> None:
    async with serving(MockConfig(models=["alpha", "beta"])) as (server, session):
        async with session.get(server.url + "/models") as resp:
            models = msgspec.json.decode(await resp.read(), type=ModelList)
        assert [m.id for m in models.data] == ["alpha", "beta"]
        resp, raw = await post(session, server, {**chat_body(), "model": "gamma"})
        assert resp.status == 404
        assert error_decoder.decode(raw).error.code == "model_not_found"
        resp, raw = await post(session, server, {**chat_body(), "model": "beta"})
        assert resp.status == 200
        assert server.stats().faults["model_not_found"] == 1


# -- answers -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_non_streaming_text_answer_and_usage() -> None:
    config = MockConfig(reply_tokens_min=20, reply_tokens_max=30)
    async with serving(config) as (server, session):
        completion = await complete(session, server)
        (choice,) = completion.choices
        assert choice.finish_reason == "stop"
        assert choice.message.role == "assistant"
        assert choice.message.content and not choice.message.tool_calls
        usage = completion.usage
        assert usage is not None
        assert usage.prompt_tokens == count_tokens(len("Hello, I need to change my flight."))
        assert usage.completion_tokens == count_tokens(len(choice.message.content))
        assert 15 <= usage.completion_tokens <= 35
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        assert completion.model == "mock" and completion.id.startswith("chatcmpl-")


@pytest.mark.asyncio
async def test_non_streaming_tool_call_matches_offered_schema() -> None:
    async with serving(MockConfig(seed=3)) as (server, session):
        for _ in range(10):
            completion = await complete(session, server, tools=TOOLS)
            (choice,) = completion.choices
            assert choice.finish_reason == "tool_calls"
            (call,) = choice.message.tool_calls or []
            assert call.type == "function" and call.id.startswith("call_")
            check_tool_call(call)


@pytest.mark.asyncio
async def test_after_a_tool_result_the_answer_is_text() -> None:
    call = {"id": "call_1", "type": "function",
            "function": {"name": "get_user", "arguments": '{"user_id": "mia_1"}'}}
    messages = [{"role": "user", "content": "Find me."},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "call_1", "content": '{"name": "Mia"}'}]
    async with serving() as (server, session):
        _, raw = await post(session, server, {"model": "m", "messages": messages, "tools": TOOLS})
        (choice,) = completion_decoder.decode(raw).choices
        assert choice.finish_reason == "stop" and choice.message.content


@pytest.mark.asyncio
async def test_streaming_text_with_usage_chunk() -> None:
    async with serving(MockConfig(reply_tokens_min=30, reply_tokens_max=40)) as (server, session):
        chunks, done = await stream(session, server, stream_options={"include_usage": True})
        assert done
        assert chunks[0].choices[0].delta.role == "assistant"
        content, calls, finish = assemble(chunks)
        assert finish == "stop" and not calls
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
        *_, last = chunks
        assert last.choices == [] and last.usage is not None
        assert all(c.usage is None for c in chunks[:-1])
        assert last.usage.completion_tokens == count_tokens(len(content))
        stats = server.stats()
        assert stats.streamed == 1
        assert (stats.prompt_tokens, stats.completion_tokens) == (
            last.usage.prompt_tokens, last.usage.completion_tokens)


@pytest.mark.asyncio
async def test_streaming_without_include_usage_has_no_usage_chunk() -> None:
    async with serving() as (server, session):
        chunks, done = await stream(session, server)
        assert done
        assert all(c.usage is None and c.choices for c in chunks)


@pytest.mark.asyncio
async def test_streaming_tool_call_reassembles_to_valid_arguments() -> None:
    async with serving(MockConfig(seed=11)) as (server, session):
        for _ in range(5):
            chunks, done = await stream(session, server, tools=TOOLS,
                                        stream_options={"include_usage": True})
            assert done
            content, calls, finish = assemble(chunks)
            assert finish == "tool_calls" and content == ""
            (call,) = calls
            check_tool_call(call)
            assert len(chunks) > 3  # the arguments arrive in pieces


@pytest.mark.asyncio
async def test_usage_in_responses_equals_stats() -> None:
    prompt = completion = 0
    async with serving(MockConfig(seed=5)) as (server, session):
        for i in range(12):
            extra: dict[str, Any] = {"tools": TOOLS} if i % 3 == 0 else {}
            if i % 2:
                chunks, _ = await stream(session, server, stream_options={"include_usage": True},
                                         **extra)
                usage = chunks[-1].usage
            else:
                usage = (await complete(session, server, **extra)).usage
            assert usage is not None
            prompt += usage.prompt_tokens
            completion += usage.completion_tokens
        stats = await get_stats(session, server)
    assert (stats.prompt_tokens, stats.completion_tokens) == (prompt, completion)
    assert stats.requests == stats.completions == 12 and stats.streamed == 6


@pytest.mark.asyncio
async def test_max_tokens_cuts_the_text_with_finish_length() -> None:
    async with serving(MockConfig(reply_tokens_min=40, reply_tokens_max=40)) as (server, session):
        completion = await complete(session, server, max_tokens=5)
        (choice,) = completion.choices
        assert choice.finish_reason == "length"
        assert completion.usage is not None and completion.usage.completion_tokens == 5


@pytest.mark.asyncio
async def test_injected_policy_answers_and_finish_reason_is_derived() -> None:
    class Scripted:
        def __init__(self) -> None:
            self.seen: list[ChatRequest] = []

        def respond(self, request: ChatRequest, rng: random.Random) -> Message:
            self.seen.append(request)
            if len(self.seen) == 1:
                call = ToolCall(id="call_x", function=FunctionCall("get_user", '{"user_id":"a"}'))
                return Message(role="assistant", content="Let me check.", tool_calls=[call])
            return Message(role="assistant", content="Done ###STOP###")

    policy = Scripted()
    async with serving(policy=policy) as (server, session):
        first = await complete(session, server, tools=TOOLS)
        second, done = await stream(session, server)
    assert first.choices[0].finish_reason == "tool_calls"
    assert first.choices[0].message.tool_calls == [
        ToolCall(id="call_x", function=FunctionCall("get_user", '{"user_id":"a"}'))]
    assert assemble(second)[0] == "Done ###STOP###" and assemble(second)[2] == "stop" and done
    first_words = chat_body()["messages"][0]["content"]
    assert [r.messages[0].content for r in policy.seen] == [first_words, first_words]


# -- permanent errors ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_undecodable_bodies_are_refused() -> None:
    async with serving() as (server, session):
        resp, raw = await post(session, server, b"{not json")
        assert resp.status == 400
        assert error_decoder.decode(raw).error.type == "invalid_request_error"
        resp, raw = await post(session, server, {"model": "m", "messages": "hello"})
        assert resp.status == 422
        error_decoder.decode(raw)
        resp, raw = await post(session, server, {"model": "m", "messages": []})
        assert resp.status == 400
        stats = server.stats()
        assert stats.faults["bad_request"] == 3 and stats.statuses == {400: 2, 422: 1}
        assert stats.completions == 0


@pytest.mark.asyncio
async def test_context_length_exceeded() -> None:
    async with serving(MockConfig(max_context_tokens=10)) as (server, session):
        resp, raw = await post(session, server, chat_body("x" * 41))
        assert resp.status == 400
        error = error_decoder.decode(raw).error
        assert error.code == "context_length_exceeded" and "10 tokens" in error.message
        resp, _ = await post(session, server, chat_body("x" * 40))
        assert resp.status == 200
        assert server.stats().faults["context_length"] == 1


@pytest.mark.asyncio
async def test_api_key_is_required_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRIT_TEST_MOCK_KEY", "sk-test-123")
    config = MockConfig(api_key_env="WRIT_TEST_MOCK_KEY")
    assert resolve_api_key(config) == "sk-test-123"
    async with serving(config) as (server, session):
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
            resp, raw = await post(session, server, chat_body(), headers=headers)
            assert resp.status == 401
            assert error_decoder.decode(raw).error.code == "invalid_api_key"
        async with session.get(server.url + "/models") as resp:
            assert resp.status == 401
        good = {"Authorization": "Bearer sk-test-123"}
        resp, _ = await post(session, server, chat_body(), headers=good)
        assert resp.status == 200
        async with session.get(server.url + "/models", headers=good) as resp:
            assert resp.status == 200
        assert server.stats().faults["unauthorized"] == 3


def test_api_key_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WRIT_TEST_MOCK_KEY", raising=False)
    with pytest.raises(ConfigError, match="WRIT_TEST_MOCK_KEY"):
        build_app(MockConfig(api_key_env="WRIT_TEST_MOCK_KEY"))


# -- rate limits ---------------------------------------------------------------------------

RATE_HEADERS = [f"x-ratelimit-{k}-{w}" for w in ("requests", "tokens")
                for k in ("limit", "remaining", "reset")]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_request_limit_answers_429_with_headers_and_refills() -> None:
    clock = FakeClock()
    config = MockConfig(rpm_limit=2, tpm_limit=10_000)
    async with serving(config, clock=clock) as (server, session):
        remaining = []
        for _ in range(2):
            resp, _ = await post(session, server, chat_body())
            assert resp.status == 200
            assert all(h in resp.headers for h in RATE_HEADERS)
            remaining.append(resp.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["1", "0"]
        resp, raw = await post(session, server, chat_body())
        assert resp.status == 429
        assert all(h in resp.headers for h in RATE_HEADERS)
        assert resp.headers["x-ratelimit-limit-requests"] == "2"
        assert resp.headers["x-ratelimit-remaining-requests"] == "0"
        assert resp.headers["x-ratelimit-reset-requests"] == "1m0s"
        assert resp.headers["retry-after"] == "30"  # one request refills in 60 s / 2
        assert resp.headers["retry-after-ms"] == "30000"
        error = error_decoder.decode(raw).error
        assert (error.type, error.code) == ("rate_limit_error", "rate_limit_exceeded")
        clock.now += 30.0
        resp, _ = await post(session, server, chat_body())
        assert resp.status == 200
        stats = server.stats()
        assert stats.rate_limited == 1 and stats.statuses == {200: 3, 429: 1}


@pytest.mark.asyncio
async def test_token_limit_counts_prompt_and_max_tokens() -> None:
    clock = FakeClock()
    config = MockConfig(tpm_limit=100, rate_window_s=1.0)
    async with serving(config, clock=clock) as (server, session):
        resp, _ = await post(session, server, chat_body("x" * 200))  # 50 tokens
        assert resp.status == 200
        assert resp.headers["x-ratelimit-remaining-tokens"] == "50"
        assert resp.headers["x-ratelimit-reset-tokens"] == "500ms"
        assert "x-ratelimit-limit-requests" not in resp.headers
        resp, _ = await post(session, server, chat_body("hi", max_tokens=40))  # 40 tokens
        assert resp.status == 200
        assert resp.headers["x-ratelimit-remaining-tokens"] == "10"
        resp, raw = await post(session, server, chat_body("x" * 200))
        assert resp.status == 429
        assert resp.headers["retry-after-ms"] == "400"  # 40 tokens short at 100/s
        assert resp.headers["retry-after"] == "1"
        assert "tokens" in error_decoder.decode(raw).error.message
        resp, raw = await post(session, server, chat_body("x" * 800))  # never fits
        assert resp.status == 429
        assert "too large" in error_decoder.decode(raw).error.message
        clock.now += 0.4
        resp, _ = await post(session, server, chat_body("x" * 200))
        assert resp.status == 200


@pytest.mark.asyncio
async def test_rate_limit_window_refills_in_real_time() -> None:
    config = MockConfig(rpm_limit=1, rate_window_s=0.1)
    async with serving(config) as (server, session):
        statuses: list[int] = []
        while (429 not in statuses or statuses[-1] != 200) and len(statuses) < 100:
            resp, _ = await post(session, server, chat_body())
            statuses.append(resp.status)
            if resp.status == 429:
                await asyncio.sleep(int(resp.headers["retry-after-ms"]) / 1000)
        assert statuses[0] == 200 and 429 in statuses and statuses[-1] == 200


def test_durations_are_written_as_openai_does() -> None:
    assert format_duration(0) == "0s"
    assert format_duration(0.02) == "20ms"
    assert format_duration(0.0201) == "21ms"
    assert format_duration(1) == "1s"
    assert format_duration(8.64) == "8.64s"
    assert format_duration(360) == "6m0s"
    assert format_duration(90.5) == "1m30.5s"
    assert format_duration(3723) == "1h2m3s"


# -- faults --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_fault_5xx() -> None:
    async with serving(faulty(error_5xx=1.0)) as (server, session):
        seen = set()
        for _ in range(12):
            resp, raw = await post(session, server, chat_body())
            seen.add(resp.status)
            assert error_decoder.decode(raw).error.type == "server_error"
        assert seen <= {500, 502, 503} and len(seen) > 1
        assert server.stats().faults["error_5xx"] == 12
        assert server.stats().completions == 0


@pytest.mark.asyncio
async def test_fault_reset_drops_the_connection() -> None:
    async with serving(faulty(reset=1.0)) as (server, session):
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(session, server, chat_body())
        with pytest.raises((aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
            await post(session, server, chat_body(stream=True))
        stats = server.stats()
        assert stats.faults["reset"] == 2 and stats.statuses == {} and stats.in_flight == 0


@pytest.mark.asyncio
async def test_fault_stall_times_the_client_out_and_is_cancelled() -> None:
    async with serving(faulty(stall=1.0)) as (server, session):
        with pytest.raises(asyncio.TimeoutError):
            await post(session, server, chat_body(), timeout=aiohttp.ClientTimeout(total=0.2))
        assert server.stats().faults["stall"] == 1
        await eventually(lambda: server.stats().in_flight == 0)  # the handler was cancelled


@pytest.mark.asyncio
async def test_fault_truncated_stream() -> None:
    async with serving(faulty(truncated_stream=1.0)) as (server, session):
        chunks, done = await stream(session, server, tools=TOOLS,
                                    stream_options={"include_usage": True})
        assert not done
        _, calls, finish = assemble(chunks)
        assert finish is None and all(c.usage is None for c in chunks)
        with pytest.raises(json.JSONDecodeError):
            json.loads(calls[0].function.arguments)  # cut off mid-arguments
        completion = await complete(session, server)  # not a stream: unaffected
        assert completion.choices[0].finish_reason == "stop"
        assert server.stats().faults["truncated_stream"] == 1


@pytest.mark.asyncio
async def test_fault_malformed_json() -> None:
    async with serving(faulty(malformed_json=1.0)) as (server, session):
        kinds = set()
        for _ in range(8):
            resp, raw = await post(session, server, chat_body())
            assert resp.status == 200
            kinds.add(resp.content_type)
            with pytest.raises(msgspec.DecodeError):
                completion_decoder.decode(raw)
        assert kinds == {"application/json", "text/html"}
        resp, raw = await post(session, server, chat_body(stream=True))
        payloads, _ = sse_payloads(raw)
        with pytest.raises(msgspec.DecodeError):
            for payload in payloads:
                chunk_decoder.decode(payload)
        assert server.stats().faults["malformed_json"] == 9


@pytest.mark.asyncio
async def test_fault_error_object_with_200() -> None:
    async with serving(faulty(error_object_200=1.0)) as (server, session):
        resp, raw = await post(session, server, chat_body())
        assert resp.status == 200
        assert error_decoder.decode(raw).error.message
        with pytest.raises(msgspec.ValidationError):
            completion_decoder.decode(raw)
        resp, raw = await post(session, server, chat_body(stream=True))
        assert resp.status == 200
        payloads, _ = sse_payloads(raw)
        assert error_decoder.decode(payloads[0]).error.type == "server_error"
        assert server.stats().faults["error_object_200"] == 2


@pytest.mark.asyncio
async def test_fault_invalid_tool_arguments() -> None:
    async with serving(faulty(invalid_tool_args=1.0)) as (server, session):
        for _ in range(4):
            completion = await complete(session, server, tools=TOOLS)
            (call,) = completion.choices[0].message.tool_calls or []
            with pytest.raises(json.JSONDecodeError):
                json.loads(call.function.arguments)
        _, calls, _ = assemble((await stream(session, server, tools=TOOLS))[0])
        with pytest.raises(json.JSONDecodeError):
            json.loads(calls[0].function.arguments)
        await complete(session, server)  # text: nothing to corrupt, not counted
        assert server.stats().faults["invalid_tool_args"] == 5


@pytest.mark.asyncio
async def test_fault_no_usage() -> None:
    async with serving(faulty(no_usage=1.0)) as (server, session):
        resp, raw = await post(session, server, chat_body())
        assert resp.status == 200
        assert "usage" not in msgspec.json.decode(raw)
        assert completion_decoder.decode(raw).usage is None
        chunks, done = await stream(session, server, stream_options={"include_usage": True})
        assert done and all(c.usage is None and c.choices for c in chunks)
        stats = server.stats()
        assert stats.faults["no_usage"] == 2 and stats.completion_tokens > 0


@pytest.mark.asyncio
async def test_fault_rates_between_zero_and_one_mix_outcomes() -> None:
    async with serving(MockConfig(seed=2, faults=FaultRates(error_5xx=0.5))) as (server, session):
        statuses = [(await post(session, server, chat_body()))[0].status for _ in range(40)]
    assert 200 in statuses and any(s >= 500 for s in statuses)


# -- determinism ---------------------------------------------------------------------------


async def _transcript(config: MockConfig) -> list[Any]:
    out: list[Any] = []
    async with serving(config) as (server, session):
        for i in range(8):
            extra: dict[str, Any] = {"tools": TOOLS} if i % 2 else {}
            if i % 3 == 0:
                chunks, done = await stream(session, server, **extra,
                                            stream_options={"include_usage": True})
                out.append((assemble(chunks), done, [c.usage for c in chunks]))
            else:
                completion = await complete(session, server, **extra)
                out.append((completion.choices, completion.usage))
        out.append(server.stats().faults)
    return out


@pytest.mark.asyncio
async def test_same_seed_same_answers_and_faults() -> None:
    faults = FaultRates(no_usage=0.5, invalid_tool_args=0.5, truncated_stream=0.5)
    first = await _transcript(MockConfig(seed=42, faults=faults, jitter_ms=0.01))
    again = await _transcript(MockConfig(seed=42, faults=faults, jitter_ms=0.01))
    other = await _transcript(MockConfig(seed=43, faults=faults, jitter_ms=0.01))
    assert first == again
    assert first != other


@pytest.mark.asyncio
async def test_request_seed_fixes_the_answer_whatever_came_before() -> None:
    async with serving(MockConfig(seed=1)) as (server, session):
        a = await complete(session, server, seed=7, tools=TOOLS)
        await complete(session, server)
        await complete(session, server)
        b = await complete(session, server, seed=7, tools=TOOLS)
    assert a.choices == b.choices


# -- latency -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_zero_latency_never_sleeps_and_latency_paces(
        monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def recording_sleep(delay: float, *args: Any) -> Any:
        delays.append(delay)
        return await real_sleep(delay, *args)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    async with serving() as (server, session):
        delays.clear()
        await complete(session, server)
        await stream(session, server, tools=TOOLS)
        assert delays == []
    config = MockConfig(ttft_ms=30, tpot_ms=1, jitter_ms=0.5)
    async with serving(config) as (server, session):
        delays.clear()
        started = time.perf_counter()
        _, done = await stream(session, server)
        assert time.perf_counter() - started >= 0.025  # coarse: at least about the TTFT
        assert done and len(delays) > 2
        started = time.perf_counter()
        await complete(session, server)
        assert time.perf_counter() - started >= 0.025


# -- concurrency and shutdown --------------------------------------------------------------


@pytest.mark.asyncio
async def test_many_concurrent_requests() -> None:
    async with serving(MockConfig(ttft_ms=2, tpot_ms=0.1)) as (server, session):
        results = await asyncio.gather(*(
            complete(session, server) if i % 2 else stream(session, server)
            for i in range(60)))
        assert len(results) == 60
        stats = server.stats()
        assert stats.requests == 60 and stats.in_flight == 0 and stats.statuses == {200: 60}


@pytest.mark.asyncio
async def test_shutdown_with_requests_in_flight_leaves_no_tasks() -> None:
    before = asyncio.all_tasks()
    config = MockConfig(faults=FaultRates(stall=1.0), stall_s=60.0)
    async with aiohttp.ClientSession() as session:
        async with open_mock_server(config) as server:
            pending = [asyncio.ensure_future(post(session, server, chat_body()))
                       for _ in range(3)]
            await eventually(lambda: server.stats().in_flight == 3)
            server.reset_stats()  # zeroes the counts, not what is still running
            assert (server.stats().requests, server.stats().in_flight) == (0, 3)
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, aiohttp.ClientError) for r in results), results
        assert server.stats().in_flight == 0
    assert asyncio.all_tasks() == before


@pytest.mark.asyncio
async def test_serve_forever_until_cancelled() -> None:
    before = asyncio.all_tasks()
    ready: asyncio.Future[MockServer] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(serve_forever(MockConfig(), on_ready=ready.set_result))
    server = await ready
    async with aiohttp.ClientSession() as session:
        await complete(session, server)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.all_tasks() == before


# -- configuration and policy (no I/O) ----------------------------------------------------


def test_config_refuses_unknown_keys_and_bad_values() -> None:
    with pytest.raises(msgspec.ValidationError, match="bogus"):
        msgspec.convert({"bogus": 1}, MockConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"faults": {"reset": 1.5}}, MockConfig)
    with pytest.raises(msgspec.ValidationError, match="oops"):
        msgspec.convert({"faults": {"oops": 0.1}}, MockConfig)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"reply_tokens_min": 9, "reply_tokens_max": 8}, MockConfig)
    config = msgspec.convert({"port": 8000, "ttft_ms": 5, "faults": {"stall": 0.1}}, MockConfig)
    assert config.faults.stall == 0.1 and config.host == "127.0.0.1"


def test_sampled_arguments_follow_the_schema_deterministically() -> None:
    schema = SCHEMAS["book_trip"]
    values = [sample_arguments(schema, random.Random(seed)) for seed in range(50)]
    assert all(conforms(v, schema, schema["$defs"]) for v in values)
    assert values == [sample_arguments(schema, random.Random(seed)) for seed in range(50)]
    assert len({json.dumps(v, sort_keys=True) for v in values}) > 40


def test_sampled_arguments_for_every_tau2_tool() -> None:
    tools_seen = 0
    for domain in ("airline", "retail"):
        path = require(tau2_dir() / domain / "tools.json", "tau2-bench tool schemas")
        for tool in json.loads(path.read_text()):
            parameters = tool["function"]["parameters"]
            for seed in range(5):
                value = sample_arguments(parameters, random.Random(seed))
                assert conforms(value, parameters, parameters.get("$defs", {}))
            tools_seen += 1
    assert tools_seen > 10


def test_policy_follows_tool_choice() -> None:
    policy = PlausiblePolicy()
    rng = random.Random(0)

    def request(**kw: Any) -> ChatRequest:
        return msgspec.convert(chat_body(**kw), ChatRequest)

    named = policy.respond(request(tools=TOOLS, tool_choice={
        "type": "function", "function": {"name": "get_user"}}), rng)
    assert named.tool_calls and named.tool_calls[0].function.name == "get_user"
    assert policy.respond(request(tools=TOOLS, tool_choice="none"), rng).content
    assert policy.respond(request(), rng).content
    forced = msgspec.convert({"model": "m", "tools": TOOLS, "tool_choice": "required",
                              "messages": [{"role": "tool", "content": "{}",
                                            "tool_call_id": "c"}]}, ChatRequest)
    assert policy.respond(forced, rng).tool_calls
    with pytest.raises(ValueError):
        PlausiblePolicy(min_tokens=5, max_tokens=4)


def test_plausible_text_length_tracks_tokens() -> None:
    rng = random.Random(9)
    for tokens in (1, 5, 40, 400):
        text = plausible_text(rng, tokens)
        assert text[0].isupper() and text.endswith((".", "?", "!"))
        assert abs(count_tokens(len(text)) - tokens) <= max(4, tokens // 10)


def test_shape_policy_gives_a_fixed_conversation_shape() -> None:
    from writ_async.llm.protocol import ChatRequest, FunctionCall, Message
    from writ_async.mock.policies import ShapePolicy

    tools = [{"type": "function", "function": {"name": "calculate", "parameters": {
        "type": "object", "properties": {"expression": {"type": "string"}}}}}]
    policy = ShapePolicy(tool_calls=2, user_turns=2)
    rng = random.Random(0)
    history = [Message(role="assistant", content="Hi"), Message(role="user", content="help")]
    shapes = []
    for _ in range(3):
        reply = policy.respond(ChatRequest(model="m", messages=history, tools=tools), rng)
        shapes.append("tool" if reply.tool_calls else "text")
        history.append(reply)
        if reply.tool_calls:
            call = reply.tool_calls[0]
            assert call.function == FunctionCall(name="calculate",
                                                 arguments='{"expression": "2 + 2"}')
            history.append(Message(role="tool", content="4.0", tool_call_id=call.id))
    assert shapes == ["tool", "tool", "text"]
    user_view = [Message(role="user", content="Hi")]
    first = policy.respond(ChatRequest(model="m", messages=user_view), rng)
    assert "###STOP###" not in first.content
    user_view += [first, Message(role="user", content="ok")]
    assert "###STOP###" in policy.respond(ChatRequest(model="m", messages=user_view), rng).content
