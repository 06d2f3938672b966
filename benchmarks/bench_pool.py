"""Model pool throughput and client CPU per call against the zero-latency mock server.

The mock server runs in its own process (uvloop, one core); each measurement runs in a
fresh client process (the other core) that keeps N calls in flight until it has made
its quota, and reports calls/s (wall) and client CPU microseconds per call (process
time). Two clients are measured in the same run: the full pool (rate limiter, AIMD
concurrency limiter, retries, accounting, stream assembly) and a bare aiohttp + msgspec
request, so the pool's own overhead is the difference.

    python benchmarks/bench_pool.py [--calls 12000] [--inflight 64,256,1024,4096]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from _common import table

GOAL_CALLS_PER_S = 6000  # at 64-256 in flight, non-streamed
GOAL_CALLS_PER_S_4096 = 3000
GOAL_OVERHEAD_US = 50

PROMPT = "I would like to change the flight on my reservation to the day after."


async def run_client(url: str, mode: str, stream: bool, inflight: int, calls: int) -> dict:
    from writ_async.llm.client import EndpointClient, Timeouts, open_session
    from writ_async.llm.limits import ConcurrencyLimiter, RateLimiter
    from writ_async.llm.pool import CircuitBreaker, Endpoint, ModelPool
    from writ_async.llm.protocol import (
        ChatRequest,
        Message,
        chunk_decoder,
        completion_decoder,
        encoder,
    )

    request = ChatRequest(model="mock", messages=[Message(role="user", content=PROMPT)],
                          stream=stream)
    async with open_session(inflight + 16) as session:
        if mode == "pool":
            endpoint = Endpoint(
                name="mock",
                client=EndpointClient("mock", url, session, timeouts=Timeouts()),
                rate=RateLimiter(None, None),
                concurrency=ConcurrencyLimiter(inflight, maximum=inflight),
                breaker=CircuitBreaker(),
            )
            pool = ModelPool({"agent": [endpoint]})

            async def one() -> None:
                await pool.complete("agent", request)
        else:
            body = encoder.encode(request)
            target = url + "/chat/completions"
            headers = {"Content-Type": "application/json"}

            async def one() -> None:
                async with session.post(target, data=body, headers=headers) as resp:
                    raw = await resp.read()
                if not stream:
                    completion_decoder.decode(raw)
                    return
                # The least a streaming client must do: split events, decode each chunk.
                for line in raw.split(b"\n"):
                    if line.startswith(b"data: ") and line != b"data: [DONE]":
                        chunk_decoder.decode(line[6:])

        remaining = calls

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        await asyncio.gather(*(worker() for _ in range(min(inflight, 64))))  # warm up
        remaining = calls
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(inflight)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"calls_per_s": calls / wall, "cpu_us": cpu / calls * 1e6}


def client_main(args: argparse.Namespace) -> None:
    coro = run_client(args.client, args.mode, args.stream, args.one_inflight, args.calls)
    if args.loop == "uvloop":
        import uvloop

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))


def measure(url: str, loop: str, mode: str, stream: bool, inflight: int, calls: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, "--loop", loop, "--mode", mode,
         "--one-inflight", str(inflight), "--calls", str(calls)]
        + (["--stream"] if stream else []),
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=12000)
    parser.add_argument("--inflight", default="64,256,1024,4096")
    parser.add_argument("--client")
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--mode", default="pool")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--one-inflight", type=int, default=64)
    args = parser.parse_args()
    if args.client:
        client_main(args)
        return

    server = subprocess.Popen(
        [sys.executable, "-m", "writ_async", "mock-server", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        url = server.stdout.readline().split()[-1]
        rows = []
        for loop in ("uvloop", "asyncio"):
            for stream in (False, True):
                for inflight in (int(n) for n in args.inflight.split(",")):
                    calls = max(args.calls, 3 * inflight)
                    pool = measure(url, loop, "pool", stream, inflight, calls)
                    bare = measure(url, loop, "bare", stream, inflight, calls)
                    rows.append([
                        loop, "yes" if stream else "no", inflight, calls,
                        f"{pool['calls_per_s']:,.0f}", f"{bare['calls_per_s']:,.0f}",
                        f"{pool['cpu_us']:.0f}", f"{bare['cpu_us']:.0f}",
                        f"{pool['cpu_us'] - bare['cpu_us']:+.0f}",
                    ])
        print(table(["loop", "stream", "in flight", "calls", "pool calls/s", "bare calls/s",
                     "pool CPU us/call", "bare CPU us/call", "pool overhead us"], rows))
        for row in rows:
            rate = float(row[4].replace(",", ""))
            goal = GOAL_CALLS_PER_S_4096 if row[2] == 4096 else GOAL_CALLS_PER_S
            if row[1] == "no" and row[2] in (64, 256, 4096):
                print(f"{row[0]} non-streamed, {row[2]} in flight: {rate / goal:.2f}x the "
                      f"{goal:,} calls/s goal; overhead {row[8]} us vs {GOAL_OVERHEAD_US} us")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
