"""``writ loadtest``: arguments, and the run from them to ``DIR/report.json``.

The lead wires it into ``writ_async.cli`` with ``loadtest.cli.add_parser(commands)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from writ_async.errors import ConfigError
from writ_async.loadtest.metrics import Objectives
from writ_async.loadtest.report import CONVERSATIONS_JSONL, REQUESTS_JSONL, write_report
from writ_async.loadtest.run import LoadConfig, run_load
from writ_async.loadtest.sweep import find_knee
from writ_async.loadtest.traffic import AgentTraffic, SyntheticTraffic, Traffic, parse_range


def add_parser(subcommands: Any) -> None:
    """Register ``loadtest`` on an argparse subparsers object."""
    p = subcommands.add_parser(
        "loadtest", help="load-test an OpenAI-compatible endpoint with agent conversations",
        description="Load-test an endpoint with realistic multi-turn agent traffic; "
                    "latencies are measured from the intended send time.")
    p.add_argument("--base-url", required=True, help="OpenAI base URL, e.g. http://host:8000/v1")
    p.add_argument("--model", required=True)
    p.add_argument("--api-key-env", metavar="VAR", help="environment variable with the API key")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, help="conversations in flight (closed loop)")
    load.add_argument("--rate", type=float, help="new conversations per second (open loop)")
    p.add_argument("--arrivals", choices=["constant", "poisson"], default="constant")
    p.add_argument("--sweep", metavar="L1,L2,...",
                   help="run one step per load (concurrencies, or rates with --rate) and "
                        "find the knee")
    p.add_argument("--duration", type=float, help="measured seconds per step")
    p.add_argument("--requests", type=int, help="measured requests per step")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds not measured (default 0)")
    p.add_argument("--ramp", type=float, default=0.0, help="spread the first conversations")
    p.add_argument("--drain", type=float, default=60.0, help="max seconds for in-flight requests")
    p.add_argument("--report", required=True, metavar="DIR", help="where the report goes")
    p.add_argument("--traffic", choices=["agent", "synthetic"], default="agent")
    p.add_argument("--from-run", metavar="RUN_DIR",
                   help="replay the chat requests a `writ simulate` run made (its episodes "
                        "as conversations, recorded order and contexts)")
    p.add_argument("--domain", default="airline", help="agent traffic: airline or retail")
    p.add_argument("--tasks", metavar="PATH", help="agent traffic: a tau2 tasks file")
    p.add_argument("--task-count", type=int, default=20, help="generated tasks (no --tasks)")
    p.add_argument("--user", choices=["scripted", "llm"], default="scripted",
                   help="scripted: only agent requests hit the endpoint; llm: both")
    p.add_argument("--max-steps", type=int, default=60)
    p.add_argument("--max-tokens", type=int, help="max_tokens of agent/user requests")
    p.add_argument("--turns", default="3", help="synthetic: turns, N or LOW-HIGH")
    p.add_argument("--system-tokens", default="500", help="synthetic: system prompt tokens")
    p.add_argument("--user-tokens", default="50-200", help="synthetic: user message tokens")
    p.add_argument("--output-tokens", default="20-100", help="synthetic: max_tokens")
    p.add_argument("--no-stream", action="store_true", help="non-streaming requests")
    p.add_argument("--retries", type=int, default=0)
    p.add_argument("--slo-ttft-ms", type=float)
    p.add_argument("--slo-e2e-ms", type=float)
    p.add_argument("--slo-tpot-ms", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    p.set_defaults(run=run)


def build_traffic(args: argparse.Namespace) -> Traffic:
    if args.from_run:
        from writ_async.loadtest.recorded import RecordedTraffic

        return RecordedTraffic(args.from_run)
    try:
        if args.traffic == "synthetic":
            return SyntheticTraffic(turns=parse_range(args.turns),
                                    system_tokens=parse_range(args.system_tokens),
                                    user_tokens=parse_range(args.user_tokens),
                                    output_tokens=parse_range(args.output_tokens),
                                    seed=args.seed)
    except ValueError as exc:
        raise ConfigError("<command line>", str(exc)) from None
    from domains import get_domain
    from writ_async.episode import Limits

    domain = get_domain(args.domain)
    base = domain.base(None, args.seed, 1.0)
    if args.tasks:
        from writ_async.tasks import load_tasks

        tasks = load_tasks(args.tasks)
    else:
        from writ_async.synthesis.tasks import generate_tasks

        tasks = generate_tasks(args.domain, base, args.task_count, args.seed)
    return AgentTraffic(domain, base, tasks, user=args.user, seed=args.seed,
                        limits=Limits(max_steps=args.max_steps), max_tokens=args.max_tokens)


def build_configs(args: argparse.Namespace) -> list[LoadConfig]:
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError("<command line>", f"environment variable {args.api_key_env} "
                              "is not set", "--api-key-env")
    mode = "rate" if args.rate is not None else "concurrency"
    if args.sweep:
        try:
            loads = [float(x) for x in args.sweep.split(",") if x.strip()]
        except ValueError:
            raise ConfigError("<command line>", f"--sweep: not numbers: {args.sweep}") from None
    else:
        loads = [args.rate if mode == "rate" else float(args.concurrency or 16)]
    duration = args.duration if args.duration is not None or args.requests else 30.0
    configs = []
    for load in loads:
        try:
            configs.append(LoadConfig(
                base_url=args.base_url, model=args.model, api_key=api_key,
                stream=not args.no_stream, mode=mode,
                concurrency=int(load) if mode == "concurrency" else 1,
                rate=load if mode == "rate" else 1.0, arrivals=args.arrivals,
                duration_s=duration, requests=args.requests, warmup_s=args.warmup,
                drain_s=args.drain, retries=args.retries, ramp_s=args.ramp, seed=args.seed,
                objectives=Objectives(ttft_ms=args.slo_ttft_ms, e2e_ms=args.slo_e2e_ms,
                                      tpot_ms=args.slo_tpot_ms)))
        except ValueError as exc:
            raise ConfigError("<command line>", str(exc)) from None
    return configs


def public_config(config: LoadConfig) -> dict[str, Any]:
    out = msgspec.to_builtins(config)
    out["api_key"] = None if config.api_key is None else "[set]"
    return out


async def load_test(configs: list[LoadConfig], traffic: Traffic, out: Path,
                    progress: Any = None) -> dict[str, Any]:
    """Run every step, write ``requests.jsonl``, ``conversations.jsonl`` and the reports;
    return the report."""
    out.mkdir(parents=True, exist_ok=True)
    steps = []
    with (out / REQUESTS_JSONL).open("wb") as records, \
            (out / CONVERSATIONS_JSONL).open("wb") as conversations:
        for i, config in enumerate(configs):
            run = await run_load(config, traffic, records=records, progress=progress, step=i,
                                 conversations=conversations)
            steps.append(run.summary())
    report = {"version": 1, "config": {**public_config(configs[0]),
                                       "loads": [c.load for c in configs],
                                       "traffic": traffic.describe()},
              "steps": steps, "knee": find_knee(steps) if len(steps) > 1 else None}
    write_report(out, report)
    return report


def run(args: argparse.Namespace) -> int:
    configs = build_configs(args)
    traffic = build_traffic(args)
    out = Path(args.report)
    coro = load_test(configs, traffic, out, None if args.quiet else sys.stderr)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for this platform
        report = asyncio.run(coro)
    else:
        report = uvloop.run(coro)
    for step in report["steps"]:
        t, lat = step["throughput"], step["latency_ms"]
        print(f"{step['mode']} {step['load']:g}: {t['requests_per_s']:.1f} req/s, "
              f"{t['output_tokens_per_s']:.0f} out tok/s, goodput {t['goodput_requests_per_s']:.1f}"
              f"/s, TTFT p50/p99 {lat['ttft_from_intended'].get('p50', 0):.1f}/"
              f"{lat['ttft_from_intended'].get('p99', 0):.1f} ms, e2e p50/p99 "
              f"{lat['e2e_from_intended'].get('p50', 0):.1f}/"
              f"{lat['e2e_from_intended'].get('p99', 0):.1f} ms, errors "
              f"{step['requests']['errors'] or 0}, conversations completed "
              f"{step['conversations']['completed_measured']} (duration p50 "
              f"{step['conversations']['duration_ms'].get('p50', 0):.0f} ms)"
              + (f" [client-bound: {'; '.join(step['client']['reasons'])}]"
                 if step["client"]["bottleneck"] else ""))
    if report["knee"]:
        print(f"knee: {report['knee']['load']:g} ({report['knee']['reason']})")
    print(f"report: {out / 'report.json'}, {out / 'report.html'}")
    return 0
