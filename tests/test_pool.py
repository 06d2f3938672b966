"""The model pool against the real mock server over loopback: every fault, no leaks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import msgspec
import pytest

from writ_async.config import EndpointConfig, ModelsConfig, TimeoutsConfig
from writ_async.errors import (
    CallTimeout,
    CircuitOpen,
    ConfigError,
    ContextLengthExceeded,
    MalformedResponse,
    PermanentError,
    RetriesExhausted,
    TransientError,
)
from writ_async.llm.client import EndpointClient, Timeouts, open_session
from writ_async.llm.limits import ConcurrencyLimiter, RateLimiter
from writ_async.llm.pool import CircuitBreaker, Endpoint, ModelPool, estimate_tokens
from writ_async.llm.protocol import ChatRequest, Message
from writ_async.llm.retry import RetryPolicy
from writ_async.llm.setup import open_pool
from writ_async.mock.config import FaultRates, MockConfig
from writ_async.mock.server import MockServer, open_mock_server

FAST_RETRY = RetryPolicy(max_attempts=3, deadline_s=30.0, backoff_base_s=0.001,
                         backoff_cap_s=0.005)
TOOLS = [{"type": "function", "function": {
    "name": "get_user_details", "description": "Look a user up.",
    "parameters": {"type": "object", "properties": {"user_id": {"type": "string"}},
                   "required": ["user_id"]}}}]


def request(text: str = "Hello there", *, stream: bool = False, tools: bool = False,
            max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message(role="user", content=text)],
                       stream=stream, tools=TOOLS if tools else None, max_tokens=max_tokens)


def endpoint(name: str, url: str, session, *, timeouts: Timeouts | None = None,
             rpm: float | None = None, tpm: float | None = None,
             api_key: str | None = None) -> Endpoint:
    ep = Endpoint(
        name=name,
        client=EndpointClient(name, url, session, timeouts=timeouts, api_key=api_key),
        rate=RateLimiter(rpm, tpm),
        concurrency=ConcurrencyLimiter(8, maximum=64),
        breaker=CircuitBreaker(threshold=3, cooldown=60.0),
    )
    ep.client.on_feedback = ep.feedback
    return ep


@asynccontextmanager
async def pool_over(config: MockConfig, **kw) -> AsyncIterator[tuple[ModelPool, MockServer]]:
    async with open_mock_server(config) as server, open_session(64) as session:
        ep = endpoint("mock", server.url, session, **kw)
        yield ModelPool({"agent": [ep]}, retry=FAST_RETRY, rng=random.Random(0)), server


async def until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Waits for ``condition`` (something the server or the pool does meanwhile), failing
    only when it is still false after ``within_s``: a slow machine waits longer, no more."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def assert_nothing_leaked(pool: ModelPool) -> None:
    for ep in pool.endpoints():
        assert ep.outstanding == 0
        stats = ep.concurrency.statistics()
        assert (stats.in_flight, stats.waiting) == (0, 0)
        assert ep.rate.statistics().waiting == 0
        connector = ep.client.session.connector
        assert connector is not None and not connector._acquired  # no connection held


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_success_is_accounted(stream: bool) -> None:
    async with pool_over(MockConfig(seed=1)) as (pool, server):
        result = await pool.complete("agent", request(stream=stream))
        assert result.completion.choices[0].message.content
        assert result.usage.completion_tokens > 0
        stats = pool.statistics()[0]
        assert (stats.calls, stats.succeeded, stats.failed) == (1, 1, 0)
        served = server.stats()
        assert stats.prompt_tokens == served.prompt_tokens
        assert stats.completion_tokens == served.completion_tokens
        if stream:
            assert result.ttft is not None and result.ttft >= 0
        assert_nothing_leaked(pool)


@pytest.mark.asyncio
async def test_streamed_tool_calls_arrive_whole() -> None:
    async with pool_over(MockConfig(seed=3)) as (pool, _):
        result = await pool.complete("agent", request(stream=True, tools=True))
        (call,) = result.completion.choices[0].message.tool_calls
        assert call.function.name == "get_user_details"
        assert "user_id" in msgspec.json.decode(call.function.arguments)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "stream", "last_error", "reason"),
    [
        ("error_5xx", False, TransientError, None),
        ("reset", False, TransientError, None),
        ("reset", True, TransientError, None),
        ("truncated_stream", True, MalformedResponse, "truncated_stream"),
        ("malformed_json", False, MalformedResponse, None),
        ("error_object_200", False, MalformedResponse, "error_object"),
        ("no_usage", False, MalformedResponse, "missing_usage"),
    ],
)
async def test_retryable_faults_exhaust_the_budget(fault, stream, last_error, reason) -> None:
    config = MockConfig(seed=2, faults=FaultRates(**{fault: 1.0}))
    async with pool_over(config) as (pool, server):
        with pytest.raises(RetriesExhausted) as info:
            await pool.complete("agent", request(stream=stream))
        assert info.value.attempts == FAST_RETRY.max_attempts
        assert isinstance(info.value.last, last_error)
        if reason:
            assert info.value.last.reason == reason
        assert server.stats().requests == FAST_RETRY.max_attempts
        stats = pool.statistics()[0]
        assert (stats.failed, stats.retries) == (3, 2)
        assert_nothing_leaked(pool)


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [False, True])
async def test_stall_times_out_in_the_first_token_phase(stream: bool) -> None:
    config = MockConfig(seed=2, faults=FaultRates(stall=1.0), stall_s=30.0)
    timeouts = Timeouts(connect=5, first_token=0.2, idle=0.2, total=10)
    async with pool_over(config, timeouts=timeouts) as (pool, _):
        with pytest.raises(RetriesExhausted) as info:
            await pool.complete("agent", request(stream=stream))
        assert isinstance(info.value.last, CallTimeout)
        assert info.value.last.phase == "first_token"
        # timeouts count as overload: the adaptive limit shrank
        assert pool.endpoints()[0].concurrency.statistics().decreases >= 1
        assert_nothing_leaked(pool)


@pytest.mark.asyncio
async def test_total_deadline_caps_every_phase() -> None:
    config = MockConfig(seed=2, faults=FaultRates(stall=1.0), stall_s=30.0)
    timeouts = Timeouts(connect=5, first_token=20, idle=20, total=0.2)
    async with pool_over(config, timeouts=timeouts) as (pool, _):
        pool.retry = RetryPolicy(max_attempts=1)
        with pytest.raises(CallTimeout) as info:
            await pool.complete("agent", request())
        assert info.value.phase == "total"


@pytest.mark.asyncio
async def test_invalid_tool_arguments_are_handed_back_without_retry() -> None:
    config = MockConfig(seed=2, faults=FaultRates(invalid_tool_args=1.0))
    async with pool_over(config) as (pool, server):
        with pytest.raises(MalformedResponse) as info:
            await pool.complete("agent", request(tools=True))
        assert info.value.reason == "invalid_tool_arguments"
        assert server.stats().requests == 1


@pytest.mark.asyncio
async def test_length_finish_is_malformed() -> None:
    async with pool_over(MockConfig(seed=2, reply_tokens_min=40, reply_tokens_max=40)) as (
        pool, _
    ):
        with pytest.raises(MalformedResponse) as info:
            await pool.complete("agent", request(max_tokens=2))
        assert info.value.reason == "length"


@pytest.mark.asyncio
async def test_rate_limit_is_waited_out_and_succeeds() -> None:
    # The server allows 2 requests per 0.5 s window; the client has no limit of its own,
    # so it gets 429s with retry-after and must pause and come back.
    config = MockConfig(seed=2, rpm_limit=2, rate_window_s=0.5)
    async with pool_over(config) as (pool, server):
        pool.retry = RetryPolicy(max_attempts=10, deadline_s=20, backoff_base_s=0.01)
        results = await asyncio.gather(*(pool.complete("agent", request()) for _ in range(5)))
        assert len(results) == 5
        assert server.stats().rate_limited >= 1
        stats = pool.statistics()[0]
        assert stats.rate_limited >= 1 and stats.succeeded == 5
        assert_nothing_leaked(pool)


@pytest.mark.asyncio
async def test_context_length_fails_fast_without_opening_the_breaker() -> None:
    config = MockConfig(seed=2, max_context_tokens=10)
    async with pool_over(config) as (pool, server):
        for _ in range(5):
            with pytest.raises(ContextLengthExceeded):
                await pool.complete("agent", request("x" * 400))
        assert server.stats().requests == 5
        assert not pool.endpoints()[0].breaker.is_open


@pytest.mark.asyncio
async def test_auth_failure_opens_the_circuit() -> None:
    config = MockConfig(seed=2, api_key="right")
    async with pool_over(config, api_key="wrong") as (pool, server):
        with pytest.raises(PermanentError) as info:
            await pool.complete("agent", request())
        assert info.value.status == 401
        with pytest.raises(CircuitOpen):
            await pool.complete("agent", request())
        assert server.stats().requests == 1  # the second call never left the client


@pytest.mark.asyncio
async def test_unknown_model_is_permanent() -> None:
    async with pool_over(MockConfig(seed=2, models=["other"])) as (pool, _):
        with pytest.raises(PermanentError) as info:
            await pool.complete("agent", request())
        assert info.value.status == 404


@pytest.mark.asyncio
async def test_cancelling_in_flight_and_waiting_calls_leaks_nothing() -> None:
    config = MockConfig(seed=2, faults=FaultRates(stall=1.0), stall_s=30.0)
    async with pool_over(config, rpm=1_000_000) as (pool, server):
        pool.endpoints()[0].concurrency = ConcurrencyLimiter(2, maximum=2)
        tasks = [asyncio.create_task(pool.complete("agent", request())) for _ in range(6)]
        concurrency = pool.endpoints()[0].concurrency
        # two in flight (stalled at the server), four waiting for a permit
        await until(lambda: server.stats().in_flight == 2)
        assert concurrency.statistics().waiting == 4
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert_nothing_leaked(pool)
        await until(lambda: server.stats().in_flight == 0)  # it notices the disconnects


@pytest.mark.asyncio
async def test_requests_go_to_the_least_outstanding_endpoint() -> None:
    async with open_mock_server(MockConfig(seed=1, ttft_ms=20)) as a, open_mock_server(
        MockConfig(seed=2, ttft_ms=20)
    ) as b, open_session(64) as session:
        pool = ModelPool({"agent": [endpoint("a", a.url, session),
                                    endpoint("b", b.url, session)]}, retry=FAST_RETRY)
        await asyncio.gather(*(pool.complete("agent", request()) for _ in range(16)))
        assert a.stats().requests == 8 and b.stats().requests == 8


@pytest.mark.asyncio
async def test_open_pool_from_config_starts_the_embedded_mock() -> None:
    async with open_pool(ModelsConfig(), seed=5) as pool:
        result = await pool.complete("user", request())
        assert result.completion.choices[0].message.content
        assert {ep.name for ep in pool.endpoints()} == {"mock"}


@pytest.mark.asyncio
async def test_api_keys_come_from_the_environment_only() -> None:
    config = ModelsConfig(
        endpoints={"real": EndpointConfig(base_url="http://127.0.0.1:9/v1",
                                          api_key_env="WRIT_TEST_KEY",
                                          timeouts=TimeoutsConfig())},
        roles={"agent": ["real"]},
    )
    with pytest.raises(ConfigError) as info:
        async with open_pool(config, environ={}):
            pass
    assert info.value.key_path == "models.endpoints.real.api_key_env"
    assert "WRIT_TEST_KEY is not set" in str(info.value)
    async with open_pool(config, environ={"WRIT_TEST_KEY": "sk-secret"}) as pool:
        client = pool.endpoints()[0].client
        assert "sk-secret" not in repr(client) and "sk-secret" not in repr(pool)


def test_token_estimate_counts_prompt_and_reply_budget() -> None:
    small = estimate_tokens(request("hi", max_tokens=10))
    big = estimate_tokens(request("x" * 4000, max_tokens=10))
    assert small >= 10 and big >= small + 990


@pytest.mark.asyncio
async def test_endpoint_down_is_transient_and_retried() -> None:
    async with open_session(8) as session:
        dead = endpoint("dead", "http://127.0.0.1:9/v1", session)  # nothing listens on 9
        pool = ModelPool({"agent": [dead]}, retry=FAST_RETRY)
        with pytest.raises(RetriesExhausted) as info:
            await pool.complete("agent", request())
        assert isinstance(info.value.last, TransientError)
        assert info.value.attempts == 3
        assert_nothing_leaked(pool)
