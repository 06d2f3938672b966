"""The mock server's rate limits, as OpenAI applies and reports them: requests and tokens
per window in token buckets refilling continuously, and the ``x-ratelimit-*`` headers."""

from __future__ import annotations

import math
from collections.abc import Callable

from writ_async.mock.config import MockConfig


def format_duration(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: ``20ms``, ``1.5s``, ``6m0s``."""
    ms = math.ceil(seconds * 1000.0 - 1e-6)
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


class TokenBucket:
    """A token bucket of ``capacity`` refilling completely over ``window`` seconds."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, capacity: int, window: float, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / window
        self.level = float(capacity)
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(float(self.capacity), self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def shortfall(self, cost: int) -> float:
        """Seconds until ``cost`` fits (0: it fits now; inf: it never can)."""
        if cost <= self.level + 1e-6:  # a client that waited as told must get in
            return 0.0
        return math.inf if cost > self.capacity else (cost - self.level) / self.rate

    def reset_in(self) -> float:
        return (self.capacity - self.level) / self.rate


class RateLimits:
    """The server's request and token buckets (either may be off)."""

    __slots__ = ("clock", "requests", "tokens")

    def __init__(self, config: MockConfig, clock: Callable[[], float]) -> None:
        now = clock()
        window = config.rate_window_s
        self.clock = clock
        self.requests = TokenBucket(config.rpm_limit, window, now) if config.rpm_limit else None
        self.tokens = TokenBucket(config.tpm_limit, window, now) if config.tpm_limit else None

    def admit(self, tokens: int) -> tuple[float, str, dict[str, str]]:
        """Take one request and ``tokens`` if both fit: ``(0, "", headers)``; otherwise
        take nothing and return the wait, what ran out, and headers with retry-after."""
        now = self.clock()
        wait, why = 0.0, ""
        for bucket, cost, what in ((self.requests, 1, "requests"),
                                   (self.tokens, tokens, "tokens")):
            if bucket is not None:
                bucket.refill(now)
                short = bucket.shortfall(cost)
                if short > wait:
                    wait, why = short, what
        if wait == 0.0:
            if self.requests is not None:
                self.requests.level -= 1
            if self.tokens is not None:
                self.tokens.level -= tokens
            return 0.0, "", self.headers()
        headers = self.headers()
        if math.isinf(wait):  # larger than the whole budget: say when it is full again
            assert self.tokens is not None
            wait = max(self.tokens.reset_in(), 0.001)
        headers["retry-after"] = str(max(1, math.ceil(wait)))
        headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000.0)))
        return wait, why, headers

    def peek(self) -> dict[str, str]:
        now = self.clock()
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket.refill(now)
        return self.headers()

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for bucket, what in ((self.requests, "requests"), (self.tokens, "tokens")):
            if bucket is not None:
                out[f"x-ratelimit-limit-{what}"] = str(bucket.capacity)
                out[f"x-ratelimit-remaining-{what}"] = str(max(0, int(bucket.level)))
                out[f"x-ratelimit-reset-{what}"] = format_duration(bucket.reset_in())
        return out
