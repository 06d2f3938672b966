"""The cluster-wide budget without Ray: the ledger's grants, the worker's granted limiter
and the feeder that keeps it supplied, over a shared ledger in one process."""

from __future__ import annotations

import asyncio
import math
import socket

import pytest

from writ_async.cluster.budget import BudgetLedger, Grant
from writ_async.cluster.feeder import BudgetFeeder
from writ_async.llm.limits import GrantedRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_grants_in_any_window_plus_lease_never_exceed_the_limit() -> None:
    clock = FakeClock()
    ledger = BudgetLedger({"ep": (120, None)}, window=60.0, lease=1.0, clock=clock)
    grants: list[tuple[float, int]] = []
    for step in range(3000):  # 3 workers asking greedily every 50 ms for 150 s
        clock.now = 100.0 + step * 0.05
        for worker in ("a", "b", "c"):
            grant = ledger.grant("ep", worker, 50, 0)
            if grant.requests:
                grants.append((clock.now, grant.requests))
    span = 61.0  # window + lease: what a request sent in any minute was granted within
    for i, (start, _) in enumerate(grants):
        inside = sum(n for t, n in grants[i:] if t < start + span)
        assert inside <= 120
    total = sum(n for _, n in grants)
    assert total >= 120 * 150 / 61 * 0.95  # and the budget is really handed out


def test_a_429_pauses_every_worker() -> None:
    clock = FakeClock()
    ledger = BudgetLedger({"ep": (6000, None)}, clock=clock)
    assert ledger.grant("ep", "a", 5, 0).requests == 5
    ledger.pause("ep", 2.0)
    refused = ledger.grant("ep", "b", 5, 0)
    assert refused == Grant(0, 0, retry_in=2.0, paused_for=2.0)
    clock.now += 2.5
    assert ledger.grant("ep", "b", 5, 0).requests == 5


def test_a_lost_workers_share_goes_to_the_others_and_its_batches_are_written_off() -> None:
    clock = FakeClock()
    ledger = BudgetLedger({"ep": (6100, None)}, lease=1.0, clock=clock)  # capacity 100
    assert ledger.grant("ep", "a", 1000, 0).requests == 100  # alone: the whole burst
    clock.now += 2.0
    assert ledger.grant("ep", "b", 1000, 0).requests == 50  # a and b: half each
    clock.now += 0.5
    assert ledger.worker_lost("b") == 50  # b held 50 unexpired: never granted again
    clock.now += 2.0
    assert ledger.grant("ep", "a", 1000, 0).requests == 100  # b's share is back
    assert ledger.grant("ep", "b", 1, 0).requests == 0  # a lost worker gets nothing
    [stats] = ledger.statistics()
    assert stats.lost_workers == 1 and stats.written_off_requests == 50


def test_tokens_are_granted_whole_for_the_waiting_request_or_not_at_all() -> None:
    clock = FakeClock()
    ledger = BudgetLedger({"ep": (None, 61_000)}, clock=clock)  # token capacity 1000
    first = ledger.grant("ep", "a", 1, 900, min_tokens=900)
    assert first.tokens == 900
    short = ledger.grant("ep", "a", 1, 500, min_tokens=500)
    assert short.tokens == 0 and short.retry_in > 0
    clock.now += short.retry_in
    assert ledger.grant("ep", "a", 1, 500, min_tokens=500).tokens == 500


@pytest.mark.asyncio
async def test_granted_limiter_spends_a_batch_only_within_its_lease() -> None:
    clock = FakeClock()
    limiter = GrantedRateLimiter(requests=True, tokens=False, clock=clock)
    limiter.credit(3, 0, until=clock.now + 1.0)
    await limiter.acquire()
    clock.now += 1.5  # two requests' worth left, but the lease ran out
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0)
    assert not waiter.done() and limiter.wanted() == (1, 0)
    limiter.credit(1, 0, until=clock.now + 1.0)
    await asyncio.wait_for(waiter, 1.0)
    assert limiter.levels() == (0.0, 0.0)


