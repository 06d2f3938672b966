"""Admission control for one model endpoint: request/token rate limits and adaptive concurrency.

Thousands of coroutines call ``acquire`` before each request, so both limiters sit on plain
asyncio futures in a deque (a contended acquire costs one future, an uncontended one none;
anyio's CapacityLimiter measured ~20x slower uncontended) and never poll. Both are FIFO.

``RateLimiter`` keeps two continuously refilled buckets, requests (cost 1 each) and tokens
(the caller's estimate, ``max(max_tokens, prompt estimate)`` as OpenAI counts it). Let
``A`` be a bucket's amount per ``window`` (W). The guarantee, for every half-open interval
``[s, s + W)``, on the costs admitted in it (net of refunds; ``pause_until``, ``sync`` and
extra debits only ever lower it):

* ``burst=None`` (the default, the provider's own model): capacity ``A``, refill ``A / W``.
  Admitted cost < ``2A`` (at most ``2A - 1`` requests for integer ``A``): a full bucket
  plus one window of refill. Long-run rate ``A`` per window.
* ``burst=b`` seconds (strict): capacity ``C = max(1, A * b / W)``, refill
  ``(floor(A) + 1 - C) / W``. Admitted cost <= ``floor(A)``, exactly the limit, for integer
  costs <= ``C`` (always true of requests). Long-run rate ``floor(A) + 1 - C`` per window,
  >= ``A * (1 - b / W)`` for integer ``A``: >= 98% of the limit with ``b = 1`` and a minute
  window. Traffic never bursts beyond ``b`` seconds' worth, which also suits a provider
  that enforces per second (60,000/min as 1,000/s). Recommended for the pool: ``burst=1.0``.
  When both limits bind at once, each bucket's small reserve spills while the head waits
  for the other: measured ~92% of the tighter limit instead of ~98%.

Proof sketch: before the last admission ``n`` of the window the bucket held at least
``min(c_n, C)``, so ``sum(c) <= level(s) + refill * (a_n - s) + c_n - min(c_n, C) <
C + refill * W`` when ``c_n <= C``. A request costing more than ``C`` is admitted when the
bucket is full (it could never fit otherwise) and may exceed the bound by ``c_n - C``.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Literal, Protocol

import msgspec

__all__ = ["BudgetFeedback", "ConcurrencyLimiter", "ConcurrencyStatistics", "GrantedRateLimiter",
           "Outcome", "RateLimiter", "RateLimiterStatistics", "Ticket", "TokenBucket",
           "parse_reset"]

# Float noise: a timer fires at `now + deficit / rate`, and refilling to that instant can
# land a hair short of the cost. Treat deficits this small (relative) as paid.
_EPSILON = 1e-9
# uvloop rounds timer delays to whole milliseconds and can fire up to ~1 ms early; never
# arming shorter keeps an early fire from becoming a busy re-arm loop. Lateness costs no
# throughput: the bucket keeps filling and the batch behind the head is admitted together.
_MIN_DELAY = 1e-3


class TokenBucket:
    __slots__ = ("amount", "capacity", "level", "rate", "stamp")

    def __init__(self, amount: float, window: float, burst: float | None, now: float) -> None:
        if amount <= 0:
            raise ValueError(f"rate limit must be positive, got {amount}")
        self.amount = amount  # per window, as configured (the server's capacity)
        if burst is None:
            self.capacity, self.rate = amount, amount / window
        else:
            if amount < 1:
                raise ValueError(f"a strict bucket needs at least 1 per window, got {amount}")
            self.capacity = max(1.0, amount * burst / window)
            self.rate = (math.floor(amount) + 1 - self.capacity) / window
        self.level = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def due(self, cost: float, now: float) -> float:
        """When ``cost`` can be paid (the bucket is refilled to ``now``)."""
        need = min(cost, self.capacity)  # bigger than capacity: pay when full
        deficit = need - self.level
        if deficit <= _EPSILON * max(need, 1.0):
            return now
        return math.inf if self.rate == 0 else now + deficit / self.rate  # 0: only a credit

    @classmethod
    def granted(cls, now: float) -> TokenBucket:
        """An empty bucket that only credits fill (``GrantedRateLimiter``)."""
        bucket = cls.__new__(cls)
        bucket.amount, bucket.capacity, bucket.rate = math.inf, math.inf, 0.0
        bucket.level, bucket.stamp = 0.0, now
        return bucket

    def clamp(self, remaining: float | None, reset_s: float | None, window: float) -> None:
        """Lower the level to what the server's rate-limit headers say is left: at most
        ``remaining``, and at most the share of the window already elapsed when the server's
        own window resets in ``reset_s``. Never raises the level: headers only tighten."""
        ceiling = self.level
        if remaining is not None:
            ceiling = min(ceiling, remaining)
        if reset_s is not None:
            ceiling = min(ceiling, self.amount * (1.0 - reset_s / window))
        self.level = ceiling

    def adjust(self, delta: float) -> None:
        """Debit ``delta`` (negative: a credit, which never overfills the bucket)."""
        self.level = self.level - delta if delta > 0 else min(self.capacity, self.level - delta)


class RateLimiterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    requests_available: float | None
    requests_capacity: float | None
    tokens_available: float | None
    tokens_capacity: float | None
    waiting: int
    admitted: int
    refunded: int
    paused_until: float | None  # None unless a pause is still ahead
    timer_due: float | None  # the single wake-up timer, when armed


class Ticket:
    """One admission's debit: 1 request and ``tokens`` tokens, adjustable afterwards."""

    __slots__ = ("_limiter", "_refunded", "admitted_at", "tokens")

    def __init__(self, limiter: RateLimiter, tokens: int, admitted_at: float) -> None:
        self._limiter = limiter
        self._refunded = False
        self.tokens = tokens
        self.admitted_at = admitted_at

    def reconcile(self, actual_tokens: int) -> None:
        """Re-price the debit to the usage the response reported: refund the difference or
        debit the extra (the bucket may go negative, delaying later waiters). Ignored after
        ``refund`` (a request never sent has no usage)."""
        if not self._refunded:
            delta, self.tokens = actual_tokens - self.tokens, actual_tokens
            self._limiter._adjust(0, delta)

    def refund(self) -> None:
        """Return the whole debit, for a request that never reached the server. Idempotent."""
        if not self._refunded:
            self._refunded = True
            self._limiter._refunded += 1
            self._limiter._adjust(-1, -self.tokens)


