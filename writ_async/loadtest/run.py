"""One load-test run: schedule conversations, send their requests, measure, stop.

Load modes:

* **concurrency** — ``N`` conversations in flight, each started as soon as the last one
  of its slot ended (closed loop). A request's intended time is the moment it was ready.
* **rate** — new conversations arrive open-loop at ``R`` per second (constant spacing or
  Poisson), whatever the endpoint does. Arrival times are absolute (``t0 + k / R`` or a
  seeded cumulative exponential sum), never "sleep the gap after the last one", so error
  does not accumulate. A conversation is started a little ahead of its time (``lead``):
  it builds its first request, which the client encodes and puts on a connection, then
  leaves in a ``Gate``. The arrivals task sends it at its time, itself, with one write:
  it sleeps until shortly before (event-loop timers are only good to about a
  millisecond) and yields to the loop for the rest. The first request of the
  conversation is intended at the arrival time, later ones when they are ready; every
  request records its send lag and its latencies from the intended time too (no
  coordinated omission).

A run has a warm-up (requests intended before it ends are recorded but not measured) and
a bound: a duration or a number of measured requests. Then no new request is sent;
requests in flight finish (up to ``drain_s``, then they are cancelled and counted). A
stop from outside (``LoadRun.interrupt``: Ctrl-C, SIGTERM) ends it the same way, early;
``LoadRun.cancel_in_flight`` then cuts the drain short. Every conversation runs in one
task group under one cancel scope (``LoadRun.in_flight_scope``), which the end of the
drain or ``cancel_in_flight`` cancels: no task outlives the run. A run whose first
``unreachable_after`` requests all failed to connect, none answered, stops too
(``UNREACHABLE``): nothing listens there, so waiting out the bound would only measure
refusals (and spin the client at full CPU).

The client watches itself: an event-loop probe every ``PROBE_S`` measures how late a
timer fires and how long one trip round the ready queue takes, and process CPU time is
sampled; the result is flagged as client-bound when the client, not the endpoint, was
the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter as _now
from typing import IO, Any, Literal

import msgspec

from writ_async.errors import ModelCallError, RateLimited, ToolCallParseFailure
from writ_async.llm.client import CallResult, Timeouts
from writ_async.llm.protocol import (
    Api,
    ChatRequest,
    ModelParams,
    ParseFailurePolicy,
    apply_params,
)
from writ_async.llm.retry import Retry, RetryPolicy, decide
from writ_async.loadtest.client import Gate, LoadClient, NotSent
from writ_async.loadtest.histogram import LogHistogram
from writ_async.loadtest.metrics import (
    Collector,
    ConversationRecord,
    Objectives,
    RequestRecord,
    error_class,
    record_encoder,
    request_id,
    tool_summary,
)
from writ_async.loadtest.traffic import Traffic
from writ_async.scopes import CancelScope
from writ_async.seeds import arrivals_rng, loadtest_rng

PROBE_S = 0.01  # event-loop probe period
CLIENT_CPU_LIMIT = 0.9  # fraction of one core above which the client is the bottleneck
CLIENT_LAG_LIMIT_MS = 5.0  # loop or send lag p99 above which the client is the bottleneck
UNREACHABLE_AFTER = 64  # this many requests failing to connect, none answered: stop
# Failures that say the endpoint cannot be reached at all (refused, reset before a
# response, no answer to the connect), unlike a 5xx or a 429 from a server that is there.
UNREACHABLE_ERRORS = frozenset({"connection", "timeout_connect"})


class LoadConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How to load the endpoint; ``traffic`` is given separately (it holds a domain)."""

    base_url: str  # an OpenAI base URL, e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    api: Api = "chat"  # "responses": OpenAI's Responses API (POST .../responses)
    stream: bool = True
    mode: Literal["concurrency", "rate"] = "concurrency"
    concurrency: int = 16  # conversations in flight (concurrency mode)
    rate: float = 10.0  # new conversations per second (rate mode)
    arrivals: Literal["constant", "poisson"] = "constant"
    max_conversations: int = 10_000  # rate mode: arrivals beyond this many live are dropped
    duration_s: float | None = None  # measured seconds after the warm-up ...
    requests: int | None = None  # ... or measured requests (the first bound reached wins)
    warmup_s: float = 0.0
    drain_s: float = 60.0
    retries: int = 0  # retries of a failed request (429, 5xx, ...); 0: count and move on
    objectives: Objectives = msgspec.field(default_factory=Objectives)
    first_token_timeout_s: float = 120.0
    total_timeout_s: float = 600.0
    seed: int = 0
    window_s: float | None = None  # time-series resolution (None: about 60 windows)
    spin_ms: float = 1.5  # rate mode: yield instead of sleeping this close to a send
    lead_ms: float = 10.0  # rate mode: start a conversation (and ready its request) this early
    ramp_s: float = 0.0  # concurrency mode: spread the first conversations over this long
    # request parameters per role (agent, user), as a config.toml gives them (--params)
    params: dict[str, ModelParams] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.duration_s is None and self.requests is None:
            raise ValueError("give a duration or a request count (or both)")
        # A bound that is no bound (nan, inf) or none at all (0, negative) is refused:
        # the run must end by itself, and a measured window of nothing means nothing.
        if self.duration_s is not None and not 0.0 < self.duration_s < math.inf:
            raise ValueError(f"duration must be a positive number of seconds, got "
                             f"{self.duration_s}")
        if self.requests is not None and self.requests < 1:
            raise ValueError(f"requests must be at least 1, got {self.requests}")
        if self.mode == "concurrency" and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.mode == "rate" and not self.rate > 0:
            raise ValueError("rate must be positive")

    @property
    def load(self) -> float:
        return float(self.concurrency) if self.mode == "concurrency" else self.rate


