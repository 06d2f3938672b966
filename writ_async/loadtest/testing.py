"""Test helpers: the mock server with its own exact per-request timings.

The mock's ``/stats`` summarises its handling time in 2 % buckets and says nothing of
time to first token. To check the load tester against what the server itself saw, this
wraps the mock's application (``build_app``; the mock is not modified) with a
middleware that records, per chat-completion request, the time from the handler's start
to its first body write (the server's TTFT: the first content chunk goes out with the
role chunk after the modelled delay) and to the end of the response. They are served at
``GET /loadtest/timings`` as ``ServerTimings`` (seconds) and cleared by
``POST /loadtest/timings/reset``.

``python -m writ_async.loadtest.testing --ttft-ms 50 ...`` serves the mock in its own
process (uvloop when available) and prints ``listening on URL`` once ready, so a test's
client does not share a CPU-bound event loop with the server it measures; ``--timings``
adds the timing layer (off by default: a throughput benchmark should not pay for it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import msgspec
from aiohttp import web

from writ_async.mock.config import FaultRates, MockConfig
from writ_async.mock.policies import ResponsePolicy
from writ_async.mock.server import build_app


class ServerTimings(msgspec.Struct, frozen=True):
    """Per answered request (status 200): its ``X-Request-Id`` and durations (s)."""

    ids: list[str] = msgspec.field(default_factory=list)
    ttft: list[float] = msgspec.field(default_factory=list)
    e2e: list[float] = msgspec.field(default_factory=list)


timings_decoder = msgspec.json.Decoder(ServerTimings)
_KEY: web.AppKey[dict[str, list[Any]]] = web.AppKey("loadtest_timings", dict)
_FIRST = "loadtest_first_write"


def instrument(app: web.Application) -> None:
    """Add the timing middleware and routes to a mock application not yet started."""
    store: dict[str, list[Any]] = {"ids": [], "ttft": [], "e2e": []}
    app[_KEY] = store

    @web.middleware
    async def timing(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                     ) -> web.StreamResponse:
        if request.path != "/v1/chat/completions":
            return await handler(request)
        start = time.perf_counter()
        response = await handler(request)
        end = time.perf_counter()
        if response.status == 200:
            first = request.get(_FIRST)
            store["ids"].append(request.headers.get("X-Request-Id", ""))
            store["ttft"].append((first if first is not None else end) - start)
            store["e2e"].append(end - start)
        return response

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if request.path != "/v1/chat/completions" or isinstance(response, web.Response):
            return
        write = response.write

        async def first_write(data: Any) -> None:
            if _FIRST not in request:
                request[_FIRST] = time.perf_counter()
            await write(data)

        response.write = first_write  # type: ignore[method-assign]

    async def get_timings(request: web.Request) -> web.Response:
        body = msgspec.json.encode(ServerTimings(store["ids"], store["ttft"], store["e2e"]))
        return web.Response(body=body, content_type="application/json")

    async def reset_timings(request: web.Request) -> web.Response:
        for values in store.values():
            values.clear()
        return web.Response()

    app.middlewares.append(timing)
    app.on_response_prepare.append(on_prepare)
    app.router.add_get("/loadtest/timings", get_timings)
    app.router.add_post("/loadtest/timings/reset", reset_timings)


@asynccontextmanager
async def open_timed_mock(config: MockConfig | None = None,
                          policy: ResponsePolicy | None = None, *,
                          timings: bool = True) -> AsyncIterator[str]:
    """Serve a mock (instrumented unless ``timings`` is false) in this process; yields its
    OpenAI base URL."""
    config = config or MockConfig()
    app = build_app(config, policy)
    if timings:
        instrument(app)
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, backlog=config.backlog)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/v1"
    finally:
        await runner.cleanup()



async def _serve(config: MockConfig, timings: bool) -> None:
    async with open_timed_mock(config, timings=timings) as url:
        print(f"listening on {url}", flush=True)
        await asyncio.get_running_loop().create_future()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m writ_async.loadtest.testing")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--tpot-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--reply-tokens", default="8-48", help="LOW-HIGH text reply length")
    parser.add_argument("--policy", choices=["plausible", "shape"], default="plausible")
    parser.add_argument("--fault", action="append", default=[], metavar="KIND=RATE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens-per-chunk", type=int, default=4)
    parser.add_argument("--timings", action="store_true",
                        help="serve per-request server timings at /loadtest/timings")
    args = parser.parse_args(argv)
    low, _, high = args.reply_tokens.partition("-")
    faults = {k: float(v) for k, _, v in (f.partition("=") for f in args.fault)}
    config = MockConfig(port=args.port, ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms,
                        jitter_ms=args.jitter_ms, reply_tokens_min=int(low),
                        reply_tokens_max=int(high or low), policy=args.policy, seed=args.seed,
                        faults=msgspec.convert(faults, FaultRates), backlog=4096,
                        tokens_per_chunk=args.tokens_per_chunk)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        run: Callable[[Any], Any] = asyncio.run
    else:
        run = uvloop.run
    with suppress(KeyboardInterrupt):
        run(_serve(config, args.timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
