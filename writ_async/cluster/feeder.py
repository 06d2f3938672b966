"""A worker's side of a shared budget: keep one endpoint's ``GrantedRateLimiter``
supplied with batches from a ``BudgetSource`` (each to be spent within its lease, which
the limiter enforces), and pass the endpoint's 429s and rate-limit headers back.

Nothing here knows about Ray: the source is a protocol (``ray_run.ActorSource`` is the
Ray one; tests use the ledger in-process). The feeder asks when requests are waiting or
when what is left falls below a quarter second of the recent spending rate, so a busy
worker seldom waits for the ledger and an idle one holds (and wastes) nothing.

``run_fed`` runs a worker's body with its feeders in one task group: a feeder that fails
fails the body (its limiter would otherwise never be fed again and the shard would wait
for ever), and the feeders end when the body does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Coroutine
from functools import partial
from typing import Any, Protocol, TypeVar

from writ_async.cluster.budget import Grant
from writ_async.config import EndpointConfig
from writ_async.llm.limits import GrantedRateLimiter, RateLimiter

T = TypeVar("T")
MakeLimiter = Callable[[str, EndpointConfig], RateLimiter]  # models.setup.RateLimiterFactory

DEFAULT_TOKENS = 1024  # tokens assumed per request until a waiting request shows its own


class BudgetSource(Protocol):
    """Where batches come from (the ledger, wherever it lives)."""

    async def grant(self, endpoint: str, worker: str, requests: int, tokens: int,
                    min_tokens: int) -> Grant: ...

    async def pause(self, endpoint: str, seconds: float) -> None: ...

    async def sync(self, endpoint: str, remaining_requests: int | None,
                   remaining_tokens: int | None, reset_requests_s: float | None,
                   reset_tokens_s: float | None) -> None: ...


class BudgetFeeder:
    """Feeds ``limiter`` (made here) from ``source``; run ``run()`` as a task while the
    limiter is in use, and cancel it after. What the endpoint says (``paused``,
    ``synced``) goes to the source from tasks in ``run()``'s own task group: one that
    fails fails the feeder."""

    def __init__(self, endpoint: str, worker: str, source: BudgetSource, *,
                 requests: bool, tokens: bool, lease: float = 1.0, poll: float = 0.01,
                 prefetch: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self.endpoint, self.worker, self.source = endpoint, worker, source
        self.lease, self.poll, self.prefetch = lease, poll, prefetch
        self.clock = clock
        self.limiter = GrantedRateLimiter(requests=requests, tokens=tokens, feedback=self,
                                          clock=clock)
        self._limits_requests, self._limits_tokens = requests, tokens
        self._admissions: deque[tuple[float, int]] = deque()  # (time, admitted so far)
        self._tokens_per_request = float(DEFAULT_TOKENS)
        self._group: asyncio.TaskGroup | None = None  # run()'s, while it runs
        self._early: list[Callable[[], Coroutine[Any, Any, None]]] = []  # before run()
        self._ended = False
        self._latest_sync: tuple[int | None, int | None, float | None, float | None] | None
        self._latest_sync = None
        self._synced_at = -math.inf
        self.sync_every = 0.1
        self.asks = 0

    # -- BudgetFeedback: what the endpoint said, for the whole cluster -------------------------

    def paused(self, seconds: float) -> None:
        self._send(partial(self.source.pause, self.endpoint, seconds))

    def synced(self, remaining_requests: int | None, remaining_tokens: int | None,
               reset_requests_s: float | None, reset_tokens_s: float | None) -> None:
        # Every response may carry these headers: only the latest goes out, at most once
        # per ``sync_every``, so the ledger is not told once per call.
        self._latest_sync = (remaining_requests, remaining_tokens, reset_requests_s,
                             reset_tokens_s)

    def _send(self, call: Callable[[], Coroutine[Any, Any, None]]) -> None:
        # A callable, not a coroutine: one made and never run would warn. Before run()
        # starts it waits for it; after run() ended nobody spends the budget: dropped.
        if self._group is not None:
            self._group.create_task(call())
        elif not self._ended:
            self._early.append(call)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                for call in self._early:
                    group.create_task(call())
                self._early.clear()
                await self._feed()
        finally:
            self._group, self._ended = None, True

    async def _feed(self) -> None:
        while True:
            now = self.clock()
            if self._latest_sync is not None and now - self._synced_at >= self.sync_every:
                self._send(partial(self.source.sync, self.endpoint, *self._latest_sync))
                self._latest_sync, self._synced_at = None, now
            want = self._wanted(now)
            if want is None:
                await asyncio.sleep(self.poll)
                continue
            requests, tokens, head_tokens = want
            asked_at = self.clock()  # the lease runs from before the ask left
            self.asks += 1
            grant = await self.source.grant(self.endpoint, self.worker, requests, tokens,
                                            head_tokens)
            if grant.paused_for > 0:
                self.limiter.pause_local(self.clock() + grant.paused_for)
            if grant.requests or grant.tokens:
                self.limiter.credit(grant.requests, grant.tokens, asked_at + self.lease)
                continue
            await asyncio.sleep(min(max(grant.retry_in, self.poll), self.lease))

    def _wanted(self, now: float) -> tuple[int, int, int] | None:
        """(requests, tokens, tokens of the head) to ask for now, or None."""
        waiting, head_tokens = self.limiter.wanted()
        if waiting and head_tokens:
            self._tokens_per_request = 0.8 * self._tokens_per_request + 0.2 * head_tokens
        admitted = self.limiter.statistics().admitted
        history = self._admissions
        history.append((now, admitted))
        while len(history) > 1 and now - history[0][0] > 1.0:
            history.popleft()
        span = now - history[0][0]
        rate = (admitted - history[0][1]) / span if span > 0.05 else 0.0
        target = math.ceil(rate * self.prefetch)
        level_r, level_t = self.limiter.levels()
        tokens_target = target * self._tokens_per_request
        short = waiting > 0 or (
            level_r < target if self._limits_requests else level_t < tokens_target)
        if not short:
            return None
        requests = max(1, waiting + target - math.floor(level_r))
        tokens = math.ceil(max(requests * self._tokens_per_request, head_tokens))
        return requests, (tokens if self._limits_tokens else 0), head_tokens


async def run_fed(source: BudgetSource, worker: str, limited: Collection[str], lease: float,
                  body: Callable[[MakeLimiter], Awaitable[T]]) -> T:
    """``body(make_limiter)``, where ``make_limiter`` (``open_pool``'s ``rate_limiter``)
    gives an endpoint in ``limited`` a limiter fed from ``source`` by a ``BudgetFeeder``
    and any other a local one. The feeders run in one task group with ``body``: one that
    fails cancels ``body`` and its error is raised (in the group's ExceptionGroup); when
    ``body`` returns, they are cancelled and its result is returned."""
    feeders: list[asyncio.Task[None]] = []
    async with asyncio.TaskGroup() as group:

        def make_limiter(name: str, settings: EndpointConfig) -> RateLimiter:
            if name not in limited:
                return RateLimiter(settings.requests_per_minute, settings.tokens_per_minute,
                                   burst=1.0)
            feeder = BudgetFeeder(name, worker, source, lease=lease,
                                  requests=settings.requests_per_minute is not None,
                                  tokens=settings.tokens_per_minute is not None)
            feeders.append(group.create_task(feeder.run(), name=f"budget feeder {name}"))
            return feeder.limiter

        try:
            return await body(make_limiter)
        finally:
            for task in feeders:  # the body is over, whichever way: so are they
                task.cancel()