STOPPED = "stopped"  # the run's bound came before the conversation's end
CANCELLED = "cancelled"  # still running when the drain time ran out
INTERRUPTED = "interrupted"  # the stop reason of a run stopped from outside (a signal)
UNREACHABLE = "unreachable"  # the stop reason of a run whose endpoint cannot be reached


class _Stopped(Exception):
    """The run is over: a conversation must not send another request."""


class _ConversationSender:
    """The pool-shaped sender one conversation's participants call; it also keeps the
    conversation's own tallies (``ConversationRecord``)."""

    __slots__ = ("attempts", "completion_tokens", "errors", "go", "index",
                 "last_end", "latency_ms", "measured", "prompt_tokens", "run",
                 "started", "ttft_count", "ttft_ms", "turns")

    def __init__(self, run: LoadRun, index: int, go: Gate | None) -> None:
        self.run, self.index, self.go = run, index, go
        self.turns = 0  # requests sent so far (the next one's turn index)
        self.attempts = self.errors = self.prompt_tokens = self.completion_tokens = 0
        self.latency_ms = self.ttft_ms = 0.0
        self.ttft_count = 0
        self.started: float | None = None  # the first request's intended send
        self.last_end: float | None = None
        self.measured: bool | None = None  # was its first request measured

    def tally(self, record: RequestRecord, end: float) -> None:
        self.attempts += record.attempts
        self.last_end = end
        if record.e2e_intended_ms is not None:
            self.latency_ms += record.e2e_intended_ms
        if not record.ok:
            self.errors += 1
            return
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        if record.ttft_intended_ms is not None:
            self.ttft_ms += record.ttft_intended_ms
            self.ttft_count += 1

    def record(self, outcome: str, turns: int | None) -> ConversationRecord:
        run = self.run
        requests = self.turns
        duration = None
        if self.started is not None and self.last_end is not None:
            duration = (self.last_end - self.started) * 1000.0
        return ConversationRecord(
            conversation=self.index, step=run.step, outcome=outcome,
            completed=outcome not in (STOPPED, CANCELLED) and self.errors == 0 and requests > 0,
            turns=turns, requests=requests, attempts=self.attempts, errors=self.errors,
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            started=None if self.started is None else self.started - run.t0,
            duration_ms=duration, latency_ms=self.latency_ms,
            latency_per_request_ms=self.latency_ms / requests if requests else None,
            ttft_mean_ms=self.ttft_ms / self.ttft_count if self.ttft_count else None,
            warmup=not self.measured)

    def admit(self, intended: float) -> bool | None:
        """Whether the next request may go out at ``intended`` (None: the run is over),
        and if so whether it is measured; counts it."""
        run = self.run
        if intended >= run.t_end:
            run.stop("duration")  # the stopper's timer may not have fired yet
        if run.stopping:
            return None
        measured = intended >= run.measure_from
        if measured:
            run.sent_measured += 1
            if run.config.requests is not None and run.sent_measured >= run.config.requests:
                run.stop("requests")  # this one is the last
        if self.turns == 0:
            self.started, self.measured = intended, measured
            if measured:
                run.conversations_started += 1
        self.turns += 1
        run.in_flight += 1
        return measured

    def parse_failure_handling(self, role: str,
                               endpoint: str) -> tuple[ParseFailurePolicy, int]:
        """What the agent does with a tool call passed through as text (the pool's
        ``parse_failure_handling``, from ``--params``)."""
        return (self.run.config.params.get(role) or ModelParams()).parse_failure_handling()

    async def complete(self, role: str, request: ChatRequest) -> CallResult:
        run = self.run
        params = run.config.params.get(role)
        if params is not None:  # else as the traffic made it (the bytes of before)
            request = apply_params(request, params)
        gate = self.go
        turn = self.turns
        verdict: list[bool | None] = [None]
        if gate is not None:  # an open-loop arrival: the arrivals task sends it on time
            self.go = None
            intended = gate.intended

            def admit() -> bool:
                verdict[0] = self.admit(intended)
                return verdict[0] is not None

            gate.admit = admit
        else:
            intended = _now()
            verdict[0] = self.admit(intended)
            if verdict[0] is None:
                raise _Stopped
        attempt = 0
        first_sent = 0.0
        try:
            while True:
                attempt += 1
                rid = request_id(run.step, self.index, turn, attempt)
                try:
                    if gate is not None:
                        try:
                            result = await run.client.complete(request, rid, gate=gate)
                        except NotSent:
                            raise _Stopped from None
                        finally:
                            # not sent (it failed while being readied): no lag to charge
                            first_sent = gate.sent if gate.sent is not None else max(
                                intended, _now())
                            gate = None
                    else:
                        sent = _now()
                        if attempt == 1:
                            first_sent = sent
                        result = await run.client.complete(request, rid)
                except ModelCallError as error:
                    if verdict[0] is None:  # it failed while being readied (e.g. connect)
                        verdict[0] = self.admit(intended)
                        if verdict[0] is None:
                            raise _Stopped from None
                    if isinstance(error, RateLimited):
                        run.responses_429 += 1
                    if attempt <= run.config.retries:
                        decision = decide(run.retry_policy, error, attempt,
                                          _now() - first_sent, run.rng)
                        if isinstance(decision, Retry):
                            await asyncio.sleep(decision.delay)
                            continue
                    end = _now()
                    self.tally(run.finish(self.index, turn, role, intended, first_sent, end,
                                          None, error, attempt, bool(verdict[0]),
                                          bool(request.tools)), end)
                    raise
                end = _now()
                self.tally(run.finish(self.index, turn, role, intended, first_sent, end,
                                      result, None, attempt, bool(verdict[0]),
                                      bool(request.tools)), end)
                return result
        except asyncio.CancelledError:
            if verdict[0] is not None:
                run.cancelled += 1
            raise
        finally:
            if verdict[0] is not None:
                run.in_flight -= 1