class RateLimiter:
    """Request and token buckets with strictly FIFO admission (see the module docstring).

    FIFO means a big request at the head holds back the small ones behind it even when
    they would fit: otherwise a stream of small requests could starve it forever. One
    wake-up timer at most exists, armed for when the head can be paid; refunds and
    cancellations re-examine the head at once.
    """

    def __init__(self, requests_per_minute: float | None, tokens_per_minute: float | None, *,
                 clock: Callable[[], float] = time.monotonic, window: float = 60.0,
                 burst: float | None = None) -> None:
        if window <= 0 or (burst is not None and not 0 < burst <= window):
            raise ValueError(f"need window > 0 and 0 < burst <= window, got {window}, {burst}")
        self.clock = clock
        self.window = window
        now = clock()
        self._requests = None if requests_per_minute is None else TokenBucket(
            requests_per_minute, window, burst, now)
        self._tokens = None if tokens_per_minute is None else TokenBucket(
            tokens_per_minute, window, burst, now)
        self._waiters: deque[tuple[asyncio.Future[Ticket], int]] = deque()
        self._waiting = 0  # live waiters; the deque may also hold cancelled ones
        self._paused_until = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = math.inf
        self._admitted = 0
        self._refunded = 0

    async def acquire(self, tokens: int = 0) -> Ticket:
        """Wait for 1 request and ``tokens`` tokens, behind everyone who came earlier."""
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if not self._waiting:
            now = self.clock()
            self._refill(now)
            if self._due(tokens, now) <= now:
                return self._pay(tokens, now)
        future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self._waiters.append((future, tokens))
        self._waiting += 1
        if len(self._waiters) == 1:  # otherwise a timer is armed for the head already
            self._dispatch()
        try:
            return await future
        except asyncio.CancelledError:
            if not future.cancelled():  # granted, then cancelled before resuming
                future.result().refund()
            else:
                self._waiting -= 1
                if self._waiters and self._waiters[0][0] is future:
                    self._dispatch()  # the head left: the next may fit now
            raise

    def pause_until(self, t: float) -> None:
        """Admit nothing before ``t`` (on ``clock``), e.g. ``clock() + retry_after``."""
        if t > self._paused_until:
            self._paused_until = t
            if self._waiters:
                self._dispatch()

    def sync(self, remaining_requests: int | None, remaining_tokens: int | None,
             reset_requests_s: float | None, reset_tokens_s: float | None) -> None:
        """Clamp the buckets to the server's ``x-ratelimit-*`` view; never raise them.

        Per bucket: ``level = min(level, remaining, amount * (1 - reset / window))``. The
        last term reads ``reset`` as the server's time until full: a bucket of ``amount``
        refilling over ``window`` that is ``reset`` seconds from full holds that much. The
        headers predate requests admitted since, so they are only ever a ceiling.
        """
        now = self.clock()
        self._refill(now)
        for bucket, remaining, reset in ((self._requests, remaining_requests, reset_requests_s),
                                         (self._tokens, remaining_tokens, reset_tokens_s)):
            if bucket is not None:
                bucket.clamp(remaining, reset, self.window)
        if self._waiters:
            self._dispatch()

    def statistics(self) -> RateLimiterStatistics:
        now = self.clock()
        self._refill(now)
        req, tok = self._requests, self._tokens
        return RateLimiterStatistics(
            requests_available=None if req is None else req.level,
            requests_capacity=None if req is None else req.capacity,
            tokens_available=None if tok is None else tok.level,
            tokens_capacity=None if tok is None else tok.capacity,
            waiting=self._waiting, admitted=self._admitted, refunded=self._refunded,
            paused_until=self._paused_until if self._paused_until > now else None,
            timer_due=None if self._timer is None else self._timer_due,
        )

    def __repr__(self) -> str:
        s = self.statistics()
        parts = [f"{name}={avail:.1f}/{cap:g}" for name, avail, cap in (
            ("requests", s.requests_available, s.requests_capacity),
            ("tokens", s.tokens_available, s.tokens_capacity)) if avail is not None]
        paused = f" paused_until={s.paused_until:.3f}" if s.paused_until is not None else ""
        return (f"<RateLimiter {' '.join(parts) or 'unlimited'} waiting={s.waiting} "
                f"admitted={s.admitted} refunded={s.refunded}{paused}>")

    # -- internals -------------------------------------------------------------------------

    def _refill(self, now: float) -> None:
        if self._requests is not None:
            self._requests.refill(now)
        if self._tokens is not None:
            self._tokens.refill(now)

    def _due(self, tokens: int, now: float) -> float:
        due = max(now, self._paused_until)
        if self._requests is not None:
            due = max(due, self._requests.due(1, now))
        if self._tokens is not None:
            due = max(due, self._tokens.due(tokens, now))
        return due

    def _pay(self, tokens: int, now: float) -> Ticket:
        if self._requests is not None:
            self._requests.adjust(1)
        if self._tokens is not None:
            self._tokens.adjust(tokens)
        self._admitted += 1
        return Ticket(self, tokens, now)

    def _adjust(self, requests: int, tokens: int) -> None:
        self._refill(self.clock())
        if self._requests is not None and requests:
            self._requests.adjust(requests)
        if self._tokens is not None and tokens:
            self._tokens.adjust(tokens)
        if self._waiters:
            self._dispatch()  # a credit may pay the head now; a debit moves its due time

    def _dispatch(self) -> None:
        """Admit from the head while it can be paid, then arm the timer for the new head."""
        now = self.clock()
        self._refill(now)
        waiters = self._waiters
        while waiters:
            future, tokens = waiters[0]
            if future.done():  # cancelled while queued; its owner accounts for it
                waiters.popleft()
                continue
            due = self._due(tokens, now)
            if due > now:
                self._arm(due, now)
                return
            waiters.popleft()
            self._waiting -= 1
            future.set_result(self._pay(tokens, now))
        if self._timer is not None:
            self._timer.cancel()
            self._timer, self._timer_due = None, math.inf

    def _arm(self, due: float, now: float) -> None:
        if math.isinf(due):
            return  # a granted budget with nothing left: only a credit can pay the head
        if self._timer is not None:
            if self._timer_due <= due:
                return  # fires no later than needed; it re-examines the head then
            self._timer.cancel()
        delay = max(due - now, _MIN_DELAY)
        self._timer_due = now + delay
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_due = None, math.inf
        self._dispatch()


