"""One request and token budget per endpoint, shared by every worker of a cluster run.

The ledger lives in one place (a Ray actor, ``ray_run.Coordinator``) and hands the
budget out in batches: a worker asks for a quarter second's worth or so of what it
spends (``feeder.BudgetFeeder``), so the ledger is consulted a few times a second per
worker, never once per model call.

**The guarantee.** Each endpoint's budget is a strict token bucket (``TokenBucket``
with ``burst``, see ``writ_async.llm.limits``) over ``window + lease`` seconds, and
a worker may spend a batch only within ``lease`` seconds of *asking* for it (it times
the lease from before the request left, so a slow answer only shortens it). A request
sent in any interval ``[s, s + window)`` was therefore granted in ``[s - lease,
s + window)``, an interval of ``window + lease`` seconds, in which the bucket grants at
most the configured amount. So the whole cluster never sends more than
``requests_per_minute`` (``tokens_per_minute``) in any minute, whatever the number of
workers; the price is a long-run rate of ``window / (window + lease)`` of the limit
(98% with the default one-second lease) and what expires unspent.

**429s.** A worker that is told to wait (``retry-after``) reports it: the ledger grants
nothing to anyone until then and tells each worker at its next request, so the pause
holds cluster-wide within one batch. ``x-ratelimit-*`` headers clamp the bucket the same
way ``RateLimiter.sync`` does.

**Workers that die.** A worker counts toward the fair share of each grant (a batch is
at most ``capacity / live workers``) from its first request until it is reported lost
(``worker_lost``) or has not asked for two leases. Its share is reclaimed at once when
it is reported lost, and what it still held is written off when the lease ends: it may
have spent it before dying, so granting it again could exceed the limit.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import msgspec

from writ_async.llm.limits import TokenBucket

_EPSILON = 1e-9


class Grant(msgspec.Struct, frozen=True):
    """What a worker may spend now, within its lease; ``retry_in`` (seconds) when nothing
    was granted, and ``paused_for`` when a cluster-wide pause (a 429) is still ahead."""

    requests: int
    tokens: int
    retry_in: float = 0.0
    paused_for: float = 0.0


class BudgetStatistics(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: str
    grants: int
    granted_requests: int
    granted_tokens: int
    refused: int  # asks answered with nothing (empty bucket or pause)
    pauses: int
    live_workers: int
    lost_workers: int
    written_off_requests: int  # held by lost workers at the time they were lost


@dataclass(slots=True)
class _Endpoint:
    requests: TokenBucket | None
    tokens: TokenBucket | None
    paused_until: float = -math.inf
    seen: dict[str, float] = field(default_factory=dict)  # worker -> last ask
    held: dict[str, deque[tuple[float, int, int]]] = field(default_factory=dict)
    grants: int = 0
    granted_requests: int = 0
    granted_tokens: int = 0
    refused: int = 0
    pauses: int = 0
    written_off: int = 0


class BudgetLedger:
    """The budgets of every rate-limited endpoint; see the module docstring.

    ``limits`` maps an endpoint name to its (requests per window, tokens per window),
    either None for no limit.
    """

    def __init__(self, limits: Mapping[str, tuple[float | None, float | None]], *,
                 window: float = 60.0, lease: float = 1.0, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if lease <= 0 or window <= 0:
            raise ValueError(f"need window > 0 and lease > 0, got {window}, {lease}")
        self.lease, self.window = lease, window
        self.clock = clock
        span = window + lease  # see "The guarantee"
        now = clock()
        self._endpoints = {
            name: _Endpoint(
                requests=None if rpm is None else TokenBucket(rpm, span, burst, now),
                tokens=None if tpm is None else TokenBucket(tpm, span, burst, now))
            for name, (rpm, tpm) in limits.items()
        }
        self._lost: set[str] = set()

    def grant(self, endpoint: str, worker: str, requests: int, tokens: int,
              min_tokens: int = 0) -> Grant:
        """Up to ``requests`` requests and ``tokens`` tokens for ``worker``; the tokens at
        least ``min_tokens`` (what its first waiting request needs) or none at all."""
        ep = self._endpoints[endpoint]
        now = self.clock()
        if worker in self._lost:  # a worker declared dead that still asks: nothing
            return Grant(0, 0, retry_in=math.inf)
        ep.seen[worker] = now
        if ep.paused_until > now:
            ep.refused += 1
            wait = ep.paused_until - now
            return Grant(0, 0, retry_in=wait, paused_for=wait)
        live = sum(1 for t in ep.seen.values() if now - t <= 2 * self.lease)
        granted_r, granted_t = max(0, requests), max(0, tokens)
        wait = 0.0
        if ep.requests is not None:
            bucket = ep.requests
            bucket.refill(now)
            available = math.floor(bucket.level + _EPSILON)
            if available < 1:
                wait = bucket.due(1, now) - now
            share = max(1, math.floor(bucket.capacity / max(live, 1)))
            granted_r = min(granted_r, available, share)
        if ep.tokens is not None and not wait:
            bucket = ep.tokens
            bucket.refill(now)
            need = min(max(min_tokens, 0), bucket.capacity)  # larger: when the bucket is full
            if bucket.level + _EPSILON < need:
                wait = bucket.due(need, now) - now
            else:
                share = max(1, math.floor(bucket.capacity / max(live, 1)))
                granted_t = max(min_tokens, min(granted_t, math.floor(bucket.level), share))
        if wait or (granted_r <= 0 and granted_t <= 0):
            ep.refused += 1
            return Grant(0, 0, retry_in=max(wait, 0.0))
        if ep.requests is not None:
            ep.requests.adjust(granted_r)
        if ep.tokens is not None:
            ep.tokens.adjust(granted_t)
        held = ep.held.setdefault(worker, deque())
        while held and held[0][0] <= now:
            held.popleft()
        held.append((now + self.lease, granted_r, granted_t))
        ep.grants += 1
        ep.granted_requests += granted_r
        ep.granted_tokens += granted_t
        return Grant(granted_r, granted_t)

    def pause(self, endpoint: str, seconds: float) -> None:
        """The endpoint answered 429 with ``retry-after: seconds``: nobody sends till then."""
        ep = self._endpoints[endpoint]
        until = self.clock() + max(seconds, 0.0)
        if until > ep.paused_until:
            ep.paused_until = until
            ep.pauses += 1

    def sync(self, endpoint: str, remaining_requests: int | None, remaining_tokens: int | None,
             reset_requests_s: float | None, reset_tokens_s: float | None) -> None:
        """Clamp the buckets to the endpoint's ``x-ratelimit-*`` view; never raise them."""
        ep = self._endpoints[endpoint]
        now = self.clock()
        for bucket, remaining, reset in ((ep.requests, remaining_requests, reset_requests_s),
                                         (ep.tokens, remaining_tokens, reset_tokens_s)):
            if bucket is None:
                continue
            bucket.refill(now)
            bucket.clamp(remaining, reset, self.window)

    def worker_lost(self, worker: str) -> int:
        """``worker`` died: its share goes to the others now; what it held (requests,
        returned) is written off, never granted again. Its later asks get nothing."""
        self._lost.add(worker)
        now = self.clock()
        written_off = 0
        for ep in self._endpoints.values():
            ep.seen.pop(worker, None)
            held = ep.held.pop(worker, deque())
            lost = sum(r for until, r, _ in held if until > now)
            ep.written_off += lost
            written_off += lost
        return written_off

    def statistics(self) -> list[BudgetStatistics]:
        now = self.clock()
        return [BudgetStatistics(
            endpoint=name, grants=ep.grants, granted_requests=ep.granted_requests,
            granted_tokens=ep.granted_tokens, refused=ep.refused, pauses=ep.pauses,
            live_workers=sum(1 for t in ep.seen.values() if now - t <= 2 * self.lease),
            lost_workers=len(self._lost), written_off_requests=ep.written_off,
        ) for name, ep in self._endpoints.items()]