class LoadRun:
    """The state of one run; ``execute`` carries it out (see the module docstring)."""

    def __init__(self, config: LoadConfig, traffic: Traffic, client: LoadClient, *,
                 records: IO[bytes] | None = None, progress: IO[str] | None = None,
                 step: int = 0, on_stop: Callable[[str], None] | None = None,
                 conversations: IO[bytes] | None = None) -> None:
        self.config, self.traffic, self.client = config, traffic, client
        self.records, self.progress_stream, self.step = records, progress, step
        self.conversation_records = conversations
        self.on_stop = on_stop
        self.loop = asyncio.get_running_loop()
        self.rng = loadtest_rng(config.seed)
        self.retry_policy = RetryPolicy(max_attempts=config.retries + 1,
                                        deadline_s=config.total_timeout_s)
        window = config.window_s
        if window is None:
            window = max(0.25, (config.duration_s or 10.0) / 60.0)
        self.collector = Collector(window)
        self.t0 = 0.0
        self.measure_from = 0.0
        self.t_end = math.inf
        self.stopping = False
        self.stop_reason = ""
        self.stopped_at: float | None = None
        self.stop_event = asyncio.Event()
        self.next_index = 0
        self.sent_measured = 0
        self.in_flight = 0
        # The conversations running (rate mode; in concurrency mode the slots' workers):
        # counted, never cancelled one by one; ``in_flight_scope`` cancels them all.
        self.live: set[asyncio.Task[Any]] = set()
        self.in_flight_scope = CancelScope()
        self.cancelled = 0
        self.dropped_arrivals = 0
        self.responses_429 = 0
        self.error_examples: dict[str, str] = {}  # error class: its first measured detail
        self.conversations_started = 0
        self.outcomes: dict[str, int] = {}
        self.conversations_ended = 0  # ended on their own during the measured part
        self.last_end = 0.0
        self.finished = 0  # every request finished, warm-up included
        self.unreachable = 0  # finished requests that failed to connect, while none was ok
        self.unreachable_detail = ""  # the first of them's error
        self.answered = False  # some request finished other than by failing to connect
        self.loop_lag = LogHistogram()
        self.timer_lag = LogHistogram()
        self.cpu_samples: list[float] = []
        self.cpu_at_measure: float | None = None
        self.wall_at_measure = 0.0
        self.cpu_at_end: float | None = None
        self.wall_at_end: float | None = None
        self.started_epoch = 0.0
        self._last = (0.0, 0, 0)  # progress line: time, ok and tokens at the last print

    def __repr__(self) -> str:
        return (f"<LoadRun {self.config.mode}={self.config.load:g} in_flight={self.in_flight}"
                f" finished={self.finished} stopping={self.stopping}>")

    # -- bookkeeping ---------------------------------------------------------------------

    def stop(self, reason: str) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_reason = reason
            self.stopped_at = _now()
            self.stop_event.set()
            if self.on_stop is not None:
                self.on_stop(reason)

    def interrupt(self) -> None:
        """Stop from outside: nothing new is sent, requests in flight finish (drain)."""
        self.stop(INTERRUPTED)

    def cancel_in_flight(self) -> None:
        """Cancel every conversation now, as the end of the drain time does; each one's
        request in flight is counted as cancelled."""
        self.stop(INTERRUPTED)
        self.in_flight_scope.cancel()

    def finish(self, index: int, turn: int, role: str, intended: float, first_sent: float,
               end: float, result: CallResult | None,
               error: ModelCallError | None, attempts: int, measured: bool,
               tools: bool = False) -> RequestRecord:
        self.finished += 1
        t0 = self.t0
        lag = (first_sent - intended) * 1000.0
        ident = request_id(self.step, index, turn, attempts)
        if result is None:
            assert error is not None
            record = RequestRecord(
                id=ident, conversation=index, turn=turn, role=role, intended=intended - t0,
                lag_ms=lag,
                ok=False, error=error_class(error), detail=str(error)[:300],
                status=error.status, attempts=attempts,
                e2e_intended_ms=(end - intended) * 1000.0, warmup=not measured,
                step=self.step, tools_offered=tools,
                parse_failure=error.kind if isinstance(error, ToolCallParseFailure) else None)
            gaps: tuple[float, ...] = ()
        else:
            start = end - result.latency  # the client's own start of the last attempt
            e2e = result.latency * 1000.0
            ttft = None if result.ttft is None else result.ttft * 1000.0
            ttft_intended = None if ttft is None else (start - intended) * 1000.0 + ttft
            out = result.usage.completion_tokens
            tpot = (e2e - ttft) / (out - 1) if ttft is not None and out > 1 else None
            gaps = result.chunk_gaps
            e2e_intended = (end - intended) * 1000.0
            record = RequestRecord(
                id=ident, conversation=index, turn=turn, role=role, intended=intended - t0,
                lag_ms=lag,
                ok=True, status=200, attempts=attempts, ttft_ms=ttft,
                ttft_intended_ms=ttft_intended, e2e_ms=e2e, e2e_intended_ms=e2e_intended,
                tpot_ms=tpot, chunks=len(gaps) + 1 if ttft is not None else 0,
                max_gap_ms=max(gaps) * 1000.0 if gaps else None,
                prompt_tokens=result.usage.prompt_tokens, completion_tokens=out,
                slo_ok=self.config.objectives.met(ttft_intended, e2e_intended, tpot),
                warmup=not measured, step=self.step, tools_offered=tools,
                tool_calls=len(result.completion.choices[0].message.tool_calls or ()))
        self._watch_reachable(record)
        if measured:
            if record.error is not None and record.error not in self.error_examples:
                self.error_examples[record.error] = record.detail or ""
            self.collector.add(record, gaps, self.measure_from - t0)
            if end > self.last_end:
                self.last_end = end
        if self.records is not None:
            self.records.write(_encode_line(record))
        return record

    @property
    def unreachable_after(self) -> int:
        """Failed connects, with nothing else finished, that stop the run: at least one
        request of every conversation slot, so a single bad connection does not."""
        config = self.config
        return max(UNREACHABLE_AFTER,
                   config.concurrency if config.mode == "concurrency" else 0)

    def _watch_reachable(self, record: RequestRecord) -> None:
        """Stop the run once its first ``unreachable_after`` requests (warm-up included:
        a refused connect is no warmer later) all failed to connect."""
        if self.answered or self.stop_reason == UNREACHABLE:
            return  # (those in flight at the stop are not "the first N")
        if record.ok or record.error not in UNREACHABLE_ERRORS:
            self.answered = True  # the endpoint is there (an HTTP error is an answer)
            return
        self.unreachable += 1
        if not self.unreachable_detail:
            self.unreachable_detail = record.detail or ""
        if self.unreachable >= self.unreachable_after:
            self.stop(UNREACHABLE)

    # -- tasks ---------------------------------------------------------------------------

    async def execute(self) -> None:
        config = self.config
        self.started_epoch = time.time()
        self.t0 = _now()
        self._last = (self.t0, 0, 0)
        self.measure_from = self.t0 + config.warmup_s
        if config.duration_s is not None:
            self.t_end = self.measure_from + config.duration_s
        async with asyncio.TaskGroup() as outer:
            # The probe, the stopper and the progress line serve the conversations' group
            # and end with it (cancelled below); one that fails fails the run.
            aux = [outer.create_task(self._probe()), outer.create_task(self._stopper()),
                   outer.create_task(self._progress())]
            try:
                async with self.in_flight_scope, asyncio.TaskGroup() as group:
                    if config.mode == "concurrency":
                        n = config.concurrency
                        for i in range(n):
                            group.create_task(self._worker(self.t0 + config.ramp_s * i / n))
                    else:
                        group.create_task(self._arrivals(group))
            finally:
                self.stop("done")
                self.cpu_at_end = time.process_time()
                self.wall_at_end = _now()
                for task in aux:
                    task.cancel()
        self._print_progress(final=True)

    async def _conversation(self, index: int, go: Gate | None) -> None:
        """Run conversation ``index``; its task is in ``live`` (the caller's doing)."""
        sender = _ConversationSender(self, index, go)
        turns: int | None = None
        try:
            ended = await self.traffic.converse(index, sender)
            outcome, turns = ended.outcome, ended.turns
        except _Stopped:
            outcome = STOPPED
        except asyncio.CancelledError:
            self._conversation_ended(sender.record(CANCELLED, None))
            raise
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if outcome != STOPPED and _now() >= self.measure_from:
            self.conversations_ended += 1
        self._conversation_ended(sender.record(outcome, turns))

    def _conversation_ended(self, record: ConversationRecord) -> None:
        if record.requests == 0:
            return  # stopped before it sent anything: never started
        if not record.warmup:
            self.collector.add_conversation(record)
        if self.conversation_records is not None:
            self.conversation_records.write(_encode_line(record))

    async def _worker(self, start_at: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.live.add(task)  # one conversation at a time runs in it
        try:
            if start_at > _now():
                await asyncio.sleep(start_at - _now())
            while not self.stopping:
                index = self.next_index
                self.next_index += 1
                await self._conversation(index, None)
        finally:
            self.live.discard(task)

    async def _arrivals(self, group: asyncio.TaskGroup) -> None:
        """Start conversations ahead of their arrival times, in ``group`` (the one this
        task runs in, which waits for them), and send their first requests at those
        times. One that fails fails the group: the others are cancelled, this task too,
        and its error is raised from the group. (The group's bookkeeping per task is a
        set and a done callback, what a bare task kept in ``live`` costs anyway.)"""
        await self._arrive(group)

    def _conversation_done(self, task: asyncio.Task[None]) -> None:
        self.live.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.stop("error")  # (the task group cancels the others and raises it)

    async def _arrive(self, group: asyncio.TaskGroup) -> None:
        config = self.config
        rng = arrivals_rng(config.seed)
        lead, spin = config.lead_ms / 1000.0, config.spin_ms / 1000.0
        poisson = config.arrivals == "poisson"
        start = self.t0 + lead
        k = 0
        next_at = start + (rng.expovariate(config.rate) if poisson else 0.0)
        pending: deque[Gate] = deque()
        live, done = self.live, self._conversation_done
        while True:
            now = _now()
            while not self.stopping and next_at < self.t_end and next_at - lead <= now:
                if len(live) >= config.max_conversations:
                    self.dropped_arrivals += 1
                else:
                    go = Gate(next_at)
                    pending.append(go)
                    task = group.create_task(self._conversation(self.next_index, go))
                    live.add(task)
                    task.add_done_callback(done)
                    self.next_index += 1
                k += 1
                next_at = (next_at + rng.expovariate(config.rate) if poisson
                           else start + k / config.rate)
            while pending and pending[0].intended <= now:
                pending.popleft().release()  # sends it, if it is ready (else when it is)
                now = _now()
            arrivals_over = self.stopping or next_at >= self.t_end
            if arrivals_over and not pending:
                return
            target = pending[0].intended if pending else math.inf
            if not arrivals_over:
                target = min(target, next_at - lead)
            wait = target - _now()
            if wait > spin:
                await asyncio.sleep(wait - spin)
            else:
                await asyncio.sleep(0)

    async def _stopper(self) -> None:
        if math.isfinite(self.t_end):
            # An earlier stop (the request bound, an interrupt) starts the drain at once,
            # not at the end of the planned duration.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(),
                                       max(0.0, self.t_end - _now()))
            self.stop("duration")
        await self.stop_event.wait()
        await asyncio.sleep(self.config.drain_s)
        self.in_flight_scope.cancel()  # the drain is over: cancel what still runs

    async def _probe(self) -> None:
        tick = _now()
        cpu_last, wall_last = time.process_time(), _now()
        while True:
            tick += PROBE_S
            await asyncio.sleep(max(0.0, tick - _now()))
            now = _now()
            if now - tick > PROBE_S:  # far behind: do not fire a burst to catch up
                tick = now
            before = time.perf_counter()
            await asyncio.sleep(0)
            after = time.perf_counter()
            if now >= self.measure_from:
                if self.cpu_at_measure is None:
                    self.cpu_at_measure = time.process_time()
                    self.wall_at_measure = now
                self.timer_lag.record(max(0.0, now - tick))
                self.loop_lag.record(after - before)
            if now - wall_last >= self.collector.window_s:
                cpu = time.process_time()
                share = (cpu - cpu_last) / (now - wall_last)
                self.cpu_samples.append(share)
                if now >= self.measure_from:
                    self.collector.window(wall_last - self.measure_from).cpu = share
                cpu_last, wall_last = cpu, now

    async def _progress(self) -> None:
        if self.progress_stream is None:
            return
        while True:
            await asyncio.sleep(1.0)
            self._print_progress()

    def _print_progress(self, final: bool = False) -> None:
        stream = self.progress_stream
        if stream is None:
            return
        now = _now()
        c = self.collector
        last_t, last_ok, last_tokens = self._last
        span = max(now - last_t, 1e-9)
        rps = (c.ok - last_ok) / span
        tps = (c.completion_tokens - last_tokens) / span
        self._last = (now, c.ok, c.completion_tokens)
        cpu = self.cpu_samples[-1] if self.cpu_samples else 0.0
        errors = sum(c.errors.values())
        line = (f"[{now - self.t0:6.1f}s] sent {self.finished + self.in_flight} ok {c.ok}"
                f" err {errors} | in flight {self.in_flight} req {len(self.live)} conv"
                f" | conv done {c.conversations_completed}"
                f" | {rps:,.0f} req/s {tps:,.0f} tok/s"
                f" | ttft {_p50_p99(c.ttft_intended)} | e2e {_p50_p99(c.e2e_intended)}"
                f" | lag p99 {c.lag.percentile(0.99) * 1e3:.2f} ms | cpu {cpu:.0%}")
        tty = stream.isatty()
        end = "\n" if final or not tty else ""
        stream.write(("\r\x1b[2K" if tty else "") + line + end)
        stream.flush()

    # -- results -------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Every figure of the run, JSON-ready (see report.py for the file)."""
        config, c = self.config, self.collector
        end = self.t_end if math.isfinite(self.t_end) else (self.stopped_at or self.last_end)
        if self.stop_reason in ("requests", INTERRUPTED) and self.stopped_at is not None:
            # Nothing is sent after the bound, so the drain is not balanced by requests
            # of the warm-up finishing inside the window: the window runs to the last
            # measured completion, or requests still in flight at the stop would count
            # in too short a window (+4-7 % seen with one-second requests). An interrupted
            # run likewise ends where it stopped, not at its planned end.
            end = max(self.stopped_at, self.last_end)
        measured_s = max(1e-9, min(end, self.wall_at_end or end) - self.measure_from)
        cpu_mean = None
        if self.cpu_at_measure is not None and self.cpu_at_end is not None:
            cpu_mean = (self.cpu_at_end - self.cpu_at_measure) / max(
                1e-9, (self.wall_at_end or 0.0) - self.wall_at_measure)
        reasons = []
        # In rate mode the arrivals task spin-waits for sub-millisecond send times, so the
        # process is always busy: there the lags, not the CPU, tell a saturated client.
        if cpu_mean is not None and cpu_mean >= CLIENT_CPU_LIMIT and config.mode != "rate":
            reasons.append(f"client CPU at {cpu_mean:.0%} of a core")
        if self.loop_lag.percentile(0.99) * 1e3 > CLIENT_LAG_LIMIT_MS:
            reasons.append(f"event-loop lag p99 {self.loop_lag.percentile(0.99) * 1e3:.1f} ms")
        if c.lag.percentile(0.99) * 1e3 > CLIENT_LAG_LIMIT_MS:
            reasons.append(f"send lag p99 {c.lag.percentile(0.99) * 1e3:.1f} ms")
        if self.dropped_arrivals:
            reasons.append(f"{self.dropped_arrivals} arrivals dropped at the in-flight cap")
        goodput = c.slo_ok / measured_s
        series = []
        for index in sorted(c.windows):
            w = c.windows[index]
            series.append({
                "t": round(index * c.window_s, 4), "sent": w.sent, "ok": w.ok,
                "errors": w.errors,
                "requests_per_s": round(w.ok / c.window_s, 3),
                "output_tokens_per_s": round(w.output_tokens / c.window_s, 3),
                "e2e_ms": w.e2e.summary(), "ttft_ms": w.ttft.summary(),
                "cpu": None if w.cpu is None else round(w.cpu, 4)})
        return {
            "step": self.step,
            "mode": config.mode, "load": config.load,
            "started_epoch": self.started_epoch,
            "stop_reason": self.stop_reason,
            # Set when the run stopped because not one request could connect.
            "unreachable": {"failed_connects": self.unreachable,
                            "detail": self.unreachable_detail}
            if self.stop_reason == UNREACHABLE else None,
            "measured_s": round(measured_s, 6),
            "requests": {
                "measured": c.requests, "ok": c.ok, "failed": c.requests - c.ok,
                "warmup_and_measured": self.finished, "cancelled_at_drain": self.cancelled,
                "responses_429": self.responses_429, "retries": c.retries,
                # sent again on a new connection: the kept-alive one had been closed
                "stale_connection_resends": self.client.stale_resends,
                "prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "errors": dict(sorted(c.errors.items())),
                "error_examples": dict(sorted(self.error_examples.items())),
            },
            "throughput": {
                "requests_per_s": round(c.ok / measured_s, 4),
                "sent_per_s": round(c.requests / measured_s, 4),
                "conversations_started_per_s": round(self.conversations_started / measured_s, 4),
                "output_tokens_per_s": round(c.completion_tokens / measured_s, 4),
                "total_tokens_per_s": round((c.prompt_tokens + c.completion_tokens)
                                            / measured_s, 4),
                "goodput_requests_per_s": round(goodput, 4),
                "goodput_fraction": round(c.slo_ok / c.ok, 6) if c.ok else 0.0,
            },
            "tools": tool_summary(c),
            "objectives": msgspec.to_builtins(config.objectives),
            "conversations": {
                # started: first request measured; ended: ended on its own (any outcome)
                # in the measured part; completed: of those started, ran to their own end
                # with every request answered (durations are theirs)
                "started_measured": self.conversations_started,
                "ended_measured": self.conversations_ended,
                "completed_measured": c.conversations_completed,
                "completed_per_s": round(c.conversations_completed / measured_s, 4),
                "not_completed": c.conversations - c.conversations_completed,
                "duration_ms": _summary(c.conversation_duration),
                "requests_per_conversation": c.conversation_requests.summary(scale=1.0),
                "turns_mean": round(c.conversation_turns / c.conversations_completed, 4)
                if c.conversations_completed else None,
                "outcomes": dict(sorted(self.outcomes.items())),
                "dropped_arrivals": self.dropped_arrivals,
            },
            "latency_ms": {
                "ttft": _summary(c.ttft), "ttft_from_intended": _summary(c.ttft_intended),
                "e2e": _summary(c.e2e), "e2e_from_intended": _summary(c.e2e_intended),
                "tpot": _summary(c.tpot), "inter_chunk": _summary(c.itl),
                "send_lag": _summary(c.lag),
            },
            "client": {
                "cpu_mean": None if cpu_mean is None else round(cpu_mean, 4),
                "cpu_includes_spin_wait": config.mode == "rate",
                "cpu_max": round(max(self.cpu_samples), 4) if self.cpu_samples else None,
                "loop_lag_ms": self.loop_lag.summary(),
                "timer_lag_ms": self.timer_lag.summary(),
                "bottleneck": bool(reasons), "reasons": reasons,
            },
            "timeseries": series,
            "ttft_distribution_ms": _distribution(c.ttft_intended),
            "e2e_distribution_ms": _distribution(c.e2e_intended),
        }


