"""What a load test measures, per request and per run.

``RequestRecord`` is one request as the per-request JSONL holds it. Times are seconds
since the run's start on the client's monotonic clock; durations are milliseconds.
Every request carries two clocks: ``intended`` (when the traffic model said it should be
sent) and the actual send, ``lag_ms`` later. TTFT and end-to-end latency are reported
from both; the ``*_intended`` figures are the honest ones under load (no coordinated
omission: a request the client could not send on time is charged the wait).

``ConversationRecord`` is one conversation as ``conversations.jsonl`` holds it: its
requests (one per model turn), attempts, errors, tokens, the latency its requests added
up to, and its duration from the first request's intended send to the last response.

``Collector`` folds records into histograms (``LogHistogram``), counters and time
windows as they complete, so a run of any length holds bounded memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec

from writ_async.errors import (
    CallTimeout,
    ContextLengthExceeded,
    MalformedResponse,
    ModelCallError,
    PermanentError,
    RateLimited,
    RetriesExhausted,
)
from writ_async.loadtest.histogram import LogHistogram


def request_id(step: int, conversation: int, turn: int, attempt: int) -> str:
    """A request's id, sent as its ``X-Request-Id``: a UUID whose fields carry the step,
    turn, attempt and conversation, so the id reads back and stays unique. Servers that
    validate the header as a UUID (llama-cpp-python answers anything else with a 400)
    accept it; the version-4 and variant nibbles are set so strict parsers do too."""
    return f"{step:08x}-{turn:04x}-4{attempt:03x}-8000-{conversation:012x}"


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # of the last attempt (``request_id``), sent as X-Request-Id
    conversation: int
    turn: int  # index of this request within its conversation
    role: str  # agent or user (whose request it was)
    intended: float  # s since the run's start
    lag_ms: float  # actual first send - intended
    ok: bool
    error: str | None = None  # the error class (``error_class``) when not ok
    detail: str | None = None
    status: int | None = None  # HTTP status of the last attempt, when there was one
    attempts: int = 1
    ttft_ms: float | None = None  # from the (last attempt's) send; streaming only
    ttft_intended_ms: float | None = None
    e2e_ms: float | None = None  # last attempt: send to last byte
    e2e_intended_ms: float | None = None  # intended send to last byte, retries included
    tpot_ms: float | None = None  # (e2e - ttft) / (output tokens - 1)
    chunks: int = 0
    max_gap_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    slo_ok: bool = False
    warmup: bool = False
    step: int = 0  # the sweep step (0 outside sweeps)
    # the request offered tools: its answer's tool calls (parsed), or the kind of tool
    # call the server passed through as text (assemble.tool_call_parse_failure_of)
    tools_offered: bool = False
    tool_calls: int = 0
    parse_failure: str | None = None


class ConversationRecord(msgspec.Struct, frozen=True, kw_only=True):
    conversation: int
    step: int = 0
    outcome: str  # how it ended: the traffic's own ending, "stopped" or "cancelled"
    completed: bool  # ran to its own end with every request answered
    turns: int | None  # user turns (scripted or not); None: cut off before it said
    requests: int  # requests sent, one per model turn (retries are attempts)
    attempts: int
    errors: int  # requests that failed after their retries
    prompt_tokens: int = 0
    completion_tokens: int = 0
    started: float | None = None  # first request's intended send, s since the run's start
    duration_ms: float | None = None  # first intended send to the last response's end
    latency_ms: float = 0.0  # the requests' end-to-end latencies (from intended), summed
    latency_per_request_ms: float | None = None
    ttft_mean_ms: float | None = None
    warmup: bool = False  # its first request was intended before the warm-up's end


record_encoder = msgspec.json.Encoder()
record_decoder = msgspec.json.Decoder(RequestRecord)
conversation_decoder = msgspec.json.Decoder(ConversationRecord)


def error_class(error: ModelCallError) -> str:
    """A short, stable name for the kind of failure, for counting by class."""
    if isinstance(error, RetriesExhausted):
        error = error.last
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, CallTimeout):
        return f"timeout_{error.phase}"
    if isinstance(error, ContextLengthExceeded):
        return "context_length"
    if isinstance(error, MalformedResponse):
        return f"malformed_{error.reason}"
    if isinstance(error, PermanentError):
        return f"http_{error.status}" if error.status is not None else "permanent"
    if error.status is not None:
        return "server_error" if error.status >= 500 else f"http_{error.status}"
    return "connection"


def tool_summary(c: Collector) -> dict[str, object]:
    """The answers to requests that offered tools: how many called a tool, how many
    held a tool call the server did not parse (rates: of those answers; None: none)."""
    n, failed = c.tool_answers, sum(c.parse_failures.values())
    return {
        "answers": n, "with_tool_calls": c.tool_call_answers,
        "tool_call_rate": round(c.tool_call_answers / n, 6) if n else None,
        "parse_failures": failed,
        "parse_failure_rate": round(failed / n, 6) if n else None,
        "parse_failure_kinds": dict(sorted(c.parse_failures.items())),
    }


class Objectives(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Latency objectives (ms) for goodput; unset ones are not checked. TTFT and
    end-to-end are taken from the intended send time."""

    ttft_ms: float | None = None
    e2e_ms: float | None = None
    tpot_ms: float | None = None

    def met(self, ttft: float | None, e2e: float, tpot: float | None) -> bool:
        if self.ttft_ms is not None and (ttft is None or ttft > self.ttft_ms):
            return False
        if self.e2e_ms is not None and e2e > self.e2e_ms:
            return False
        return not (self.tpot_ms is not None and tpot is not None and tpot > self.tpot_ms)


