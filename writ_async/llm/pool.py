"""The model pool: named roles over endpoints, admission control, retries, accounting.

``await pool.complete("agent", request)`` picks the healthy endpoint of the role with the
fewest outstanding calls, waits for its rate limiter (requests and estimated tokens) and
its adaptive concurrency limit, sends one attempt, and on failure asks ``retry.decide``
what to do. Each failure kind feeds back where it belongs: rate limits shrink the
concurrency limit and pause the rate limiter for the server's ``retry-after``; transient
faults back off with jitter; permanent ones fail fast and count against the endpoint's
circuit breaker. Every permit and token debit is returned on every path, cancellation
included.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from writ_async.errors import (
    CallTimeout,
    CircuitOpen,
    ContextLengthExceeded,
    MalformedResponse,
    ModelCallError,
    PermanentError,
    RateLimited,
    RetriesExhausted,
)
from writ_async.llm.client import CallResult, EndpointClient
from writ_async.llm.limits import ConcurrencyLimiter, RateLimiter
from writ_async.llm.protocol import (
    ChatRequest,
    ModelParams,
    ParseFailurePolicy,
    apply_params,
)
from writ_async.llm.retry import GiveUp, RateFeedback, RetryPolicy, decide
from writ_async.logs import get_logger

DEFAULT_COMPLETION_ESTIMATE = 256  # tokens assumed for a reply when max_tokens is unset


def estimate_tokens(request: ChatRequest) -> int:
    """Tokens to debit at admission: ~4 characters per prompt token plus the reply budget.

    Reconciled with the response's usage afterwards, so the estimate only has to be in
    the right range.
    """
    chars = 0
    for message in request.messages:
        chars += len(message.content or "") + 8
        for call in message.tool_calls or ():
            chars += len(call.function.name) + len(call.function.arguments)
    if request.tools:
        chars += sum(len(str(t)) for t in request.tools)
    budget = request.max_completion_tokens or request.max_tokens
    return max(1, chars // 4) + (budget or DEFAULT_COMPLETION_ESTIMATE)


class CircuitBreaker:
    """Stops sending to an endpoint that keeps failing permanently.

    Auth and unknown-model errors (401, 403, 404) open it at once: every request would
    fail the same way. Other permanent errors (400, 422) may be the request's own fault,
    so only ``threshold`` of them in a row open it. After ``cooldown`` seconds one probe
    call is let through (half-open); its success closes the breaker.
    """

    __slots__ = ("_clock", "_failures", "_opened_at", "_probing", "cooldown", "threshold")

    def __init__(self, *, threshold: int = 5, cooldown: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold, self.cooldown, self._clock = threshold, cooldown, clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def allows(self) -> bool:
        if self._opened_at is None:
            return True
        if not self._probing and self._clock() - self._opened_at >= self.cooldown:
            self._probing = True  # half-open: exactly one call goes through
            return True
        return False

    def record_success(self) -> None:
        self._failures, self._opened_at, self._probing = 0, None, False

    def record_permanent(self, error: PermanentError) -> None:
        if isinstance(error, ContextLengthExceeded):
            return  # a long prompt says nothing about the endpoint's health
        self._failures += 1
        if error.status in (401, 403, 404) or self._failures >= self.threshold:
            self._opened_at, self._probing = self._clock(), False

    def record_other(self) -> None:
        if self._probing:  # the probe did not succeed: stay open for another cooldown
            self._opened_at, self._probing = self._clock(), False


class EndpointStatistics(msgspec.Struct, frozen=True):
    name: str
    outstanding: int
    calls: int
    succeeded: int
    failed: int
    retries: int
    rate_limited: int
    transient: int
    permanent: int
    malformed: int
    prompt_tokens: int
    completion_tokens: int
    mean_latency: float
    circuit_open: bool
    concurrency_limit: float


@dataclass(slots=True)
class Endpoint:
    """One endpoint as the pool uses it: client, limiters, breaker and counters."""

    name: str
    client: EndpointClient
    rate: RateLimiter
    concurrency: ConcurrencyLimiter
    breaker: CircuitBreaker
    outstanding: int = 0
    attempts: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_total: float = 0.0
    # its [models.endpoints.<name>.params], over the role's (protocol.ModelParams.over)
    params: ModelParams | None = None

    def feedback(self, fb: RateFeedback) -> None:
        self.rate.sync(fb.remaining_requests, fb.remaining_tokens,
                       fb.reset_requests_s, fb.reset_tokens_s)

    def statistics(self) -> EndpointStatistics:
        return EndpointStatistics(
            name=self.name, outstanding=self.outstanding, calls=self.attempts,
            succeeded=self.succeeded, failed=self.failed, retries=self.retries,
            rate_limited=self.failures.get("rate_limited", 0),
            transient=self.failures.get("transient", 0),
            permanent=self.failures.get("permanent", 0),
            malformed=self.failures.get("malformed", 0),
            prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            mean_latency=self.latency_total / self.succeeded if self.succeeded else 0.0,
            circuit_open=self.breaker.is_open,
            concurrency_limit=self.concurrency.statistics().limit,
        )


def _kind(error: ModelCallError) -> str:
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, PermanentError):
        return "permanent"
    if isinstance(error, MalformedResponse):
        return "malformed"
    return "transient"


class ModelPool:
    """Roles (agent, user, judge) mapped to endpoints; see the module docstring."""

    def __init__(
        self,
        roles: Mapping[str, Sequence[Endpoint]],
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        params: Mapping[str, ModelParams] | None = None,
    ) -> None:
        if not roles:
            raise ValueError("a model pool needs at least one role")
        self.roles = {role: list(eps) for role, eps in roles.items()}
        self.params = dict(params or {})  # [models.params.<role>]
        self._merged: dict[tuple[str, str], ModelParams | None] = {}
        self.retry = retry or RetryPolicy()
        self.rng = rng or random.Random(0)
        self.log = get_logger(component="model_pool")

    def endpoints(self) -> list[Endpoint]:
        seen: dict[str, Endpoint] = {}
        for eps in self.roles.values():
            for ep in eps:
                seen.setdefault(ep.name, ep)
        return list(seen.values())

    def statistics(self) -> list[EndpointStatistics]:
        return [ep.statistics() for ep in self.endpoints()]

    def __repr__(self) -> str:
        live = sum(ep.outstanding for ep in self.endpoints())
        n = len(self.endpoints())
        return f"<ModelPool roles={sorted(self.roles)} endpoints={n} outstanding={live}>"

    def choose(self, role: str) -> Endpoint:
        """The healthy endpoint of ``role`` with the fewest outstanding calls."""
        try:
            candidates = self.roles[role]
        except KeyError:
            raise ValueError(f"no endpoints configured for role {role!r}") from None
        best: Endpoint | None = None
        for ep in sorted(candidates, key=lambda e: e.outstanding):
            if ep.breaker.allows():
                best = ep
                break
        if best is None:
            names = ", ".join(ep.name for ep in candidates)
            raise CircuitOpen(f"every endpoint of role {role!r} is failing ({names})")
        return best

    def params_for(self, role: str, endpoint: Endpoint) -> ModelParams | None:
        """The parameters ``role``'s requests to ``endpoint`` are sent with."""
        key = (role, endpoint.name)
        try:
            return self._merged[key]
        except KeyError:
            base = self.params.get(role)
            merged = base if endpoint.params is None else endpoint.params.over(base)
            self._merged[key] = merged
            return merged

    def parse_failure_handling(self, role: str,
                               endpoint: str) -> tuple[ParseFailurePolicy, int]:
        """``(policy, retries)`` for a tool call that ``endpoint`` passed through as text
        to ``role``: its params over the role's (``ModelParams.parse_failure_handling``)."""
        params: ModelParams | None = None
        for ep in self.roles.get(role, ()):
            if ep.name == endpoint:
                params = self.params_for(role, ep)
                break
        else:
            params = self.params.get(role)
        return (params or ModelParams()).parse_failure_handling()

    async def complete(self, role: str, request: ChatRequest) -> CallResult:
        """A completion for ``role``, retried within the pool's budget; each attempt is
        sent with the parameters of its role and endpoint (``params_for``)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        attempt = 0
        while True:
            attempt += 1
            endpoint = self.choose(role)
            try:
                result = await self._attempt(
                    endpoint, apply_params(request, self.params_for(role, endpoint)))
            except ModelCallError as error:
                decision = decide(self.retry, error, attempt, loop.time() - start, self.rng)
                if isinstance(decision, GiveUp):
                    # A failure that was never retried is reported as itself.
                    if attempt == 1 or decision.reason in ("permanent", "not retryable") or (
                        decision.reason.startswith("model output")
                    ):
                        raise
                    raise RetriesExhausted(error, attempt, decision.reason) from None
                endpoint.retries += 1
                self.log.info("model.retry", endpoint=endpoint.name, attempt=attempt,
                              error=str(error), delay=round(decision.delay, 3))
                await asyncio.sleep(decision.delay)
                continue
            if attempt > 1:
                result = msgspec.structs.replace(result, attempts=attempt)
            return result

    async def _attempt(self, endpoint: Endpoint, request: ChatRequest) -> CallResult:
        estimate = estimate_tokens(request)
        endpoint.outstanding += 1
        try:
            ticket = await endpoint.rate.acquire(estimate)
            sent = False
            try:
                await endpoint.concurrency.acquire()
                outcome = "neutral"
                try:
                    endpoint.attempts += 1
                    sent = True
                    result = await endpoint.client.complete(request)
                    outcome = "success"
                except ModelCallError as error:
                    outcome = self._record_failure(endpoint, error)
                    raise
                finally:
                    endpoint.concurrency.release(outcome)
            except BaseException:
                if not sent:
                    ticket.refund()  # never reached the server: give the budget back
                raise
        finally:
            endpoint.outstanding -= 1
        usage = result.usage
        ticket.reconcile(usage.prompt_tokens + usage.completion_tokens)
        endpoint.succeeded += 1
        endpoint.prompt_tokens += usage.prompt_tokens
        endpoint.completion_tokens += usage.completion_tokens
        endpoint.latency_total += result.latency
        endpoint.breaker.record_success()
        return result

    def _record_failure(self, endpoint: Endpoint, error: ModelCallError) -> str:
        kind = _kind(error)
        endpoint.failed += 1
        endpoint.failures[kind] = endpoint.failures.get(kind, 0) + 1
        if isinstance(error, RateLimited):
            if error.retry_after is not None:
                endpoint.rate.pause_until(endpoint.rate.clock() + error.retry_after)
            endpoint.breaker.record_other()
            return "overload"
        if isinstance(error, PermanentError):
            endpoint.breaker.record_permanent(error)
            return "neutral"
        endpoint.breaker.record_other()
        if isinstance(error, CallTimeout) or error.status == 503:
            return "overload"
        return "neutral"
