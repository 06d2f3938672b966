"""The highest open-loop request rate the load tester sustains against the zero-latency
mock while keeping send lag p99 under 1 ms, and GuideLLM's figure against the same mock
process in the same run (issue 7), counting successful requests only.

The mock runs in its own process (``python -m writ_async.loadtest.testing``: the mock
server, uvloop); the load tester runs here on uvloop, then GuideLLM (its own cached venv,
see ``_guidellm.py``) runs against the same mock. Both send the same requests: single-turn
synthetic conversations (a 50-token system prompt, a 10-token user message, a streamed
8-48-token reply). Every rate runs ``--warmup`` seconds, not counted, then ``--duration``
measured seconds.

A rate is sustained when every request scheduled in the measured window succeeded, the
delivered rate (successful sends in the window / its length) is within 1 % of the target
(or one request, where that is more) and the send lag p99 is under 1 ms. GuideLLM's send
lag is its own ``request_dispatch_delay`` (``request_start - targeted_start`` per request). Because
GuideLLM misses the 1 ms lag bound at every rate here, its table also shows the rate it
sustains without the lag condition, and the headline ratio compares writ under the full
criterion with GuideLLM under that looser one.

    python benchmarks/bench_loadtest.py [--rates 1000,2000,...] [--guidellm-rates 25,50,...]
        [--duration 3] [--warmup 1] [--guidellm-workers N] [--no-guidellm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import _guidellm
import uvloop
from _common import table

from writ_async.errors import ModelCallError
from writ_async.llm.protocol import ChatRequest
from writ_async.loadtest.run import LoadConfig, run_load
from writ_async.loadtest.traffic import IntRange, SyntheticTraffic

GOAL = 10.0  # the goal: at least 10 x the peer's sustainable rate


def within(delivered: float, rate: float, duration: float) -> bool:
    """Delivered within 1 % of the target, or within one request where 1 % of the
    window's requests is less than one (low rates)."""
    return abs(delivered - rate) * duration <= max(0.01 * rate * duration, 1.0)


def make_traffic() -> SyntheticTraffic:
    return SyntheticTraffic(turns=IntRange(1, 1), system_tokens=IntRange(50, 50),
                            user_tokens=IntRange(10, 10), output_tokens=None)


class _FirstRequest:
    """A sender that keeps the first request of a conversation and ends it there."""

    def __init__(self) -> None:
        self.request: ChatRequest | None = None

    async def complete(self, role: str, request: ChatRequest) -> Any:
        self.request = request
        raise ModelCallError("recorded")


def same_prompts(traffic: SyntheticTraffic, n: int) -> list[list[dict[str, str]]]:
    """The messages writ's synthetic traffic sends, conversation by conversation, so that
    GuideLLM sends exactly the same requests."""
    async def collect() -> list[list[dict[str, str]]]:
        out = []
        for i in range(n):
            sender = _FirstRequest()
            await traffic.converse(i, sender)
            assert sender.request is not None
            out.append([{"role": m.role, "content": m.content or ""}
                        for m in sender.request.messages])
        return out
    return asyncio.run(collect())


def writ_rates(url: str, rates: list[float], duration: float, warmup: float
               ) -> tuple[list[list[Any]], float]:
    traffic = make_traffic()
    rows, best = [], 0.0
    for rate in rates:
        config = LoadConfig(base_url=url, model="m", mode="rate", rate=rate,
                            duration_s=duration, warmup_s=warmup, drain_s=10)
        summary = uvloop.run(run_load(config, traffic)).summary()
        t, lag = summary["throughput"], summary["latency_ms"]["send_lag"]
        failed = summary["requests"]["failed"]
        ok = (failed == 0 and within(t["requests_per_s"], rate, duration)
              and lag.get("p99", 0.0) < 1.0)
        if ok:
            best = max(best, rate)
        rows.append([f"{rate:g}", f"{t['requests_per_s']:.1f}", failed,
                     f"{lag.get('p50', 0):.3f}", f"{lag.get('p99', 0):.3f}",
                     f"{summary['latency_ms']['e2e'].get('p50', 0):.2f}",
                     f"{summary['client']['cpu_mean']:.0%}", "yes" if ok else "no"])
    return rows, best