def _p50_p99(hist: LogHistogram) -> str:
    if not hist.count:
        return "n/a"  # nothing answered yet: no latency, not 0 ms
    return (f"p50 {hist.percentile(0.5) * 1e3:.1f} p99 {hist.percentile(0.99) * 1e3:.1f}"
            " ms")


def _summary(hist: LogHistogram) -> dict[str, float | int | None]:
    """``hist.summary()``, with every figure present and null when nothing was measured
    (a run where no request was answered has no latency, not a latency of 0 ms)."""
    if hist.count:
        return dict(hist.summary())
    return dict.fromkeys(_SUMMARY_KEYS, None) | {"count": 0}


def _summary_keys() -> tuple[str, ...]:
    probe = LogHistogram()
    probe.record(1.0)
    return tuple(probe.summary())


_SUMMARY_KEYS = _summary_keys()


def _encode_line(record: RequestRecord | ConversationRecord) -> bytes:
    return record_encoder.encode(record) + b"\n"


def _distribution(hist: LogHistogram, bins: int = 40) -> list[list[float]]:
    """``[low_ms, high_ms, count]`` over ``bins`` log-spaced bins from min to max."""
    if not hist.count:
        return []
    low, high = max(hist.min, 1e-6), max(hist.max, 1e-6)
    if high <= low * 1.0001:
        return [[round(low * 1e3, 4), round(high * 1e3, 4), hist.count]]
    ratio = (high / low) ** (1.0 / bins)
    edges = [low * ratio ** i for i in range(bins + 1)]
    counts = [0] * bins
    for blo, bhi, n in hist.buckets():
        mid = (blo + bhi) / 2.0
        i = 0 if mid <= low else min(bins - 1, int(math.log(mid / low) / math.log(ratio)))
        counts[i] += n
    return [[round(edges[i] * 1e3, 4), round(edges[i + 1] * 1e3, 4), counts[i]]
            for i in range(bins)]


