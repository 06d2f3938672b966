"""Build a running model pool from the ``[models]`` configuration.

``open_pool(config)`` owns every resource the pool needs for its lifetime: one aiohttp
session per endpoint, and the embedded mock server when an endpoint's ``base_url`` is
``"mock"``. API keys are read from the environment variables the config names, never
from the file; a variable that is named but unset is a ConfigError naming the key.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from writ_async.config import EndpointConfig, ModelsConfig
from writ_async.errors import ConfigError
from writ_async.llm.client import EndpointClient, Timeouts, open_session
from writ_async.llm.limits import ConcurrencyLimiter, RateLimiter
from writ_async.llm.pool import CircuitBreaker, Endpoint, ModelPool
from writ_async.llm.retry import RetryPolicy
from writ_async.seeds import pool_rng

MOCK = "mock"
RateLimiterFactory = Callable[[str, EndpointConfig], RateLimiter]


def api_key_for(name: str, settings: EndpointConfig, environ: Mapping[str, str],
                source: Path | str) -> str | None:
    if settings.api_key_env is None:
        return None
    key = environ.get(settings.api_key_env)
    if not key:
        raise ConfigError(source, f"environment variable {settings.api_key_env} is not set",
                          f"models.endpoints.{name}.api_key_env")
    return key


def mock_model_names(config: ModelsConfig) -> list[str]:
    """The model names of the endpoints served by the mock, in order, once each: what its
    ``GET /v1/models`` lists (a client that discovers its model asks there)."""
    return list(dict.fromkeys(endpoint.model for endpoint in config.endpoints.values()
                              if endpoint.base_url == MOCK))


@asynccontextmanager
async def open_pool(
    config: ModelsConfig,
    *,
    source: Path | str = "config.toml",
    environ: Mapping[str, str] | None = None,
    mock_config: object | None = None,
    mock_policy: object | None = None,
    seed: int = 0,
    rate_limiter: RateLimiterFactory | None = None,
) -> AsyncIterator[ModelPool]:
    """A ready ``ModelPool`` for the configured roles; everything closes on exit.

    ``rate_limiter(name, settings)``, when given, makes each endpoint's rate limiter
    instead of a local one from its limits (e.g. one drawing on a cluster-wide budget)."""
    environ = os.environ if environ is None else environ
    used = {name for names in config.roles.values() for name in names}
    async with AsyncExitStack() as stack:
        mock_url: str | None = None
        endpoints: dict[str, Endpoint] = {}
        for name in sorted(used):
            settings = config.endpoints[name]
            base_url = settings.base_url
            if base_url == MOCK:
                if mock_url is None:
                    from writ_async.mock.server import MockConfig, open_mock_server

                    server = await stack.enter_async_context(open_mock_server(
                        mock_config or MockConfig(seed=seed), mock_policy,  # type: ignore[arg-type]
                        listed_models=mock_model_names(config)))
                    mock_url = server.url
                base_url = mock_url
            session = await stack.enter_async_context(open_session(settings.max_concurrency * 2))
            endpoint = _endpoint(name, settings, base_url, session,
                                 api_key_for(name, settings, environ, source),
                                 None if rate_limiter is None else rate_limiter(name, settings))
            endpoints[name] = endpoint
        roles = {role: [endpoints[n] for n in names] for role, names in config.roles.items()}
        retry = RetryPolicy(
            max_attempts=config.retry.max_attempts, deadline_s=config.retry.deadline_s,
            backoff_base_s=config.retry.backoff_base_s, backoff_cap_s=config.retry.backoff_cap_s,
        )
        yield ModelPool(roles, retry=retry, rng=pool_rng(seed), params=config.params)


def _endpoint(name: str, settings: EndpointConfig, base_url: str, session: object,
              api_key: str | None, rate: RateLimiter | None = None) -> Endpoint:
    t = settings.timeouts
    # burst=1.0: never more than the configured amount in any window (see limits.py)
    if rate is None:
        rate = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute, burst=1.0)
    endpoint = Endpoint(
        name=name,
        client=EndpointClient(
            name, base_url, session,  # type: ignore[arg-type]
            model=settings.model, stream=settings.stream, api_key=api_key,
            require_usage=settings.require_usage, api=settings.api,
            timeouts=Timeouts(connect=t.connect, first_token=t.first_token, idle=t.idle,
                              total=t.total),
        ),
        rate=rate,
        concurrency=ConcurrencyLimiter(settings.initial_concurrency,
                                       maximum=settings.max_concurrency),
        breaker=CircuitBreaker(),
        params=settings.params,
    )
    endpoint.client.on_feedback = endpoint.feedback
    return endpoint
