"""``writ loadtest``: arguments, and the run from them to ``DIR/report.json``.

The lead wires it into ``writ_async.cli`` with ``loadtest.cli.add_parser(commands)``.

A run always ends by itself: without ``--duration`` or ``--requests`` each step is
measured for ``DEFAULT_DURATION_S``, and the printed plan says so. Ctrl-C or SIGTERM
stops it early: no new request is sent, those in flight finish (a second signal cancels
them), the report of what completed is written and marked partial, and the command
exits as a process that signal stopped (130 / 143), as ``writ simulate`` does. A run in
which not one request was answered (a dead port, every call refused) exits 1 with the
cause in one line; its latencies are n/a, not 0 ms. When the first requests all fail to
connect (``run.UNREACHABLE_AFTER``, or one per conversation slot if more) the run stops
there instead of waiting out its bound, and no later step starts.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec

from writ_async.engine.scheduler import StopRequest, install_stop_signals
from writ_async.errors import ConfigError
from writ_async.llm.protocol import ModelParams
from writ_async.loadtest.metrics import Objectives
from writ_async.loadtest.report import CONVERSATIONS_JSONL, REQUESTS_JSONL, write_report
from writ_async.loadtest.run import INTERRUPTED, UNREACHABLE, LoadConfig, LoadRun, run_load
from writ_async.loadtest.sweep import find_knee
from writ_async.loadtest.traffic import AgentTraffic, SyntheticTraffic, Traffic, parse_range

DEFAULT_DURATION_S = 30.0  # measured seconds per step when neither bound is given


def add_parser(subcommands: Any) -> None:
    """Register ``loadtest`` on an argparse subparsers object."""
    p = subcommands.add_parser(
        "loadtest", help="load-test an OpenAI-compatible endpoint with agent conversations",
        description="Load-test an endpoint with realistic multi-turn agent traffic; "
                    "latencies are measured from the intended send time.")
    p.add_argument("--base-url", required=True,
                   help="OpenAI base URL, e.g. http://host:8000/v1 (required)")
    p.add_argument("--model", required=True, help="model name sent in each request (required)")
    p.add_argument("--api-key-env", metavar="VAR",
                   help="environment variable with the API key (default: no key sent)")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int,
                      help="conversations in flight, closed loop (default: 16 without --rate)")
    load.add_argument("--rate", type=float,
                      help="new conversations per second, open loop (default: closed loop, "
                           "see --concurrency)")
    p.add_argument("--arrivals", choices=["constant", "poisson"], default="constant",
                   help="with --rate: spacing of conversation starts (default: %(default)s)")
    p.add_argument("--sweep", metavar="L1,L2,...",
                   help="run one step per load (concurrencies, or rates with --rate) and "
                        "find the knee (default: one step)")
    p.add_argument("--duration", type=float,
                   help="measured seconds per step (default: 30 unless --requests is given)")
    p.add_argument("--requests", type=int,
                   help="measured requests per step (default: no count; see --duration)")
    p.add_argument("--warmup", type=float, default=0.0,
                   help="seconds at the start that are not measured (default: %(default)s)")
    p.add_argument("--ramp", type=float, default=0.0,
                   help="seconds over which the first conversations are spread "
                        "(default: %(default)s, all at once)")
    p.add_argument("--drain", type=float, default=60.0,
                   help="max seconds to wait for in-flight requests after a step "
                        "(default: %(default)s)")
    p.add_argument("--report", required=True, metavar="DIR",
                   help="directory for report.json, report.html and the records (required)")
    p.add_argument("--traffic", choices=["agent", "synthetic"], default="agent",
                   help="agent: tau2-style episodes of --domain; synthetic: sized chat "
                        "turns (default: %(default)s)")
    p.add_argument("--from-run", metavar="RUN_DIR",
                   help="replay the chat requests a `writ simulate` run made (its episodes "
                        "as conversations, recorded order and contexts) (default: generate "
                        "traffic)")
    p.add_argument("--domain", default="airline",
                   help="agent traffic: airline or retail (default: %(default)s)")
    p.add_argument("--tasks", metavar="PATH",
                   help="agent traffic: a tau2 tasks file (default: --task-count generated)")
    p.add_argument("--task-count", type=int, default=20,
                   help="agent traffic: tasks generated when no --tasks (default: %(default)s)")
    p.add_argument("--user", choices=["scripted", "llm"], default="scripted",
                   help="scripted: only agent requests hit the endpoint; llm: both "
                        "(default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=60,
                   help="agent traffic: max steps per conversation, as in tau2 "
                        "(default: %(default)s)")
    p.add_argument("--max-tokens", type=int,
                   help="max_tokens of agent/user requests (default: not sent, the "
                        "server's own)")
    p.add_argument("--turns", default="3",
                   help="synthetic: turns, N or LOW-HIGH (default: %(default)s)")
    p.add_argument("--system-tokens", default="500",
                   help="synthetic: system prompt tokens, N or LOW-HIGH (default: %(default)s)")
    p.add_argument("--user-tokens", default="50-200",
                   help="synthetic: user message tokens, N or LOW-HIGH (default: %(default)s)")
    p.add_argument("--output-tokens", default="20-100",
                   help="synthetic: max_tokens per request, N or LOW-HIGH "
                        "(default: %(default)s)")
    p.add_argument("--params", metavar="CONFIG",
                   help="send the request parameters of this config.toml's roles "
                        "([models.params.<role>], under the endpoint's own) (default: none)")
    p.add_argument("--endpoint", metavar="NAME",
                   help="with --params: the endpoint whose parameters apply (default: each "
                        "role's first endpoint)")
    p.add_argument("--no-stream", action="store_true",
                   help="non-streaming requests (default: streaming)")
    p.add_argument("--api", choices=("chat", "responses"), default="chat",
                   help="chat completions (POST .../chat/completions) or OpenAI's Responses "
                        "API (POST .../responses) (default: %(default)s)")
    p.add_argument("--retries", type=int, default=0,
                   help="retries of a failed request (default: %(default)s)")
    p.add_argument("--slo-ttft-ms", type=float, metavar="MS",
                   help="objective: time to first token; goodput counts requests within "
                        "every objective (default: none)")
    p.add_argument("--slo-e2e-ms", type=float, metavar="MS",
                   help="objective: end-to-end request latency (default: none)")
    p.add_argument("--slo-tpot-ms", type=float, metavar="MS",
                   help="objective: time per output token (default: none)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the tasks, traffic and arrivals (default: %(default)s)")
    p.add_argument("--quiet", action="store_true",
                   help="no live progress line (default: progress on stderr)")
    p.set_defaults(run=run)


def build_traffic(args: argparse.Namespace) -> Traffic:
    if args.from_run:
        from domains import get_domain
        from writ_async.engine.replay.run import run_config
        from writ_async.loadtest.recorded import RecordedTraffic

        # The registry is looked up here, on the domain the run's manifest names.
        _, config = run_config(args.from_run)
        return RecordedTraffic(args.from_run, get_domain(config.run.domain))
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
    from writ_async.conversation.episode import Limits

    domain = get_domain(args.domain)
    base = domain.base(None, args.seed, 1.0)
    if args.tasks:
        from writ_async.conversation.task import load_tasks

        tasks = load_tasks(args.tasks)
    else:
        from writ_async.synthesis.driver import generate_tasks

        tasks = generate_tasks(domain, base, args.task_count, args.seed)
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
    params = _role_params(args.params, args.endpoint) if args.params else {}
    duration = (args.duration if args.duration is not None or args.requests is not None
                else DEFAULT_DURATION_S)
    configs = []
    for load in loads:
        try:
            configs.append(LoadConfig(
                base_url=args.base_url, model=args.model, api_key=api_key, api=args.api,
                stream=not args.no_stream, mode=mode,
                concurrency=int(load) if mode == "concurrency" else 1,
                rate=load if mode == "rate" else 1.0, arrivals=args.arrivals,
                duration_s=duration, requests=args.requests, warmup_s=args.warmup,
                drain_s=args.drain, retries=args.retries, ramp_s=args.ramp, seed=args.seed,
                objectives=Objectives(ttft_ms=args.slo_ttft_ms, e2e_ms=args.slo_e2e_ms,
                                      tpot_ms=args.slo_tpot_ms), params=params))
        except ValueError as exc:
            raise ConfigError("<command line>", str(exc)) from None
    return configs


def _role_params(path: str, endpoint: str | None) -> dict[str, ModelParams]:
    """Each role's parameters in the config at ``path``: the endpoint's (``endpoint``,
    or the role's first) over the role's, as the engine's pool sends them."""
    from writ_async.config import load_config

    models = load_config(Path(path)).models
    if endpoint is not None and endpoint not in models.endpoints:
        raise ConfigError("<command line>", f"--endpoint: no endpoint `{endpoint}` in "
                          f"{path} (it has: {', '.join(sorted(models.endpoints))})",
                          "--endpoint")
    out: dict[str, ModelParams] = {}
    for role in ("agent", "user"):
        name = endpoint or next(iter(models.roles.get(role, ())), None)
        settings = None if name is None else models.endpoints.get(name)
        base = models.params.get(role)
        top = None if settings is None else settings.params
        merged = base if top is None else top.over(base)
        if merged is not None:
            out[role] = merged
    return out


def public_config(config: LoadConfig) -> dict[str, Any]:
    out = msgspec.to_builtins(config)
    out["api_key"] = None if config.api_key is None else "[set]"
    return out


class LoadStop(StopRequest):
    """Ctrl-C / SIGTERM during a load test. The first: the step running sends nothing
    new and its requests in flight finish (within ``--drain``); no later step starts.
    The second: those in flight are cancelled. ``exit_status`` is the scheduler's."""

    def __init__(self, notice: Callable[[str], None] | None = None) -> None:
        super().__init__(notice)
        self.run: LoadRun | None = None  # the step running now
        self.in_flight = lambda: self.run.in_flight if self.run is not None else 0

    def attach(self, run: LoadRun) -> None:
        """``run_load``'s ``on_start``: the step about to run (stopped at once if the
        stop came between steps)."""
        self.run = run
        if not self.admitting:
            run.interrupt()

    def __call__(self, sig: int | None = None) -> None:
        self.requests += 1
        self.admitting = False
        if self.signal is None and sig is not None:
            self.signal = sig
        run, running = self.run, self.in_flight()
        plural = "" if running == 1 else "s"
        if self.requests == 1:
            drain = f" (at most {run.config.drain_s:g} s)" if run is not None else ""
            self._notice(f"stopping: no new requests; finishing {running} request{plural} "
                         f"in flight{drain}, then writing the report of what completed; "
                         "Ctrl-C again to cancel them")
            if run is not None:
                run.interrupt()
        else:
            self._notice(f"cancelling {running} request{plural} in flight")
            if run is not None:
                run.cancel_in_flight()

    def signal_name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else "SIGINT"


async def load_test(configs: list[LoadConfig], traffic: Traffic, out: Path,
                    progress: Any = None, stop: LoadStop | None = None) -> dict[str, Any]:
    """Run every step, write ``requests.jsonl``, ``conversations.jsonl`` and the reports;
    return the report. With ``stop``, Ctrl-C and SIGTERM stop the run (``LoadStop``) and
    the report has the steps run so far, marked partial."""
    out.mkdir(parents=True, exist_ok=True)
    steps = []
    loop = asyncio.get_running_loop()
    installed = install_stop_signals(loop, stop) if stop is not None else []
    try:
        with (out / REQUESTS_JSONL).open("wb") as records, \
                (out / CONVERSATIONS_JSONL).open("wb") as conversations:
            for i, config in enumerate(configs):
                if stop is not None and not stop.admitting:
                    break
                run = await run_load(config, traffic, records=records, progress=progress,
                                     step=i, conversations=conversations,
                                     on_start=None if stop is None else stop.attach)
                steps.append(run.summary())
                if run.stop_reason == UNREACHABLE:
                    break  # a higher load will not connect either
        partial = stop is not None and not stop.admitting
        # The knee is read from whole steps only: a step cut short measured less.
        whole = [step for step in steps if step["stop_reason"] != INTERRUPTED]
        report = {"version": 1, "config": {**public_config(configs[0]),
                                           "loads": [c.load for c in configs],
                                           "traffic": traffic.describe()},
                  "partial": partial,
                  "stopped_by": stop.signal_name() if partial and stop is not None else None,
                  "steps_planned": len(configs),
                  "steps": steps, "knee": find_knee(whole) if len(whole) > 1 else None}
        write_report(out, report)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return report


def describe_plan(configs: list[LoadConfig], args: argparse.Namespace) -> str:
    """One line: what will be loaded, how, and when it stops (the bound is always said,
    the default one too)."""
    first = configs[0]
    loads = ", ".join(f"{c.load:g}" for c in configs)
    what = "concurrency" if first.mode == "concurrency" else "rate (conversations/s)"
    if args.duration is None and args.requests is None:
        bound = (f"{first.duration_s:g} s (no --duration or --requests: the default "
                 "bound)")
    elif first.duration_s is not None and first.requests is not None:
        bound = f"{first.duration_s:g} s or {first.requests} requests, whichever is first"
    elif first.duration_s is not None:
        bound = f"{first.duration_s:g} s"
    else:
        bound = f"{first.requests} requests"
    warmup = f" after a {first.warmup_s:g} s warm-up" if first.warmup_s else ""
    steps = f"{len(configs)} steps" if len(configs) > 1 else "1 step"
    return (f"loadtest: {first.base_url}, {what} {loads}, {steps}; each stops after "
            f"{bound}{warmup}, then gives requests in flight up to {first.drain_s:g} s; "
            f"Ctrl-C stops early and writes what completed to {args.report}")


def _ms(summary: dict[str, Any], *keys: str, digits: int = 1) -> str:
    """``a/b ms`` of the given percentiles; n/a when nothing was measured."""
    values = [summary.get(key) for key in keys]
    if any(v is None for v in values):
        return "n/a"
    return "/".join(f"{v:.{digits}f}" for v in values) + " ms"


def _errors(step: dict[str, Any]) -> str:
    errors = step["requests"]["errors"]
    total = sum(errors.values())
    if not total:
        return "errors 0"
    return f"errors {total} (" + ", ".join(f"{k} {n}" for k, n in errors.items()) + ")"


def _tools(step: dict[str, Any]) -> str:
    """``, tool calls R (parse failures F)`` for a step whose requests offered tools."""
    tools = step.get("tools") or {}
    if not tools.get("answers"):
        return ""
    return (f", tool calls {tools['tool_call_rate']:.1%} of {tools['answers']} answers "
            f"(parse failures {tools['parse_failure_rate']:.1%})")


def failure_cause(report: dict[str, Any]) -> str | None:
    """The one-line cause when not one measured request was answered, else None."""
    for step in report["steps"]:
        gone = step.get("unreachable")
        if gone is not None:
            # Counted over every request, warm-up included: the stop came from them all.
            n = gone["failed_connects"]
            detail = " ".join(gone["detail"].split())
            return (f"no request was answered: the first {n} requests all failed to "
                    f"connect, so the run stopped early" + (f"; {detail}" if detail else ""))
    measured = sum(s["requests"]["measured"] for s in report["steps"])
    if not measured or any(s["requests"]["ok"] for s in report["steps"]):
        return None
    examples: dict[str, str] = {}
    counts: dict[str, int] = {}
    for step in report["steps"]:
        for kind, n in step["requests"]["errors"].items():
            counts[kind] = counts.get(kind, 0) + n
        for kind, detail in step["requests"].get("error_examples", {}).items():
            examples.setdefault(kind, detail)
    worst = max(counts, key=lambda k: counts[k])
    detail = " ".join(examples.get(worst, "").split())  # one line, whatever the server said
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    return (f"no request was answered: {measured} of {measured} failed ({kinds})"
            + (f"; {worst}: {detail}" if detail else ""))


def run(args: argparse.Namespace) -> int:
    stop = LoadStop()

    def early(sig: int, frame: FrameType | None) -> None:
        # A signal before the event loop takes over (while traffic is generated): nothing
        # was sent, so there is nothing to report; exit as the signal asks, no traceback.
        stop.signal = sig
        raise KeyboardInterrupt

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # (only there can it)
        previous = {sig: signal.signal(sig, early) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        configs = build_configs(args)
        traffic = build_traffic(args)
        out = Path(args.report)
        print(describe_plan(configs, args), flush=True)
        coro = load_test(configs, traffic, out, None if args.quiet else sys.stderr, stop)
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is not built for this platform
            report = asyncio.run(coro)
        else:
            report = uvloop.run(coro)
    except KeyboardInterrupt:
        # Only outside the event loop's own handlers: before the first step, or in the
        # instant after the report was written.
        when = ("before the load test started; nothing was sent" if stop.run is None
                else f"after the last step; see {args.report}")
        print(f"\nwrit: stopped by {stop.signal_name()} {when}", file=sys.stderr)
        return stop.exit_status()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for step in report["steps"]:
        t, lat = step["throughput"], step["latency_ms"]
        conv = step["conversations"]
        print(f"{step['mode']} {step['load']:g}: {t['requests_per_s']:.1f} req/s, "
              f"{t['output_tokens_per_s']:.0f} out tok/s, goodput {t['goodput_requests_per_s']:.1f}"
              f"/s, TTFT p50/p99 {_ms(lat['ttft_from_intended'], 'p50', 'p99')}, "
              f"e2e p50/p99 {_ms(lat['e2e_from_intended'], 'p50', 'p99')}, {_errors(step)}, "
              f"conversations completed {conv['completed_measured']} (duration p50 "
              f"{_ms(conv['duration_ms'], 'p50', digits=0)})" + _tools(step)
              + (" [stopped early]" if step["stop_reason"] == INTERRUPTED else "")
              + (" [stopped early: unreachable]" if step["stop_reason"] == UNREACHABLE
                 else "")
              + (f" [client-bound: {'; '.join(step['client']['reasons'])}]"
                 if step["client"]["bottleneck"] else ""))
    if report["knee"]:
        print(f"knee: {report['knee']['load']:g} ({report['knee']['reason']})")
    if report["partial"]:
        cut = any(step["stop_reason"] == INTERRUPTED for step in report["steps"])
        print(f"partial report: stopped by {report['stopped_by']}; {len(report['steps'])} of "
              f"{report['steps_planned']} steps run" + ("; the last one cut short" if cut
                                                          else ""))
    print(f"report: {out / 'report.json'}, {out / 'report.html'}", flush=True)
    cause = failure_cause(report)
    if cause is not None:
        print(f"writ: error: {cause}", file=sys.stderr)
    if report["partial"]:
        return stop.exit_status()
    return 1 if cause is not None else 0