class LocalSource:
    """The ledger called in-process, as the Ray actor would be."""

    def __init__(self, ledger: BudgetLedger) -> None:
        self.ledger = ledger

    async def grant(self, endpoint: str, worker: str, requests: int, tokens: int,
                    min_tokens: int) -> Grant:
        await asyncio.sleep(0.001)  # a round trip
        return self.ledger.grant(endpoint, worker, requests, tokens, min_tokens)

    async def pause(self, endpoint: str, seconds: float) -> None:
        self.ledger.pause(endpoint, seconds)

    async def sync(self, endpoint: str, *args: object) -> None:
        self.ledger.sync(endpoint, *args)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_two_workers_share_one_budget_and_a_429_stops_both() -> None:
    # A one-second window so that the shared limit binds within a short test; the check
    # is an upper bound on admissions, so a slow machine cannot make it fail.
    loop = asyncio.get_running_loop()
    ledger = BudgetLedger({"ep": (40, None)}, window=1.0, lease=0.2, burst=0.25,
                          clock=loop.time)
    source = LocalSource(ledger)
    feeders = [BudgetFeeder("ep", w, source, requests=True, tokens=False, lease=0.2,
                            clock=loop.time) for w in ("a", "b")]
    admitted: list[float] = []
    stop = loop.time() + 1.6

    async def caller(limiter: GrantedRateLimiter) -> None:
        while loop.time() < stop:
            await limiter.acquire()
            admitted.append(loop.time())

    async with asyncio.TaskGroup() as group:
        runs = [group.create_task(f.run()) for f in feeders]
        callers = [group.create_task(caller(f.limiter)) for f in feeders for _ in range(20)]
        await asyncio.sleep(1.0)
        feeders[0].limiter.pause_until(loop.time() + 0.3)  # a 429 seen by worker a
        paused_at = loop.time()
        await asyncio.gather(*callers, return_exceptions=True)
        for task in runs:
            task.cancel()
    # Counted once every caller is done: counted earlier, the window is still to come and
    # holds nothing whatever the workers do.
    during = len([t for t in admitted if paused_at + 0.05 <= t < paused_at + 0.3])
    admitted.sort()
    for i, start in enumerate(admitted):  # never more than 40 in any 1 s window
        assert sum(1 for t in admitted[i:i + 41] if t < start + 1.0) <= 40
    assert len(admitted) >= 40  # the budget was used, by both workers
    assert all(f.asks > 0 for f in feeders)
    # b learned of a's 429 at its next ask: at most a batch still in hand went out
    assert during <= math.ceil(40 * 0.25 / 2)


class CountingSource(LocalSource):
    def __init__(self, ledger: BudgetLedger) -> None:
        super().__init__(ledger)
        self.syncs: list[tuple[object, ...]] = []

    async def sync(self, endpoint: str, *args: object) -> None:
        self.syncs.append(args)
        await super().sync(endpoint, *args)


@pytest.mark.asyncio
async def test_rate_limit_headers_reach_the_ledger_at_most_once_per_interval() -> None:
    loop = asyncio.get_running_loop()
    ledger = BudgetLedger({"ep": (6000, None)}, clock=FakeClock())  # no refill meanwhile
    source = CountingSource(ledger)
    feeder = BudgetFeeder("ep", "a", source, requests=True, tokens=False, clock=loop.time)
    runner = asyncio.ensure_future(feeder.run())
    try:
        for remaining in range(100, 0, -1):  # a hundred responses in a burst
            feeder.limiter.sync(remaining, None, None, None)
        deadline = loop.time() + 10
        while not source.syncs:  # the feeder's next report, however late it runs
            assert loop.time() < deadline, "the headers never reached the ledger"
            await asyncio.sleep(0.005)
        assert source.syncs == [(1, None, None, None)]  # only the latest went out
        before = ledger.grant("ep", "b", 50, 0).requests
        assert before == 1  # the endpoint said one request is left: the ledger believes it
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


def test_without_ray_installed_the_cluster_run_says_how_to_get_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from writ_async.cluster import ray_run
    from writ_async.errors import ClusterError

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ClusterError, match=r"writ-async\[ray\]"):
        ray_run._import_ray()


def test_an_address_nobody_listens_on_fails_fast() -> None:
    from writ_async.cluster import ray_run
    from writ_async.errors import ClusterError

    with socket.socket() as s:  # a port just freed: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ClusterError, match="cannot reach the Ray cluster"):
        ray_run._check_reachable(f"127.0.0.1:{port}", timeout=2.0)