def guidellm_rates(url: str, rates: list[float], duration: float, warmup: float,
                   workers: int | None, out_dir: Path) -> tuple[list[list[Any]], float, float]:
    """GuideLLM at every rate (one GuideLLM process); the highest rate sustained under the
    full criterion and the highest without the send-lag condition."""
    n = int(max(rates) * (warmup + duration + 1)) + 100
    prompts = _guidellm.write_prompts(out_dir / "prompts.jsonl", same_prompts(make_traffic(), n))
    results = _guidellm.run(url, "m", prompts, _guidellm.Profile("constant", tuple(rates)),
                            out_dir, max_seconds=warmup + duration + 0.5, workers=workers)
    rows, strict, loose = [], 0.0, 0.0
    for rate, result in zip(rates, results, strict=True):
        w = result.window(warmup, duration)
        lag = w["lag_ms"]
        delivered_ok = (w["errored"] == 0 and w["incomplete"] == 0 and w["successful"] > 0
                        and within(w["delivered_per_s"], rate, duration))
        ok = delivered_ok and lag.get("p99", float("inf")) < 1.0
        if ok:
            strict = max(strict, rate)
        if delivered_ok:
            loose = max(loose, rate)
        rows.append([f"{rate:g}", f"{w['delivered_per_s']:.1f}", w["errored"], w["incomplete"],
                     f"{lag.get('p50', 0):.3f}", f"{lag.get('p99', 0):.3f}",
                     f"{result.e2e_ms.get('p50', 0):.2f}", "yes" if ok else "no",
                     "yes" if delivered_ok else "no"])
        for error, count in result.errors.most_common(3):
            print(f"  guidellm {rate:g} req/s: {count} x {error}")
    return rows, strict, loose


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="1000,1500,2000,3000,4000,5000,6000,8000,10000")
    parser.add_argument("--guidellm-rates", default="50,100,200,300,400,500,600,800")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--guidellm-workers", type=int, default=None,
                        help="GuideLLM worker processes (default: its own, 10)")
    parser.add_argument("--no-guidellm", action="store_true")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    g_rates = [float(r) for r in args.guidellm_rates.split(",")]
    print(f"uptime before: {os.getloadavg()}")
    with subprocess.Popen([sys.executable, "-m", "writ_async.loadtest.testing"],
                          stdout=subprocess.PIPE, text=True) as proc, \
            tempfile.TemporaryDirectory() as tmp:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split()[-1]
            w_rows, w_best = writ_rates(url, rates, args.duration, args.warmup)
            if not args.no_guidellm:
                print(f"guidellm {_guidellm.guidellm_version()} against the same mock ...",
                      flush=True)
                g_rows, g_strict, g_loose = guidellm_rates(
                    url, g_rates, args.duration, args.warmup, args.guidellm_workers,
                    Path(tmp))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"uptime after: {os.getloadavg()}\n")
    print("writ loadtest (open loop, constant arrivals):")
    print(table(["target req/s", "delivered ok req/s", "failed", "send lag p50 ms",
                 "send lag p99 ms", "e2e p50 ms", "client CPU", "sustained"], w_rows))
    print(f"\nwrit: highest sustained rate {w_best:g} req/s")
    if args.no_guidellm:
        return
    print("\nGuideLLM (profile constant; send lag = its request_dispatch_delay):")
    print(table(["target req/s", "delivered ok req/s", "errored", "incomplete",
                 "send lag p50 ms", "send lag p99 ms", "e2e p50 ms", "sustained",
                 "sustained without lag bound"], g_rows))
    print(f"\nGuideLLM: highest sustained rate {g_strict:g} req/s"
          + ("" if g_strict else f" (none of {args.guidellm_rates} req/s kept send lag p99 "
             "under 1 ms)")
          + f"; without the lag bound {g_loose:g} req/s")
    if g_loose:
        ratio = w_best / g_loose
        print(f"ratio writ (full criterion) / GuideLLM (no lag bound): {ratio:.1f}x "
              f"(goal {GOAL:g}x: {'met' if ratio >= GOAL else 'not met'})")
    if g_strict:
        print(f"ratio under the same full criterion: {w_best / g_strict:.1f}x")


if __name__ == "__main__":
    main()
