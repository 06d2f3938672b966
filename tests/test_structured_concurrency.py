"""No task outlives its scope, and no task dies unseen.

A cancel scope (writ_async/scopes.py) ends its block and every task the block's groups
run, and absorbs only its own cancellation; a stop request's second call cancels what
runs in its ``cancel_scope()``. A budget feeder that crashes, or whose message to the
ledger fails, fails the shard instead of leaving its limiter unfed (the shard would wait
for ever). A load test stopped from outside, in either mode, leaves no task behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from test_loadtest_stop import _mock

from writ_async.cluster.budget import Grant
from writ_async.cluster.feeder import BudgetFeeder, MakeLimiter, run_fed
from writ_async.config import EndpointConfig
from writ_async.engine.scheduler import StopRequest
from writ_async.loadtest.run import CANCELLED, INTERRUPTED, LoadConfig, LoadRun, run_load
from writ_async.loadtest.traffic import SyntheticTraffic
from writ_async.scopes import CancelScope

# Guards against a hang (the old behaviour of a starved shard), not timings: each test
# ends in well under a second when it passes.
HANG_S = 20.0


def others() -> set[asyncio.Task[Any]]:
    """Every task but the one asking."""
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


# -- the cancel scope ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_cancelled_scope_ends_its_block_and_its_groups_tasks() -> None:
    scope = CancelScope()
    children: list[asyncio.Task[None]] = []
    async with asyncio.timeout(HANG_S):
        async with scope, asyncio.TaskGroup() as group:
            children += [group.create_task(asyncio.Event().wait()) for _ in range(3)]
            asyncio.get_running_loop().call_soon(scope.cancel)  # as a signal handler does
            await asyncio.Event().wait()  # only the scope ends this
    assert scope.cancelled_caught
    assert all(child.cancelled() for child in children)
    assert not others()


@pytest.mark.asyncio
async def test_a_scope_does_not_swallow_a_cancellation_from_elsewhere() -> None:
    entered = asyncio.Event()
    scope = CancelScope()

    async def inner() -> None:
        async with scope:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(inner())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not scope.cancelled_caught


@pytest.mark.asyncio
async def test_the_second_stop_request_cancels_its_scope_and_says_so() -> None:
    lines: list[str] = []
    stop = StopRequest(notice=lines.append)
    async with asyncio.timeout(HANG_S):
        async with stop.cancel_scope() as scope, asyncio.TaskGroup() as group:
            child = group.create_task(asyncio.Event().wait())
            stop()  # the first: stop admitting, cancel nothing
            await asyncio.sleep(0)
            assert not child.done() and not stop.admitting
            stop()  # the second: cancel
            await asyncio.Event().wait()
    assert scope.cancelled_caught and child.cancelled()
    assert len(lines) == 2 and lines[1].startswith("cancelling")
    # A block entered after the second request does not run at all.
    ran = False
    async with stop.cancel_scope() as late:
        await asyncio.sleep(0)
        ran = True
    assert late.cancelled_caught and not ran


# -- the budget feeders ----------------------------------------------------------------------


class BrokenSource:
    """A ledger that fails: every grant, or only the pause messages."""

    def __init__(self, *, grants: bool) -> None:
        self.grants = grants

    async def grant(self, endpoint: str, worker: str, requests: int, tokens: int,
                    min_tokens: int) -> Grant:
        if self.grants:
            raise RuntimeError("the ledger is gone")
        await asyncio.sleep(0)
        return Grant(requests=0, tokens=0, retry_in=0.01)

    async def pause(self, endpoint: str, seconds: float) -> None:
        raise RuntimeError("the pause was lost")

    async def sync(self, endpoint: str, *args: object) -> None:
        return None


@pytest.mark.asyncio
async def test_a_crashing_feeder_fails_the_shard_instead_of_starving_it() -> None:
    settings = EndpointConfig(requests_per_minute=600.0)
    reached: list[str] = []

    async def shard(make_limiter: MakeLimiter) -> None:
        limiter = make_limiter("ep", settings)
        reached.append("waiting")
        await limiter.acquire()  # fed by nobody once the feeder is dead
        reached.append("admitted")

    async with asyncio.timeout(HANG_S):
        with pytest.raises(ExceptionGroup) as info:
            await run_fed(BrokenSource(grants=True), "w0", ["ep"], 1.0, shard)
    assert info.group_contains(RuntimeError, match="the ledger is gone")
    assert reached == ["waiting"]
    assert not others()


@pytest.mark.asyncio
async def test_feeders_end_with_the_shard_and_its_result_is_returned() -> None:
    settings = EndpointConfig(requests_per_minute=600.0)
    made: list[object] = []

    async def shard(make_limiter: MakeLimiter) -> str:
        made.append(make_limiter("ep", settings))  # fed
        made.append(make_limiter("local", settings))  # not in the shared budget: its own
        await asyncio.sleep(0)
        return "done"

    async with asyncio.timeout(HANG_S):
        assert await run_fed(BrokenSource(grants=False), "w0", ["ep"], 1.0, shard) == "done"
    assert type(made[0]).__name__ == "GrantedRateLimiter"
    assert type(made[1]).__name__ == "RateLimiter"
    assert not others()


@pytest.mark.asyncio
async def test_a_failed_message_to_the_ledger_fails_the_feeder() -> None:
    feeder = BudgetFeeder("ep", "w0", BrokenSource(grants=False), requests=True,
                          tokens=False)
    feeder.paused(1.0)  # a 429 seen before the feeder's loop started: sent once it does
    async with asyncio.timeout(HANG_S):
        with pytest.raises(ExceptionGroup) as info:
            await feeder.run()
    assert info.group_contains(RuntimeError, match="the pause was lost")
    assert not others()


# -- the load test ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hanging_mock() -> Iterator[str]:
    # Answers take a minute: whatever is in flight at the stop is still there.
    yield from _mock("--ttft-ms", "60000", "--tpot-ms", "0")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["concurrency", "rate"])
async def test_a_stopped_load_test_leaves_no_task_behind(hanging_mock: str,
                                                         mode: str) -> None:
    config = LoadConfig(base_url=hanging_mock, model="m", mode=mode,  # type: ignore[arg-type]
                        concurrency=8, rate=200.0, duration_s=600.0, drain_s=600.0)
    traffic = SyntheticTraffic()
    before = others()
    started: list[LoadRun] = []

    async def stop_when_in_flight() -> None:
        while not started or started[0].in_flight < 4:
            await asyncio.sleep(0.005)
        started[0].interrupt()  # first Ctrl-C: nothing new, the drain would wait 600 s
        started[0].cancel_in_flight()  # second: cancel what is in flight

    async with asyncio.timeout(HANG_S), asyncio.TaskGroup() as group:
        group.create_task(stop_when_in_flight())
        run = await run_load(config, traffic, on_start=started.append)
    assert run.stop_reason == INTERRUPTED
    assert run.cancelled >= 4  # every one in flight was cancelled, and counted
    assert not run.live
    assert run.outcomes.get(CANCELLED, 0) == 0  # (cancelled ones are not ended ones)
    assert others() == before