@dataclass(slots=True)
class Window:
    """One time slice of the measured part of the run (by intended send time)."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    output_tokens: int = 0
    e2e: LogHistogram = field(default_factory=LogHistogram)
    ttft: LogHistogram = field(default_factory=LogHistogram)
    cpu: float | None = None  # client CPU, fraction of one core, over the slice
    in_flight: int = 0


class Collector:
    """Accumulates measured (non-warm-up) requests; see the module docstring."""

    def __init__(self, window_s: float = 1.0) -> None:
        self.window_s = window_s
        self.ttft = LogHistogram()
        self.ttft_intended = LogHistogram()
        self.e2e = LogHistogram()
        self.e2e_intended = LogHistogram()
        self.tpot = LogHistogram()
        self.itl = LogHistogram()  # every inter-chunk gap
        self.lag = LogHistogram()  # send lag
        self.requests = 0
        self.ok = 0
        self.slo_ok = 0
        self.errors: dict[str, int] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.retries = 0
        self.windows: dict[int, Window] = {}
        # conversations that started in the measured part (first request measured)
        self.conversations = 0
        self.conversations_completed = 0
        self.conversation_duration = LogHistogram()  # completed ones, seconds
        self.conversation_requests = LogHistogram()  # completed ones, requests each
        self.conversation_turns = 0  # completed ones, summed
        # answers to requests that offered tools: those with tool calls, those whose
        # tool calls the server failed to parse (by kind)
        self.tool_answers = 0
        self.tool_call_answers = 0
        self.parse_failures: dict[str, int] = {}

    def add_conversation(self, record: ConversationRecord) -> None:
        """Count one ended conversation whose first request was measured."""
        self.conversations += 1
        if not record.completed:
            return
        self.conversations_completed += 1
        self.conversation_turns += record.turns or 0
        self.conversation_requests.record(float(record.requests))
        if record.duration_ms is not None:
            self.conversation_duration.record(record.duration_ms / 1000.0)

    def window(self, at: float) -> Window:
        index = max(0, math.floor(at / self.window_s))
        slot = self.windows.get(index)
        if slot is None:
            slot = self.windows[index] = Window()
        return slot

    def add(self, record: RequestRecord, gaps: tuple[float, ...] = (),
            measured_from: float = 0.0) -> None:
        """Count one finished request; ``measured_from``: the warm-up's end (s)."""
        self.requests += 1
        self.retries += record.attempts - 1
        self.lag.record(record.lag_ms / 1000.0)
        if record.tools_offered and (record.ok or record.parse_failure is not None):
            self.tool_answers += 1
            self.tool_call_answers += record.tool_calls > 0
            if record.parse_failure is not None:
                kind = record.parse_failure
                self.parse_failures[kind] = self.parse_failures.get(kind, 0) + 1
        slot = self.window(record.intended - measured_from)
        slot.sent += 1
        if not record.ok:
            key = record.error or "unknown"
            self.errors[key] = self.errors.get(key, 0) + 1
            slot.errors += 1
            return
        self.ok += 1
        slot.ok += 1
        slot.output_tokens += record.completion_tokens
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        if record.slo_ok:
            self.slo_ok += 1
        assert record.e2e_ms is not None and record.e2e_intended_ms is not None
        self.e2e.record(record.e2e_ms / 1000.0)
        self.e2e_intended.record(record.e2e_intended_ms / 1000.0)
        slot.e2e.record(record.e2e_intended_ms / 1000.0)
        if record.ttft_ms is not None and record.ttft_intended_ms is not None:
            self.ttft.record(record.ttft_ms / 1000.0)
            self.ttft_intended.record(record.ttft_intended_ms / 1000.0)
            slot.ttft.record(record.ttft_intended_ms / 1000.0)
        if record.tpot_ms is not None:
            self.tpot.record(record.tpot_ms / 1000.0)
        if gaps:
            self.itl.record_many(gaps)