async def run_load(config: LoadConfig, traffic: Traffic, *, records: IO[bytes] | None = None,
                   progress: IO[str] | None = None, step: int = 0,
                   client: LoadClient | None = None,
                   conversations: IO[bytes] | None = None,
                   on_start: Callable[[LoadRun], None] | None = None) -> LoadRun:
    """Carry out one run against ``config.base_url``; returns the finished ``LoadRun``.
    ``records`` and ``conversations`` receive the JSONL records as they complete;
    ``on_start`` is given the run before it starts (to stop it from outside)."""
    with _quiet_gc():
        return await _run_load(config, traffic, records, progress, step, client,
                               conversations, on_start)


@contextmanager
def _quiet_gc() -> Iterator[None]:
    """Keep the collector's pauses out of the measurements: everything alive before the
    run is frozen out of collection, and collections happen less often while it lasts."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 50_000), 50, 1000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


async def _run_load(config: LoadConfig, traffic: Traffic, records: IO[bytes] | None,
                    progress: IO[str] | None, step: int, client: LoadClient | None,
                    conversations: IO[bytes] | None,
                    on_start: Callable[[LoadRun], None] | None) -> LoadRun:
    timeouts = Timeouts(first_token=config.first_token_timeout_s,
                        idle=config.first_token_timeout_s, total=config.total_timeout_s)
    if client is not None:
        run = LoadRun(config, traffic, client, records=records, progress=progress, step=step,
                      conversations=conversations)
        if on_start is not None:
            on_start(run)
        await run.execute()
        return run
    width = config.concurrency if config.mode == "concurrency" else config.max_conversations
    client = LoadClient(config.base_url, model=config.model, stream=config.stream,
                        api_key=config.api_key, timeouts=timeouts,
                        max_connections=max(256, width), api=config.api)
    try:
        run = LoadRun(config, traffic, client, records=records, progress=progress, step=step,
                      conversations=conversations)
        if on_start is not None:
            on_start(run)
        await run.execute()
    finally:
        client.close()
    return run


def default_progress() -> IO[str]:
    return sys.stderr