class BudgetFeedback(Protocol):
    """Who hands out a ``GrantedRateLimiter``'s budget, told what the endpoint said."""

    def paused(self, seconds: float) -> None:
        """A 429 asked for no requests during the next ``seconds``."""

    def synced(self, remaining_requests: int | None, remaining_tokens: int | None,
               reset_requests_s: float | None, reset_tokens_s: float | None) -> None:
        """The endpoint's ``x-ratelimit-*`` view (see ``RateLimiter.sync``)."""


class GrantedRateLimiter(RateLimiter):
    """A ``RateLimiter`` whose budget is granted in batches by someone else (e.g. one
    budget shared by many processes), not refilled by the clock.

    Admission, FIFO order, tickets, refunds and pauses are ``RateLimiter``'s. ``credit``
    adds a granted batch, to be spent before its ``until`` (on ``clock``): at every
    admission, what is left beyond the batches still valid is dropped (spending is
    counted oldest batch first), so nothing is spent after its lease. ``wanted`` says how
    many requests wait and what the first needs. A 429's pause and the ``x-ratelimit-*``
    headers also go to ``feedback``, so the budget's owner can apply them everywhere;
    ``pause_local`` applies one learned from there.
    """

    def __init__(self, *, requests: bool, tokens: bool, feedback: BudgetFeedback | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(None, None, clock=clock)
        now = clock()
        self._requests = TokenBucket.granted(now) if requests else None
        self._tokens = TokenBucket.granted(now) if tokens else None
        self._batches: deque[tuple[float, int, int]] = deque()  # (until, requests, tokens)
        self.feedback = feedback

    def credit(self, requests: int, tokens: int, until: float = math.inf) -> None:
        """A granted batch, valid before ``until``: admit whoever it pays for."""
        self._batches.append((until, requests, tokens))
        self._adjust(-requests, -tokens)

    def clamp(self, requests: float, tokens: float) -> None:
        """Keep at most ``requests`` and ``tokens`` of what is left."""
        for bucket, ceiling in ((self._requests, requests), (self._tokens, tokens)):
            if bucket is not None:
                bucket.clamp(ceiling, None, self.window)

    def _refill(self, now: float) -> None:
        batches = self._batches
        if batches and batches[0][0] <= now:
            while batches and batches[0][0] <= now:
                batches.popleft()
            self.clamp(sum(b[1] for b in batches), sum(b[2] for b in batches))

    def levels(self) -> tuple[float, float]:
        """What is left to spend: requests and tokens (0 for a budget not limited)."""
        return (0.0 if self._requests is None else self._requests.level,
                0.0 if self._tokens is None else self._tokens.level)

    def wanted(self) -> tuple[int, int]:
        """Live waiters, and the tokens of the first of them (the head must be paid whole)."""
        head = next((tokens for future, tokens in self._waiters if not future.done()), 0)
        return self._waiting, head

    def pause_until(self, t: float) -> None:
        super().pause_until(t)
        if self.feedback is not None:
            self.feedback.paused(t - self.clock())

    def pause_local(self, t: float) -> None:
        """A pause the budget's owner learned of elsewhere: not reported back."""
        super().pause_until(t)

    def sync(self, remaining_requests: int | None, remaining_tokens: int | None,
             reset_requests_s: float | None, reset_tokens_s: float | None) -> None:
        # The server's remaining counts bound this share too; the refill view is global.
        self.clamp(math.inf if remaining_requests is None else remaining_requests,
                   math.inf if remaining_tokens is None else remaining_tokens)
        if self.feedback is not None:
            self.feedback.synced(remaining_requests, remaining_tokens, reset_requests_s,
                                 reset_tokens_s)


_DURATION = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|ms|h|m|s)")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str) -> float | None:
    """Seconds in an ``x-ratelimit-reset-*`` value: a Go-style duration (``"20ms"``,
    ``"6m0s"``, ``"1h2m3.5s"``) or a plain number of seconds; None when unreadable."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        if not re.fullmatch(f"(?:{_DURATION.pattern})+", text):
            return None
        seconds = sum(float(n) * _UNIT[unit] for n, unit in _PART.findall(text))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# -- adaptive concurrency ------------------------------------------------------------------

Outcome = Literal["success", "overload", "neutral"]
_OUTCOMES = frozenset(("success", "overload", "neutral"))


class ConcurrencyStatistics(msgspec.Struct, frozen=True, kw_only=True):
    limit: float  # the AIMD value; ``permits`` is what is admitted
    permits: int
    in_flight: int
    waiting: int
    admitted: int
    successes: int
    overloads: int
    decreases: int


class ConcurrencyLimiter:
    """An AIMD cap on in-flight requests, FIFO.

    ``release("success")`` adds ``increase / limit`` (+``increase`` per ``limit`` successes)
    but only while the cap is what holds traffic back (all permits in use or someone
    waiting): an idle client would otherwise drift to ``maximum`` and hit the server with
    it the moment load arrives (TCP's cwnd-limited rule). ``release("overload")``
    multiplies by ``decrease_factor``, at most once per window of in-flight requests: the
    calls in flight at a decrease were sent under the old limit, so the next ``in_flight``
    releases cannot decrease it again and N simultaneous failures are one congestion
    event, not N halvings. Shrinking never cancels anything; it admits no one until
    ``in_flight`` drops below the new cap.
    """

    def __init__(self, initial: int, *, minimum: int = 1, maximum: int = 4096,
                 increase: float = 1.0, decrease_factor: float = 0.5) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError(f"need 1 <= minimum <= initial <= maximum, got "
                             f"{minimum}, {initial}, {maximum}")
        if increase <= 0 or not 0 < decrease_factor < 1:
            raise ValueError("need increase > 0 and 0 < decrease_factor < 1")
        self.minimum, self.maximum = minimum, maximum
        self.increase, self.decrease_factor = increase, decrease_factor
        self._limit = float(initial)
        self._permits = initial
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._waiting = 0
        self._recovery = 0  # releases left before another decrease may happen
        self._admitted = self._successes = self._overloads = self._decreases = 0

    async def acquire(self) -> None:
        if not self._waiting and self._in_flight < self._permits:
            self._in_flight += 1
            self._admitted += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        self._waiting += 1
        self._wake()  # a permit may be free while a cancelled waiter is still counted
        try:
            await future
        except asyncio.CancelledError:
            if future.cancelled():
                self._waiting -= 1
            else:  # granted, then cancelled before resuming: the permit is ours to return
                self._in_flight -= 1
                self._wake()
            raise

    def release(self, outcome: Outcome = "neutral") -> None:
        if self._in_flight <= 0:
            raise RuntimeError("release() without a matching acquire()")
        if outcome not in _OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        limited = self._in_flight >= self._permits or self._waiting > 0
        exempt = self._recovery > 0  # sent before the last decrease
        self._in_flight -= 1
        if exempt:
            self._recovery -= 1
        if outcome == "success":
            self._successes += 1
            if limited:
                self._set_limit(min(self.maximum, self._limit + self.increase / self._limit))
        elif outcome == "overload":
            self._overloads += 1
            if not exempt:
                self._decreases += 1
                self._recovery = self._in_flight
                self._set_limit(max(self.minimum, self._limit * self.decrease_factor))
        self._wake()

    @property
    def limit(self) -> float:
        return self._limit

    def statistics(self) -> ConcurrencyStatistics:
        return ConcurrencyStatistics(
            limit=self._limit, permits=self._permits, in_flight=self._in_flight,
            waiting=self._waiting, admitted=self._admitted, successes=self._successes,
            overloads=self._overloads, decreases=self._decreases,
        )

    def __repr__(self) -> str:
        return (f"<ConcurrencyLimiter limit={self._limit:.2f} in_flight={self._in_flight} "
                f"waiting={self._waiting} admitted={self._admitted} "
                f"decreases={self._decreases}>")

    def _set_limit(self, limit: float) -> None:
        self._limit = limit
        self._permits = max(self.minimum, int(limit))

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self._in_flight < self._permits:
            future = waiters.popleft()
            if future.done():  # cancelled while queued
                continue
            future.set_result(None)
            self._waiting -= 1
            self._in_flight += 1
            self._admitted += 1
