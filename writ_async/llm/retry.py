"""Retry decisions as values: classify a failed attempt, then decide what happens next.

Pure functions, no I/O and no clock reads: the pool feeds in what happened (a status, its
headers and body, or a transport error) and the time, and gets back a typed error and a
``Retry(delay)`` or ``GiveUp(reason)``. The rules follow OpenAI's published semantics
(../shared/REFERENCE.md): 408, 409, 429 and >= 500 and connection failures are retried;
400, 401, 403, 404 and 422 are permanent; the server's ``retry-after-ms`` /
``retry-after`` win over our own backoff when present.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from writ_async.errors import (
    ContextLengthExceeded,
    MalformedResponse,
    ModelCallError,
    PermanentError,
    RateLimited,
    TransientError,
)
from writ_async.llm.protocol import error_decoder

# Malformed successes worth another attempt: the server or the transport garbled them.
# The rest (length, content_filter, invalid tool arguments) are the model's own output
# and are handed to the episode, which decides what they mean.
RETRYABLE_MALFORMED = frozenset(
    {"invalid_json", "html", "error_object", "truncated_stream", "no_choices", "missing_usage",
     "interrupted_stream"}
)

MAX_SERVER_WAIT_S = 120.0  # never sleep longer than this on a server's say-so


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounds on retrying one call: attempts, a deadline, and the backoff curve."""

    max_attempts: int = 5
    deadline_s: float = 300.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0
    jitter: float = 0.25  # a delay is reduced by up to this fraction, at random


@dataclass(frozen=True, slots=True)
class Retry:
    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    reason: str


Decision = Retry | GiveUp


def parse_retry_after(headers: Mapping[str, str], now_epoch: float) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, then ``retry-after``
    (seconds or an HTTP date); None if absent or unreadable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_epoch)


def _error_message(body: bytes) -> tuple[str, str | None]:
    """The server's error message and code, from an OpenAI error body if it is one."""
    try:
        detail = error_decoder.decode(body).error
    except msgspec.DecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        return (text or "(empty body)"), None
    code = None if detail.code is None else str(detail.code)
    return detail.message or "(no message)", code


def classify_status(
    status: int, headers: Mapping[str, str], body: bytes, *, endpoint: str, now_epoch: float
) -> ModelCallError:
    """The typed error for a non-2xx response."""
    message, code = _error_message(body)
    should_retry = headers.get("x-should-retry")
    kw = {"endpoint": endpoint, "status": status}
    if status == 429:
        return RateLimited(message, retry_after=parse_retry_after(headers, now_epoch), **kw)
    if should_retry == "false":
        return PermanentError(message, **kw)
    if status == 503 and ("retry-after" in headers or "retry-after-ms" in headers):
        # An overloaded server that says when to come back is rate limiting us.
        return RateLimited(message, retry_after=parse_retry_after(headers, now_epoch), **kw)
    if status in (408, 409) or status >= 500 or should_retry == "true":
        return TransientError(message, **kw)
    if status == 400 and (code == "context_length_exceeded" or "context length" in message):
        return ContextLengthExceeded(message, **kw)
    return PermanentError(message, **kw)


def backoff(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Delay before attempt ``attempt + 1`` (attempt counts from 1): exponential, capped,
    with jitter downwards so synchronized failures spread out."""
    delay = min(policy.backoff_base_s * 2 ** (attempt - 1), policy.backoff_cap_s)
    return delay * (1.0 - policy.jitter * rng.random())


def decide(
    policy: RetryPolicy, error: ModelCallError, attempt: int, elapsed: float, rng: random.Random
) -> Decision:
    """Whether to try again after ``attempt`` failed attempts, ``elapsed`` seconds in."""
    if isinstance(error, PermanentError):
        return GiveUp("permanent")
    if isinstance(error, MalformedResponse) and error.reason not in RETRYABLE_MALFORMED:
        return GiveUp(f"model output: {error.reason}")
    if not isinstance(error, RateLimited | TransientError | MalformedResponse):
        return GiveUp("not retryable")
    if attempt >= policy.max_attempts:
        return GiveUp(f"{attempt} attempts")
    delay = backoff(policy, attempt, rng)
    if isinstance(error, RateLimited) and error.retry_after is not None:
        delay = min(error.retry_after, MAX_SERVER_WAIT_S)
    if elapsed + delay >= policy.deadline_s:
        return GiveUp(f"deadline of {policy.deadline_s:g} s")
    return Retry(delay)


@dataclass(frozen=True, slots=True)
class RateFeedback:
    """What a response's ``x-ratelimit-*`` headers say about the endpoint's budget."""

    remaining_requests: int | None
    remaining_tokens: int | None
    reset_requests_s: float | None
    reset_tokens_s: float | None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def parse_rate_headers(headers: Mapping[str, str]) -> RateFeedback | None:
    """The rate-limit feedback of a response, or None when it carries none."""
    from writ_async.llm.limits import parse_reset

    remaining_requests = _int_header(headers, "x-ratelimit-remaining-requests")
    remaining_tokens = _int_header(headers, "x-ratelimit-remaining-tokens")
    if remaining_requests is None and remaining_tokens is None:
        return None
    reset_r = headers.get("x-ratelimit-reset-requests")
    reset_t = headers.get("x-ratelimit-reset-tokens")
    return RateFeedback(
        remaining_requests=remaining_requests,
        remaining_tokens=remaining_tokens,
        reset_requests_s=parse_reset(reset_r) if reset_r else None,
        reset_tokens_s=parse_reset(reset_t) if reset_t else None,
    )
