"""Admission control, on virtual time: no test waits on the wall clock or asserts on it.

``virtual_time()`` puts the running loop on a virtual timeline: ``loop.time()`` reads it, and
whenever the loop would sleep until its next timer, the timeline jumps there instead. The
limiters get ``clock=vt.time`` and schedule their timer on the same loop, so every wake-up
happens at exactly the virtual instant the limiter asked for.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from writ_async.llm.limits import ConcurrencyLimiter, RateLimiter, Ticket, parse_reset

# Admissions the limiter schedules for the same instant as a window boundary can land a few
# ulps either side of it; windows are compared with this slack (virtual seconds).
FLOAT_SLACK = 1e-6


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


@contextlib.contextmanager
def virtual_time() -> Iterator[VirtualClock]:
    loop = asyncio.get_running_loop()
    selector: Any = getattr(loop, "_selector", None)
    if selector is None:
        pytest.skip("virtual time needs asyncio's selector event loop")
    clock = VirtualClock()
    real_select = selector.select

    def select(timeout: float | None = None) -> Any:
        if timeout is None:  # no timer armed and nothing ready: a real loop would hang
            events = real_select(0)
            if not events:
                raise AssertionError("virtual time: every task waits and no timer is armed")
            return events
        clock.now += timeout  # sleep until the next timer: jump there
        return real_select(0)

    selector.select = select
    loop.time = clock.time  # type: ignore[method-assign]
    try:
        yield clock
    finally:
        del selector.select
        del loop.time


async def settle() -> None:
    """Let every ready callback and woken task run, without moving virtual time."""
    for _ in range(10):
        await asyncio.sleep(0)


async def sleep_until(vt: VirtualClock, t: float) -> None:
    await asyncio.sleep(t - vt.now)


def live_timers() -> int:
    loop: Any = asyncio.get_running_loop()
    return sum(1 for handle in loop._scheduled if not handle.cancelled())


# -- parse_reset --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("1s", 1.0), ("6m0s", 360.0), ("20ms", 0.02), ("1h2m3.5s", 3723.5), ("0.5s", 0.5),
    ("2", 2.0), ("0.25", 0.25), (" 7s ", 7.0), ("1m30.5s", 90.5), ("500us", 5e-4),
    ("0s", 0.0), ("", None), ("soon", None), ("5x", None), ("-1", None), ("1s garbage", None),
    ("inf", None), ("nan", None),
])
def test_parse_reset(text: str, seconds: float | None) -> None:
    assert parse_reset(text) == (seconds if seconds is None else pytest.approx(seconds))


# -- RateLimiter: order, starvation, oversize -----------------------------------------------


async def drained_tokens(vt: VirtualClock, **kw: Any) -> RateLimiter:
    """600 tokens per 60 s (10/s), bucket emptied at t=0."""
    limiter = RateLimiter(None, 600, clock=vt.time, **kw)
    await limiter.acquire(600)
    return limiter


@pytest.mark.asyncio
async def test_fifo_order_and_timing() -> None:
    with virtual_time() as vt:
        limiter = await drained_tokens(vt)
        admitted: list[tuple[int, float]] = []

        async def take(cost: int) -> None:
            await limiter.acquire(cost)
            admitted.append((cost, vt.now))

        costs = [50, 5, 200, 1, 30]
        async with asyncio.TaskGroup() as tg:
            for cost in costs:
                tg.create_task(take(cost))
                await settle()  # each enqueues before the next arrives
        assert [c for c, _ in admitted] == costs
        expected = [5.0, 5.5, 25.5, 25.6, 28.6]
        assert [t for _, t in admitted] == pytest.approx(expected, abs=FLOAT_SLACK)


@pytest.mark.asyncio
async def test_big_request_is_not_starved_by_small_ones() -> None:
    with virtual_time() as vt:
        limiter = await drained_tokens(vt)
        order: list[str] = []

        async def take(name: str, cost: int) -> None:
            await limiter.acquire(cost)
            order.append(name)

        async with asyncio.TaskGroup() as tg:
            big = tg.create_task(take("big", 300))
            await settle()
            for i in range(120):  # a small request every 0.5 s, each would fit on its own
                tg.create_task(take(f"small{i}", 1))
                await asyncio.sleep(0.5)
                if i == 10:
                    assert not big.done()
        assert order[0] == "big"
        assert order[1:] == [f"small{i}" for i in range(120)]


@pytest.mark.asyncio
async def test_request_bigger_than_capacity_is_admitted_when_full() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(None, 600, clock=vt.time)
        await limiter.acquire(100)
        await limiter.acquire(1000)  # capacity 600: waits for a full bucket, then overdraws
        assert vt.now == pytest.approx(10.0)
        assert limiter.statistics().tokens_available == pytest.approx(-400)
        await limiter.acquire(1)  # the debt delays whoever comes next
        assert vt.now == pytest.approx(50.1)


# -- RateLimiter: reconcile and refund ------------------------------------------------------


@pytest.mark.asyncio
async def test_reconcile_refunds_or_debits_the_difference() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(60, 600, clock=vt.time)
        ticket = await limiter.acquire(100)
        assert limiter.statistics().tokens_available == 500
        ticket.reconcile(40)
        assert limiter.statistics().tokens_available == 560
        ticket.reconcile(250)  # relative to the current debit (40): 210 more
        assert limiter.statistics().tokens_available == 350
        ticket.refund()  # returns all of it and the request; never beyond capacity
        ticket.refund()
        ticket.reconcile(999)  # a refunded request has no usage: ignored
        stats = limiter.statistics()
        assert (stats.tokens_available, stats.requests_available) == (600, 60)
        assert stats.refunded == 1


@pytest.mark.asyncio
async def test_extra_debit_goes_negative_and_delays_waiters() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(None, 600, clock=vt.time)
        ticket = await limiter.acquire(600)
        waiter = asyncio.create_task(limiter.acquire(10))
        await settle()  # due at t=1
        ticket.reconcile(900)
        assert limiter.statistics().tokens_available == pytest.approx(-300)
        await waiter
        assert vt.now == pytest.approx(31.0)


@pytest.mark.asyncio
async def test_refund_wakes_the_head_at_once() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(None, 600, clock=vt.time)
        unsent = await limiter.acquire(600)
        waiter = asyncio.create_task(limiter.acquire(50))
        await asyncio.sleep(1.0)
        unsent.refund()
        await settle()
        assert waiter.done() and vt.now == 1.0
        assert limiter.statistics().tokens_available == pytest.approx(600 - 50)


# -- RateLimiter: cancellation --------------------------------------------------------------


@pytest.mark.asyncio
async def test_cancelled_head_consumes_nothing_and_next_proceeds_at_once() -> None:
    with virtual_time() as vt:
        limiter = await drained_tokens(vt)
        head = asyncio.create_task(limiter.acquire(300))  # due at t=30
        await settle()
        second = asyncio.create_task(limiter.acquire(10))  # behind it: t=31
        await asyncio.sleep(5.0)
        head.cancel()
        await settle()
        assert head.cancelled()
        assert second.done() and vt.now == 5.0  # 50 tokens were there; 10 taken
        stats = limiter.statistics()
        assert stats.tokens_available == pytest.approx(40)
        assert (stats.waiting, stats.admitted, stats.timer_due) == (0, 2, None)


@pytest.mark.asyncio
async def test_cancelled_middle_waiter_is_skipped() -> None:
    with virtual_time() as vt:
        limiter = await drained_tokens(vt)
        times: dict[str, float] = {}

        async def take(name: str, cost: int) -> None:
            await limiter.acquire(cost)
            times[name] = vt.now

        first = asyncio.create_task(take("first", 100))
        await settle()
        middle = asyncio.create_task(take("middle", 300))
        await settle()
        last = asyncio.create_task(take("last", 10))
        await asyncio.sleep(1.0)
        middle.cancel()
        await asyncio.gather(first, last)
        assert middle.cancelled()
        assert times == pytest.approx({"first": 10.0, "last": 11.0})
        assert limiter.statistics().waiting == 0


@pytest.mark.asyncio
async def test_granted_then_cancelled_gives_the_debit_back() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(None, 600, clock=vt.time)
        hold = await limiter.acquire(600)
        waiter = asyncio.create_task(limiter.acquire(100))
        await settle()
        hold.refund()  # grants the waiter synchronously ...
        waiter.cancel()  # ... which is cancelled before it resumes
        with pytest.raises(asyncio.CancelledError):
            await waiter
        stats = limiter.statistics()
        assert stats.tokens_available == 600
        assert (stats.refunded, stats.waiting) == (2, 0)


# -- RateLimiter: one timer ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_one_timer_for_a_thousand_waiters() -> None:
    with virtual_time() as vt:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(100, 5000, clock=vt.time, burst=1.0)
        rng = random.Random(7)
        armed = 0
        real_call_later = loop.call_later

        def call_later(delay: float, callback: Callable[[], object], *args: Any,
                       **kw: Any) -> asyncio.TimerHandle:
            nonlocal armed
            armed += 1
            return real_call_later(delay, callback, *args, **kw)

        loop.call_later = call_later  # type: ignore[method-assign,assignment]
        try:
            peak = 0

            async def take() -> None:
                nonlocal peak
                await limiter.acquire(rng.randint(1, 80))
                peak = max(peak, live_timers())

            tasks = [asyncio.create_task(take()) for _ in range(1000)]
            await settle()
            assert limiter.statistics().waiting > 900
            assert live_timers() == 1 and limiter._timer is not None
            for task in rng.sample(tasks, 100):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            del loop.call_later
        assert peak <= 1
        assert armed <= limiter.statistics().admitted  # a timer per wake-up, not per waiter
        stats = limiter.statistics()
        assert (stats.waiting, stats.timer_due, stats.admitted) == (0, None, 900)
        assert limiter._timer is None and live_timers() == 0


# -- RateLimiter: server feedback ---------------------------------------------------------


@pytest.mark.asyncio
async def test_pause_until_blocks_admission_until_then() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(60, None, clock=vt.time)
        limiter.pause_until(30.0)
        assert limiter.statistics().paused_until == 30.0
        assert "paused_until=30.000" in repr(limiter)
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(10.0)
        limiter.pause_until(40.0)  # a later retry-after extends the pause
        limiter.pause_until(20.0)  # an earlier one never shortens it
        await waiter
        assert vt.now == 40.0
        assert limiter.statistics().paused_until is None


@pytest.mark.asyncio
async def test_sync_clamps_down_to_the_server_remaining() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(60, 600, clock=vt.time)  # 1 request/s, 10 tokens/s
        limiter.sync(2, 1000, None, None)  # tokens: never raised beyond the local level
        stats = limiter.statistics()
        assert (stats.requests_available, stats.tokens_available) == (2, 600)
        await limiter.acquire()
        await limiter.acquire()
        await limiter.acquire()
        assert vt.now == pytest.approx(1.0)


@pytest.mark.asyncio
async def test_sync_reads_reset_as_time_until_full() -> None:
    with virtual_time() as vt:
        limiter = RateLimiter(None, 600, clock=vt.time)
        limiter.sync(None, None, None, 15.0)  # 15 s from full: 600 * (1 - 15/60) left
        assert limiter.statistics().tokens_available == pytest.approx(450)
        strict = RateLimiter(None, 600, clock=vt.time, burst=1.0)  # capacity 10
        strict.sync(None, 500, None, 15.0)
        assert strict.statistics().tokens_available == pytest.approx(10)
        strict.sync(None, None, None, 59.5)  # the server is nearly dry: 5 left
        assert strict.statistics().tokens_available == pytest.approx(5)


@pytest.mark.asyncio
async def test_sync_moves_a_waiting_head_later() -> None:
    with virtual_time() as vt:
        limiter = await drained_tokens(vt)
        waiter = asyncio.create_task(limiter.acquire(50))  # due at t=5
        await asyncio.sleep(1.0)
        limiter.sync(None, 0, None, None)  # the server says 0 left (we thought 10)
        await waiter
        assert vt.now == pytest.approx(6.0)


# -- RateLimiter: THE guarantee -----------------------------------------------------------


def max_in_any_window(times: list[float], costs: list[int], window: float) -> int:
    """Largest total cost admitted in any [s, s + window); s ranges over admission times
    (the maximum is always reached at one)."""
    prefix = [0]
    for cost in costs:
        prefix.append(prefix[-1] + cost)
    worst = 0
    for i, start in enumerate(times):
        end = bisect.bisect_left(times, start + window - FLOAT_SLACK)
        worst = max(worst, prefix[end] - prefix[i])
    return worst


@pytest.mark.asyncio
@pytest.mark.parametrize("burst", [None, 1.0], ids=["provider-bucket", "strict"])
@pytest.mark.parametrize("kind", ["requests", "tokens", "both"])
async def test_saturated_limiter_never_exceeds_the_window_and_reaches_95_percent(
        burst: float | None, kind: str) -> None:
    window, windows, callers = 60.0, 10, 400
    rpm, tpm = 120, 6000  # tokens per request 1..100 average ~50: both limits bind
    with virtual_time() as vt:
        limiter = RateLimiter(rpm if kind != "tokens" else None,
                              tpm if kind != "requests" else None,
                              clock=vt.time, window=window, burst=burst)
        rng = random.Random(f"{burst}{kind}")
        times: list[float] = []
        costs: list[int] = []
        end = window * windows

        async def caller() -> None:
            while True:
                cost = rng.randint(1, 100)
                ticket = await limiter.acquire(cost)
                times.append(vt.now)
                costs.append(cost)
                if rng.random() < 0.1:  # a request that was never sent
                    ticket.refund()
                    times.pop()
                    costs.pop()

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(end), asyncio.TaskGroup() as tg:
                for _ in range(callers):
                    tg.create_task(caller())
        assert limiter.statistics().waiting == 0 and limiter._timer is None
    assert times == sorted(times)
    achieved_requests = sum(t < end for t in times) / windows
    achieved_tokens = sum(c for t, c in zip(times, costs, strict=True) if t < end) / windows
    worst_requests = max_in_any_window(times, [1] * len(times), window)
    worst_tokens = max_in_any_window(times, costs, window)
    # the bound per bucket: strict: floor(amount); provider bucket: < capacity + amount
    if kind != "tokens":
        assert worst_requests <= (rpm if burst else 2 * rpm - 1)
    if kind != "requests":
        assert worst_tokens <= (tpm if burst else 2 * tpm - 1)
    requests_share = achieved_requests / rpm if kind != "tokens" else 0.0
    tokens_share = achieved_tokens / tpm if kind != "requests" else 0.0
    if kind == "both":
        # Demand here sits on both limits at once (~50 tokens a request): strict buckets
        # hold only 1 s of reserve each, so whichever is not binding at the moment spills
        # refill while the head waits for the other; the tighter one still gets > 90%.
        assert max(requests_share, tokens_share) >= (0.9 if burst else 1.0)
    if kind == "requests":
        assert requests_share >= 0.95
        if burst:  # the bound is tight, not merely safe
            assert worst_requests == rpm
    if kind == "tokens":
        assert tokens_share >= 0.95
        if burst:
            assert worst_tokens >= 0.98 * tpm


# -- ConcurrencyLimiter -------------------------------------------------------------------


async def hold(limiter: ConcurrencyLimiter, n: int) -> None:
    for _ in range(n):
        await limiter.acquire()


@pytest.mark.asyncio
async def test_additive_increase_while_saturated_up_to_maximum() -> None:
    limiter = ConcurrencyLimiter(4, maximum=6)
    await hold(limiter, 4)
    for _ in range(4):  # +1/limit per success: about +1 per `limit` successes
        limiter.release("success")
        await limiter.acquire()
    assert 4.9 < limiter.limit < 5.0
    limiter.release("success")
    assert limiter.statistics().permits == 5
    for _ in range(100):
        await hold(limiter, limiter.statistics().permits - limiter.statistics().in_flight)
        limiter.release("success")
    assert limiter.limit == 6


@pytest.mark.asyncio
async def test_no_increase_when_the_limit_is_not_the_bottleneck() -> None:
    limiter = ConcurrencyLimiter(4)
    for _ in range(50):
        await limiter.acquire()
        limiter.release("success")
    assert limiter.limit == 4 and limiter.statistics().successes == 50


@pytest.mark.asyncio
async def test_one_decrease_per_window_of_in_flight_requests() -> None:
    limiter = ConcurrencyLimiter(16, minimum=2)
    await hold(limiter, 16)
    for _ in range(16):  # all sent under the old limit: one congestion event
        limiter.release("overload")
    stats = limiter.statistics()
    assert (stats.limit, stats.decreases, stats.overloads, stats.in_flight) == (8, 1, 16, 0)
    await hold(limiter, 3)  # sent after the decrease: their failure counts again
    limiter.release("overload")
    limiter.release("overload")
    limiter.release("overload")
    assert (limiter.limit, limiter.statistics().decreases) == (4, 2)
    for _ in range(5):
        await limiter.acquire()
        limiter.release("overload")
    assert limiter.limit == 2  # the minimum
    with pytest.raises(RuntimeError):
        limiter.release()


@pytest.mark.asyncio
async def test_shrinking_cancels_nothing_and_admits_below_the_new_limit() -> None:
    limiter = ConcurrencyLimiter(4)
    await hold(limiter, 4)
    waiter = asyncio.create_task(limiter.acquire())
    await settle()
    limiter.release("overload")  # 4 -> 2 with 3 still in flight
    limiter.release("neutral")
    await settle()
    assert not waiter.done() and limiter.statistics().in_flight == 2
    limiter.release("neutral")
    await settle()
    assert waiter.done()
    assert limiter.statistics().in_flight == 2
    assert "in_flight=2" in repr(limiter)


@pytest.mark.asyncio
async def test_waiters_are_served_in_arrival_order() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    order: list[int] = []

    async def take(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        limiter.release()

    async with asyncio.TaskGroup() as tg:
        for i in range(20):
            tg.create_task(take(i))
        await settle()
        limiter.release()
    assert order == list(range(20))


@pytest.mark.asyncio
async def test_granted_then_cancelled_returns_the_permit() -> None:
    limiter = ConcurrencyLimiter(1)
    await limiter.acquire()
    granted = asyncio.create_task(limiter.acquire())
    behind = asyncio.create_task(limiter.acquire())
    await settle()
    limiter.release()  # hands the permit to `granted` ...
    granted.cancel()  # ... cancelled before it resumes: `behind` must get it
    await settle()
    assert granted.cancelled() and behind.done()
    assert limiter.statistics().in_flight == 1
    limiter.release()
    stats = limiter.statistics()
    assert (stats.in_flight, stats.waiting) == (0, 0)


@pytest.mark.asyncio
async def test_cancellation_storm_never_leaks_permits() -> None:
    with virtual_time() as vt:
        limiter = ConcurrencyLimiter(3, maximum=8)
        rng = random.Random(11)
        outcomes = ["success", "overload", "neutral"]

        async def call() -> None:
            await limiter.acquire()
            try:
                await asyncio.sleep(rng.random())
            finally:
                limiter.release(rng.choice(outcomes))  # type: ignore[arg-type]

        tasks = [asyncio.create_task(call()) for _ in range(300)]
        for _ in range(150):
            await asyncio.sleep(rng.random() * 0.2)
            rng.choice(tasks).cancel()
            if rng.random() < 0.3:  # cancel right after a release hands a permit over
                await asyncio.sleep(0)
                rng.choice(tasks).cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert vt.now > 0
    stats = limiter.statistics()
    assert (stats.in_flight, stats.waiting) == (0, 0)
    assert sum(t.cancelled() for t in tasks) > 50


@pytest.mark.asyncio
async def test_statistics_are_frozen_records() -> None:
    with virtual_time() as vt:
        rate = RateLimiter(10, 100, clock=vt.time)
        ticket = await rate.acquire(5)
        assert isinstance(ticket, Ticket) and ticket.admitted_at == 0.0
        stats = rate.statistics()
        with pytest.raises(AttributeError):
            stats.admitted = 0  # type: ignore[misc]
        assert msgspec.to_builtins(stats)["tokens_available"] == 95
        assert repr(rate) == ("<RateLimiter requests=9.0/10 tokens=95.0/100 waiting=0 "
                              "admitted=1 refunded=0>")
    concurrency = ConcurrencyLimiter(2)
    with pytest.raises(AttributeError):
        concurrency.statistics().limit = 1  # type: ignore[misc]

@pytest.mark.asyncio
async def test_bad_arguments_are_refused() -> None:
    for bad in ({"requests_per_minute": 0}, {"burst": 0.0}, {"burst": 61.0},
                {"window": 0.0}, {"requests_per_minute": 0.5, "burst": 1.0}):
        with pytest.raises(ValueError):
            RateLimiter(**{"requests_per_minute": 10, "tokens_per_minute": None, **bad})
    with pytest.raises(ValueError):
        await RateLimiter(10, 100).acquire(-1)
    for args, kw in (((0,), {}), ((5,), {"minimum": 6}), ((5,), {"maximum": 4}),
                     ((5,), {"decrease_factor": 1.0}), ((5,), {"increase": 0.0})):
        with pytest.raises(ValueError):
            ConcurrencyLimiter(*args, **kw)
    limiter = ConcurrencyLimiter(2)
    await limiter.acquire()
    with pytest.raises(ValueError):
        limiter.release("bogus")  # type: ignore[arg-type]
