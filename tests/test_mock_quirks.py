"""The mock with a real server's quirks (mock_quirks.py), and the engine surviving them.

Each quirk was captured raw from llama-cpp-python's server serving Gemma 3 270M
(benchmarks/bench_real_server.py). Every test runs the real aiohttp mock on loopback and
checks both what goes over the wire (so the quirk is really there) and what the client,
the pool and the participants make of it.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import msgspec
import pytest
from planning import open_replay, plan_of

from writ_async.config import EndpointConfig, ModelsConfig, RetryConfig, default_config
from writ_async.conversation.episode import Termination
from writ_async.conversation.messages import AssistantMessage, UserMessage
from writ_async.engine.journal import ModelCalled, read_journal
from writ_async.engine.replay.verify import verify_all
from writ_async.engine.simulate import simulate
from writ_async.errors import (
    ContextLengthExceeded,
    MalformedResponse,
    RetriesExhausted,
    TransientError,
)
from writ_async.llm.client import CallResult, EndpointClient, open_session
from writ_async.llm.protocol import (
    ChatRequest,
    FunctionCall,
    Message,
    StreamOptions,
    ToolCall,
)
from writ_async.llm.retry import classify_status
from writ_async.llm.setup import open_pool
from writ_async.mock.config import LLAMA_CPP_PYTHON, MockConfig, Quirks
from writ_async.mock.server import MockServer, open_mock_server
from writ_async.participants.llm import LLMAgent, LLMUser, ParticipantError

TOOLS = [{"type": "function", "function": {
    "name": "get_user_details", "description": "Look a user up.",
    "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                   "required": ["user_id"]}}}]
ARGUMENTS = json.dumps({"user_id": "mia_li_3668", "note": "x" * 80})


class Fixed:
    """A policy that always gives the same message."""

    def __init__(self, message: Message) -> None:
        self.message = message

    def respond(self, request: ChatRequest, rng: random.Random) -> Message:
        return self.message


TEXT = Fixed(Message(role="assistant", content="I can help with that reservation today."))
CALL = Fixed(Message(role="assistant", tool_calls=[ToolCall(
    id="call__0_get_user_details_cmpl-1", function=FunctionCall("get_user_details",
                                                               ARGUMENTS))]))


def request(*, stream: bool = False, tools: bool = False, max_tokens: int | None = None,
            text: str = "Hello there") -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="user", content=text)], stream=stream,
                       tools=TOOLS if tools else None, max_tokens=max_tokens,
                       stream_options=StreamOptions() if stream else None)


@asynccontextmanager
async def serving(quirks: Quirks, policy: object = TEXT, **config: object,
                  ) -> AsyncIterator[tuple[MockServer, aiohttp.ClientSession]]:
    async with open_mock_server(MockConfig(quirks=quirks, **config), policy) as server, \
            open_session(16) as session:  # type: ignore[arg-type]
        yield server, session


async def raw_post(session: aiohttp.ClientSession, url: str, body: bytes,
                   ) -> tuple[int, str, bytes]:
    async with session.post(url + "/chat/completions", data=body,
                            headers={"Content-Type": "application/json"}) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


def encoded(chat: ChatRequest) -> bytes:
    return msgspec.json.encode(chat)


# -- usage -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_streams_without_usage_fail_only_where_usage_is_required() -> None:
    async with serving(Quirks(no_stream_usage=True)) as (server, session):
        status, _, body = await raw_post(session, server.url, encoded(request(stream=True)))
        assert status == 200 and b'"usage":{' not in body  # include_usage was asked for
        strict = EndpointClient("e", server.url, session)
        with pytest.raises(MalformedResponse) as info:
            await strict.complete(request(stream=True))
        assert info.value.reason == "missing_usage"
        plain = await strict.complete(request())
        assert plain.usage.completion_tokens > 0  # plain calls still report usage
        lenient = EndpointClient("e", server.url, session, require_usage=False)
        streamed = await lenient.complete(request(stream=True))
        assert streamed.completion.choices[0].message == plain.completion.choices[0].message
        assert streamed.usage.total_tokens == 0


# -- stream framing ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_llama_stream_framing_assembles_to_the_plain_answer() -> None:
    quirks = Quirks(llama_stream_chunks=True, ping_before_first_token=True,
                    legacy_function_call=True)
    for policy in (TEXT, CALL):
        async with serving(quirks, policy, tokens_per_chunk=2) as (server, session):
            _, content_type, wire = await raw_post(
                session, server.url, encoded(request(stream=True, tools=True)))
            assert content_type.startswith("text/event-stream")
            assert b"\n: ping - " in wire  # a keep-alive comment before the first token
            assert b'"content": null' not in wire and b'"content":null' in wire
            client = EndpointClient("e", server.url, session)
            plain = await client.complete(request(tools=True))
            streamed = await EndpointClient("e", server.url, session,
                                            require_usage=False).complete(
                request(stream=True, tools=True))
        got, want = streamed.completion.choices[0], plain.completion.choices[0]
        assert got.message == want.message and got.finish_reason == want.finish_reason
        if policy is CALL:
            # every piece repeated the id and the name: kept once, not concatenated
            assert wire.count(b'"name":"get_user_details"') > 2
            call = got.message.tool_calls[0]  # type: ignore[index]
            assert call.id == "call__0_get_user_details_cmpl-1"
            assert call.function.arguments == ARGUMENTS


@pytest.mark.asyncio
async def test_llama_framing_alone_still_reports_usage_when_asked() -> None:
    async with serving(Quirks(llama_stream_chunks=True)) as (server, session):
        client = EndpointClient("e", server.url, session)
        streamed = await client.complete(request(stream=True))
        plain = await client.complete(request())
        _, _, wire = await raw_post(session, server.url, msgspec.json.encode(
            msgspec.structs.replace(request(stream=True), stream_options=None)))
    assert streamed.usage == plain.usage and streamed.usage.total_tokens > 0
    assert b'"usage":{' not in wire  # not asked for: not sent


@pytest.mark.asyncio
async def test_a_plain_answer_with_the_legacy_function_call_field_decodes() -> None:
    async with serving(Quirks(legacy_function_call=True), CALL) as (server, session):
        _, _, wire = await raw_post(session, server.url, encoded(request(tools=True)))
        assert b'"function_call":{"name":"get_user_details"' in wire
        result = await EndpointClient("e", server.url, session).complete(request(tools=True))
    assert result.completion.choices[0].message.tool_calls[0].function.arguments == ARGUMENTS


# -- interrupted streams -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_stream_cut_with_done_is_interrupted_not_a_short_answer() -> None:
    async with serving(Quirks(interrupt_streams="always")) as (server, session):
        wire = b""
        with pytest.raises(aiohttp.ClientPayloadError):  # no terminating chunk, as llama
            async with session.post(server.url + "/chat/completions",
                                    data=encoded(request(stream=True))) as resp:
                async for data in resp.content.iter_any():
                    wire += data
        assert wire.endswith(b"data: [DONE]\n\n") and b"finish_reason\":\"stop" not in wire
        with pytest.raises(MalformedResponse) as info:
            await EndpointClient("e", server.url, session).complete(request(stream=True))
    assert info.value.reason == "interrupted_stream"


@pytest.mark.asyncio
async def test_a_stream_is_interrupted_only_while_another_request_waits() -> None:
    quirks = Quirks(interrupt_streams="when_waiting")
    async with serving(quirks) as (server, session):
        client = EndpointClient("e", server.url, session, require_usage=False)
        alone = await client.complete(request(stream=True))
        assert alone.completion.choices[0].finish_reason == "stop"
        # The other request waits for as long as the test holds back the rest of its body
        # (the server counts it in flight from its headers on), so the stream meets it
        # whatever the machine's speed: no latency window to hit.
        body = encoded(request())
        release = asyncio.Event()

        async def held_body() -> AsyncIterator[bytes]:
            yield body[:8]
            await release.wait()
            yield body[8:]

        async def waiting_request() -> tuple[int, bytes]:
            async with session.post(server.url + "/chat/completions", data=held_body(),
                                    headers={"Content-Type": "application/json"}) as resp:
                return resp.status, await resp.read()

        second = asyncio.create_task(waiting_request())
        deadline = asyncio.get_running_loop().time() + 10
        while server.stats().in_flight < 1:  # its headers have reached the server
            assert asyncio.get_running_loop().time() < deadline, "the request never arrived"
            await asyncio.sleep(0.005)
        with pytest.raises(MalformedResponse) as info:
            await client.complete(request(stream=True))
        release.set()
        status, raw = await second
    assert info.value.reason == "interrupted_stream"
    assert status == 200  # the waiting request itself is answered in full
    assert json.loads(raw)["choices"][0]["finish_reason"] == "stop"


@pytest.mark.asyncio
async def test_interrupted_streams_are_retried_then_an_infrastructure_error() -> None:
    models = ModelsConfig(endpoints={"mock": EndpointConfig(stream=True, require_usage=False)},
                          retry=RetryConfig(max_attempts=2, backoff_base_s=0.001,
                                            backoff_cap_s=0.002))
    async with open_pool(models, mock_config=MockConfig(
            quirks=Quirks(interrupt_streams="always"))) as pool:
        with pytest.raises(RetriesExhausted) as info:
            await pool.complete("user", request())
        assert info.value.attempts == 2
        user = LLMUser(pool, "user", "You are a customer.", seed=1, tag="t")
        with pytest.raises(ParticipantError) as failure:
            await user.reply([AssistantMessage(content="Hi! How can I help?", turn_idx=0)])
    # not the user's fault: the server cut the answer, so no user_error
    assert failure.value.reason is Termination.INFRASTRUCTURE_ERROR


# -- errors --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_context_overflow_is_a_400_plain_and_an_empty_200_stream() -> None:
    quirks = Quirks(llama_context_errors=True)
    async with serving(quirks, max_context_tokens=8) as (server, session):
        long = "word " * 40
        status, _, body = await raw_post(session, server.url, encoded(request(text=long)))
        assert status == 400 and b"in the messages" in body
        status, content_type, body = await raw_post(
            session, server.url, encoded(request(text=long, stream=True)))
        assert (status, body) == (200, b"") and content_type.startswith("text/event-stream")
        client = EndpointClient("e", server.url, session)
        with pytest.raises(ContextLengthExceeded):
            await client.complete(request(text=long))
        with pytest.raises(MalformedResponse) as info:
            await client.complete(request(text=long, stream=True))
    # a stream can't say why it was empty: it reads as a dropped stream (retryable)
    assert info.value.reason == "truncated_stream" and "0 chunk" in str(info.value)


@pytest.mark.asyncio
async def test_a_bad_body_is_a_500_which_the_client_takes_for_transient() -> None:
    async with serving(Quirks(bad_body_as_500=True)) as (server, session):
        status, content_type, body = await raw_post(session, server.url, b'{"model": "m", "mes')
        assert (status, body) == (500, b"Internal Server Error")
        assert content_type.startswith("text/plain")
        status, _, body = await raw_post(session, server.url,
                                         b'{"model": "m", "messages": "not a list"}')
        assert status == 500 and json.loads(body)["error"]["type"] == "internal_server_error"
        status, _, _ = await raw_post(session, server.url, b'{"model": "m", "messages": []}')
        assert status == 400  # a body that parses keeps its 400


@pytest.mark.asyncio
async def test_the_500_for_a_bad_body_is_classified_transient() -> None:
    # the server says 500, so the engine retries: it cannot know the body was at fault
    async with serving(Quirks(bad_body_as_500=True)) as (server, session), session.post(
            server.url + "/chat/completions", data=b'{"model": 7, "messages": []}') as resp:
        error = classify_status(resp.status, resp.headers, await resp.read(),
                                endpoint="e", now_epoch=0.0)
    assert isinstance(error, TransientError) and error.status == 500
    assert "validation" in str(error) or "invalid" in str(error)


# -- answers the model got wrong -----------------------------------------------------------


@pytest.mark.asyncio
async def test_tool_arguments_cut_at_max_tokens_become_a_kept_accounted_call() -> None:
    async with serving(Quirks(tool_args_cut_keep_finish=True), CALL) as (server, session):
        _, _, wire = await raw_post(session, server.url,
                                    encoded(request(tools=True, max_tokens=5)))
        answer = json.loads(wire)["choices"][0]
        assert answer["finish_reason"] == "tool_calls"  # the cut is not reported
        with pytest.raises(MalformedResponse) as info:
            await EndpointClient("e", server.url, session).complete(
                request(tools=True, max_tokens=5))
        assert info.value.reason == "invalid_tool_arguments"
        assert isinstance(info.value.call, CallResult)
    models = ModelsConfig(retry=RetryConfig(max_attempts=2))
    async with open_pool(models, mock_config=MockConfig(
            quirks=Quirks(tool_args_cut_keep_finish=True)), mock_policy=CALL) as pool:
        agent = LLMAgent(pool, "agent", "You are an agent.", TOOLS, seed=1, tag="t",
                         max_tokens=5)
        turn = await agent.reply([UserMessage(content="Look me up.", turn_idx=0)])
    call = turn.message.tool_calls[0]  # type: ignore[union-attr,index]
    assert call.raw_arguments == ARGUMENTS[:20] and call.arguments == {}
    assert turn.call is not None and turn.call.malformed == "invalid_tool_arguments"
    assert turn.message.usage is not None and turn.message.usage.completion_tokens > 0


@pytest.mark.asyncio
async def test_empty_answers_end_the_episode_as_agent_or_user_error() -> None:
    blank = Fixed(Message(role="assistant", content=" \n"))
    for quirks, policy in ((Quirks(empty_answer=1.0), TEXT), (Quirks(), blank)):
        async with open_pool(ModelsConfig(), mock_config=MockConfig(quirks=quirks),
                             mock_policy=policy) as pool:
            agent = LLMAgent(pool, "agent", "You are an agent.", TOOLS, seed=1, tag="t")
            with pytest.raises(ParticipantError) as failure:
                await agent.reply([UserMessage(content="Hello", turn_idx=0)])
            assert failure.value.reason is Termination.AGENT_ERROR
            assert "empty" in str(failure.value)
            user = LLMUser(pool, "user", "You are a customer.", seed=1, tag="t")
            with pytest.raises(ParticipantError) as failure:
                await user.reply([AssistantMessage(content="Hi!", turn_idx=0)])
            assert failure.value.reason is Termination.USER_ERROR


# -- the whole engine --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_simulate_against_the_llama_quirks_ends_well_and_replays(tmp_path: Path) -> None:
    config = default_config()
    replace = msgspec.structs.replace
    # interruptions depend on timing (tested above); everything else is seeded
    quirks = replace(LLAMA_CPP_PYTHON, empty_answer=0.15, interrupt_streams="never")
    config = replace(
        config,
        models=replace(config.models, endpoints={"mock": EndpointConfig(
            stream=True, require_usage=False)}, retry=RetryConfig(
                max_attempts=2, backoff_base_s=0.001, backoff_cap_s=0.002)),
        mock=replace(config.mock, quirks=quirks, seed=3),
        simulate=replace(config.simulate, agent="agent", user="user", task_count=12,
                         concurrency=4, max_steps=16, max_errors=3, max_tokens=12))
    outcome = await simulate(plan_of(config), out=tmp_path / "run")
    reasons = outcome.summary["termination_reasons"]
    assert sum(reasons.values()) == 12
    assert set(reasons) <= {"user_stop", "max_steps", "too_many_errors", "agent_error",
                            "user_error"}
    # seeded: empty answers end some episodes, cut tool arguments pile up errors in others
    assert reasons.get("agent_error") and reasons.get("too_many_errors")
    for record in outcome.records:
        if record.termination == "too_many_errors":
            assert sum(1 for m in record.messages if getattr(m, "error", False)) >= 3
        if record.termination in ("agent_error", "user_error"):
            assert record.error and "empty" in record.error  # only empty answers are errors
    journal = read_journal(tmp_path / "run" / "journal.bin")
    assert any("not a JSON object" in m.content for r in outcome.records for m in r.messages
               if getattr(m, "error", False))
    kept = [e.malformed for r in outcome.records for e in journal.events(r.episode_id)
            if isinstance(e, ModelCalled) and e.malformed]
    assert "length" in kept  # answers cut at max_tokens were kept, and accounted
    verdicts = await verify_all(open_replay(tmp_path / "run"))
    assert len(verdicts) == 12 and all(v.divergence is None for v in verdicts)
