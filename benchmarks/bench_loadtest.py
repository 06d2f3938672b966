"""The highest open-loop request rate the load tester sustains against the zero-latency
mock while keeping send lag p99 under 1 ms (issue 7), counting successful requests only.

The mock runs in its own process (``python -m writ_async.loadtest.testing``: the mock
server, uvloop); the load tester runs here on uvloop. Each rate is one run of
single-turn synthetic conversations (a 50-token system prompt, a 10-token user message,
a streamed 8-48-token reply). A rate is sustained when every request succeeded, the
delivered rate is within 1 % of the target and the send lag p99 is under 1 ms.

    python benchmarks/bench_loadtest.py [--rates 250,500,1000,...] [--duration 3]

GuideLLM's figure against the same mock is not measured by this script yet (see
benchmarks/README.md and issue 7).
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import uvloop
from _common import table

from writ_async.loadtest.run import LoadConfig, run_load
from writ_async.loadtest.traffic import IntRange, SyntheticTraffic


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="250,500,1000,1500,2000,3000,4000")
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    traffic = SyntheticTraffic(turns=IntRange(1, 1), system_tokens=IntRange(50, 50),
                               user_tokens=IntRange(10, 10), output_tokens=None)
    with subprocess.Popen([sys.executable, "-m", "writ_async.loadtest.testing"],
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split()[-1]
            rows, best = [], 0.0
            for rate in rates:
                config = LoadConfig(base_url=url, model="m", mode="rate", rate=rate,
                                    duration_s=args.duration, warmup_s=1.0, drain_s=10)
                summary = uvloop.run(run_load(config, traffic)).summary()
                t, lag = summary["throughput"], summary["latency_ms"]["send_lag"]
                failed = summary["requests"]["failed"]
                ok = (failed == 0 and abs(t["requests_per_s"] - rate) <= 0.01 * rate
                      and lag.get("p99", 0.0) < 1.0)
                if ok:
                    best = max(best, rate)
                rows.append([f"{rate:g}", f"{t['requests_per_s']:.1f}", failed,
                             f"{lag.get('p50', 0):.3f}", f"{lag.get('p99', 0):.3f}",
                             f"{summary['latency_ms']['e2e'].get('p50', 0):.2f}",
                             f"{summary['client']['cpu_mean']:.0%}",
                             "yes" if ok else "no"])
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    print(table(["target req/s", "delivered ok req/s", "failed", "send lag p50 ms",
                 "send lag p99 ms", "e2e p50 ms", "client CPU", "sustained"], rows))
    print(f"\nhighest sustained rate: {best:g} req/s")


if __name__ == "__main__":
    main()
