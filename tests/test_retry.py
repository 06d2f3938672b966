"""Retry classification and decisions (pure, no I/O)."""

from __future__ import annotations

import random

import pytest

from writ_async.errors import (
    CallTimeout,
    ContextLengthExceeded,
    MalformedResponse,
    PermanentError,
    RateLimited,
    TransientError,
)
from writ_async.llm.retry import (
    GiveUp,
    Retry,
    RetryPolicy,
    backoff,
    classify_status,
    decide,
    parse_retry_after,
)

NOW = 1_700_000_000.0


def classify(status: int, headers: dict | None = None, body: bytes = b"") -> object:
    return classify_status(status, headers or {}, body, endpoint="ep", now_epoch=NOW)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, RateLimited), (500, TransientError), (502, TransientError), (503, TransientError),
     (408, TransientError), (409, TransientError), (401, PermanentError),
     (403, PermanentError), (404, PermanentError), (422, PermanentError),
     (400, PermanentError)],
)
def test_status_classes(status: int, kind: type) -> None:
    assert type(classify(status)) is kind


def test_context_length_is_its_own_permanent_kind() -> None:
    body = (b'{"error": {"message": "maximum context length is 8192 tokens", '
            b'"code": "context_length_exceeded"}}')
    error = classify(400, body=body)
    assert isinstance(error, ContextLengthExceeded)
    assert "maximum context length" in str(error)
    assert error.status == 400 and error.endpoint == "ep"


def test_503_with_retry_after_is_a_rate_limit() -> None:
    error = classify(503, {"retry-after": "2"})
    assert isinstance(error, RateLimited) and error.retry_after == 2.0


def test_x_should_retry_overrides() -> None:
    assert type(classify(400, {"x-should-retry": "true"})) is TransientError
    assert type(classify(500, {"x-should-retry": "false"})) is PermanentError


def test_non_json_error_body_is_quoted() -> None:
    error = classify(502, body=b"<html>Bad gateway</html>")
    assert "Bad gateway" in str(error)


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after-ms": "250"}, 0.25), ({"retry-after": "3"}, 3.0),
     ({"retry-after-ms": "100", "retry-after": "9"}, 0.1),
     ({"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),
     ({"retry-after": "soon"}, None), ({}, None), ({"retry-after": "-5"}, 0.0)],
)
def test_parse_retry_after(headers: dict, wait: float | None) -> None:
    assert parse_retry_after(headers, NOW) == wait


def test_backoff_is_capped_and_jittered_downwards() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_cap_s=8.0, jitter=0.25)
    rng = random.Random(1)
    for attempt in range(1, 10):
        delay = backoff(policy, attempt, rng)
        full = min(0.5 * 2 ** (attempt - 1), 8.0)
        assert 0.75 * full <= delay <= full


def test_decide_permanent_gives_up_at_once() -> None:
    assert decide(RetryPolicy(), PermanentError("no"), 1, 0.0, random.Random(0)) == GiveUp(
        "permanent")


def test_decide_uses_server_wait_for_rate_limits() -> None:
    error = RateLimited("slow down", retry_after=1.5)
    assert decide(RetryPolicy(), error, 1, 0.0, random.Random(0)) == Retry(1.5)


def test_decide_is_bounded_by_attempts_and_deadline() -> None:
    policy = RetryPolicy(max_attempts=3, deadline_s=10.0)
    rng = random.Random(0)
    error = TransientError("boom")
    assert isinstance(decide(policy, error, 2, 0.0, rng), Retry)
    assert decide(policy, error, 3, 0.0, rng) == GiveUp("3 attempts")
    assert decide(policy, RateLimited("x", retry_after=20), 1, 0.0, rng) == GiveUp(
        "deadline of 10 s")
    assert isinstance(decide(policy, CallTimeout("idle", 5.0), 1, 0.0, rng), Retry)


def test_decide_hands_model_output_problems_back() -> None:
    rng = random.Random(0)
    bad_args = MalformedResponse("invalid_tool_arguments", "not JSON")
    assert decide(RetryPolicy(), bad_args, 1, 0.0, rng) == GiveUp(
        "model output: invalid_tool_arguments")
    garbled = MalformedResponse("invalid_json", "garbage")
    assert isinstance(decide(RetryPolicy(), garbled, 1, 0.0, rng), Retry)
