"""`writ simulate --ray ADDRESS`: one run spread over the worker processes of a Ray cluster.

The driver (this process) opens the run of the command's plan as ``writ simulate`` does
(run directory, manifest, tasks), splits the episodes not yet finished into shards
(``shards``), and submits one Ray task per shard, each taking one CPU and running the
ordinary asyncio engine, on the driver's plan, with its share of the run's concurrency.
One ``Coordinator`` actor holds the rate-limit ledger of every rate-limited endpoint
(``budget``), which the workers draw on in batches (``feeder``), and the latest counts of
every shard, from which the driver prints the usual progress line.

The first Ctrl-C (or SIGTERM, or ``RayOptions.stop``) stops the run: shards still running
are cancelled, what they finished is merged, and the run says to resume. A shard whose
worker dies (the process is killed, or its node goes away) is submitted
again, to whichever worker Ray picks, and resumes from its journal; its old worker is
reported lost to the ledger. When every shard is done the driver merges the shards'
journals into the run's and writes results and exports exactly as a single-process run
does, then removes ``shards/``. A run stopped early keeps ``shards/`` and continues with
``--resume`` and ``--ray`` (the same shards, resumed from their journals).

Endpoints whose ``base_url`` is ``"mock"`` are served once, by the driver, so that the
whole cluster talks to one endpoint (set ``[mock] host`` to an address the workers can
reach when they are on other machines). The run directory must be on a filesystem every
worker sees (the same machine, or a shared volume), and writ-async must be installed on
every node.

Ray is imported here only, and only when a run asks for it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from writ_async.cluster.budget import BudgetLedger, BudgetStatistics, Grant
from writ_async.cluster.feeder import MakeLimiter, run_fed
from writ_async.cluster.shards import (
    ShardProgress,
    load_or_save_plan,
    merge_shards,
    plan_shards,
    progress_of,
    remove_shards,
    run_order,
    run_shard,
    shard_path,
)
from writ_async.config import Config, EndpointConfig
from writ_async.engine.outputs import RunOutcome, open_run_dir, records_in_run_order, write_outputs
from writ_async.engine.plan import RunPlan
from writ_async.engine.run_participants import SCRIPTED_HTTP, needs_pool
from writ_async.engine.rundir import Manifest
from writ_async.engine.scheduler import Progress, StopRequest, install_stop_signals
from writ_async.errors import ClusterError
from writ_async.grading.results import summary
from writ_async.llm.setup import MOCK, mock_model_names
from writ_async.logs import configure_logging, get_logger

Limits = dict[str, tuple[float | None, float | None]]


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    """What the driver knows at one poll: each shard's latest counts, the workers lost so
    far, and the shared budget's statistics."""

    shards: Mapping[int, ShardProgress]
    lost: tuple[str, ...]
    budget: tuple[BudgetStatistics, ...]


@dataclass(frozen=True, slots=True)
class RayOptions:
    address: str  # of the cluster ("auto", "127.0.0.1:6379", "ray://...")
    workers: int | None = None  # shards running at once; default: the cluster's CPUs
    shards: int | None = None  # default: one per worker
    max_shard_attempts: int = 3  # a shard whose worker dies more often fails the run
    lease_s: float = 1.0  # how long a granted batch may be spent (budget.py)
    poll_s: float = 0.25
    on_status: Callable[[ClusterStatus], None] | None = None  # each poll (tests, monitors)
    stop: StopRequest | None = None  # default: Ctrl-C / SIGTERM stop the run (see below)


@dataclass(frozen=True, slots=True)
class ClusterOutcome:
    run: RunOutcome
    shards: int
    workers: int
    attempts: dict[int, int]  # per shard: how many times it was submitted
    lost: tuple[str, ...]  # workers that died while running a shard
    budget: tuple[BudgetStatistics, ...]
    merged: int  # episodes merged from the shards into the run's journal
    seconds: float = 0.0
    statuses: list[ShardProgress] = field(default_factory=list)


class Coordinator:
    """The actor's state: the shared budget and the shards' latest counts."""

    def __init__(self, limits: Limits, lease: float) -> None:
        self.ledger = BudgetLedger(limits, lease=lease)
        self.shards: dict[int, ShardProgress] = {}
        self.lost: list[str] = []

    def grant(self, endpoint: str, worker: str, requests: int, tokens: int,
              min_tokens: int) -> Grant:
        return self.ledger.grant(endpoint, worker, requests, tokens, min_tokens)

    def pause(self, endpoint: str, seconds: float) -> None:
        self.ledger.pause(endpoint, seconds)

    def sync(self, endpoint: str, remaining_requests: int | None, remaining_tokens: int | None,
             reset_requests_s: float | None, reset_tokens_s: float | None) -> None:
        self.ledger.sync(endpoint, remaining_requests, remaining_tokens, reset_requests_s,
                         reset_tokens_s)

    def report(self, progress: ShardProgress) -> None:
        current = self.shards.get(progress.shard)
        if current is None or progress.attempt >= current.attempt:  # a lost one's last word
            self.shards[progress.shard] = progress

    def worker_lost(self, worker: str) -> int:
        self.lost.append(worker)
        return self.ledger.worker_lost(worker)

    def status(self) -> ClusterStatus:
        return ClusterStatus(dict(self.shards), tuple(self.lost),
                             tuple(self.ledger.statistics()))


async def _get(ref: Any) -> Any:
    """An ObjectRef's value, awaited on whatever event loop runs (uvloop included)."""
    return await asyncio.wrap_future(ref.future())


class ActorSource:
    """``feeder.BudgetSource`` over the Coordinator actor."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    async def grant(self, endpoint: str, worker: str, requests: int, tokens: int,
                    min_tokens: int) -> Grant:
        grant: Grant = await _get(self.actor.grant.remote(endpoint, worker, requests, tokens,
                                                          min_tokens))
        return grant

    async def pause(self, endpoint: str, seconds: float) -> None:
        await _get(self.actor.pause.remote(endpoint, seconds))

    async def sync(self, endpoint: str, remaining_requests: int | None,
                   remaining_tokens: int | None, reset_requests_s: float | None,
                   reset_tokens_s: float | None) -> None:
        await _get(self.actor.sync.remote(endpoint, remaining_requests, remaining_tokens,
                                          reset_requests_s, reset_tokens_s))


# -- the worker side -------------------------------------------------------------------------


def shard_task(plan: RunPlan, manifest: Manifest, path: str,
               episode_ids: list[str], shard: int, attempt: int, concurrency: int,
               coordinator: Any, lease: float, limited: list[str]) -> ShardProgress:
    """Body of the Ray task that runs one shard (in a worker process), on the driver's
    plan: the worker resolves nothing itself (no registry, no base database to rebuild)."""
    pid = os.getpid()
    worker = f"shard{shard:02d}.{attempt}@{pid}"
    configure_logging(plan.config.logging.level, "json")

    async def report(progress: ShardProgress) -> None:
        await _get(coordinator.report.remote(progress))

    async def body(rate_limiter: MakeLimiter) -> ShardProgress:
        return await run_shard(plan, manifest, Path(path), episode_ids,
                               shard=shard, attempt=attempt, worker=worker, pid=pid,
                               concurrency=concurrency, rate_limiter=rate_limiter,
                               report=report)

    # The budget feeders run in one task group with the shard (feeder.run_fed): a feeder
    # that crashes fails the shard, and the driver raises its error.
    return _run_loop(run_fed(ActorSource(coordinator), worker, limited, lease, body))


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # not built for this platform
        return asyncio.run(coro)
    return uvloop.run(coro)


# -- the driver ------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError("--ray needs Ray: pip install 'writ-async[ray]'") from None
    return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` nobody listens on: ``ray.init`` would retry for
    minutes. (``auto`` and ``ray://`` addresses are left to Ray.)"""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: "
                           f"{exc.strerror or exc}") from None


def _lost_worker_errors(ray: Any) -> tuple[type[BaseException], ...]:
    # The process or its node went away (killed, crashed, out of memory): run it elsewhere.
    names = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OutOfMemoryError")
    return tuple(getattr(ray.exceptions, n) for n in names if hasattr(ray.exceptions, n))


def _used_endpoints(config: Config) -> dict[str, EndpointConfig]:
    names = {n for role in config.models.roles.values() for n in role}
    return {n: config.models.endpoints[n] for n in sorted(names)}


@asynccontextmanager
async def _one_endpoint_for_all(plan: RunPlan) -> AsyncIterator[RunPlan]:
    """The plan for the workers: endpoints served by the embedded mock point at one mock
    served here, not at a mock of their own per worker."""
    config = plan.config
    sim = config.simulate
    mocked = [n for n, e in _used_endpoints(config).items() if e.base_url == MOCK]
    if not mocked or not needs_pool(plan):
        yield plan
        return
    from writ_async.mock.server import open_mock_server

    policy = None
    if SCRIPTED_HTTP in (sim.agent, sim.user):
        from writ_async.mock.scripted_policy import ScriptedPolicy

        policy = ScriptedPolicy({t.id: t for t in plan.tasks}, {plan.domain.name: plan.domain},
                                plan.mistakes)
    async with open_mock_server(config.mock, policy,  # type: ignore[arg-type]
                                listed_models=mock_model_names(config.models)) as server:
        replace = msgspec.structs.replace
        endpoints = {n: (replace(e, base_url=server.url) if n in mocked else e)
                     for n, e in config.models.endpoints.items()}
        # Only the endpoints differ: nothing the plan derived depends on them.
        yield dataclasses.replace(plan, config=replace(
            config, models=replace(config.models, endpoints=endpoints)))


async def simulate_on_ray(plan: RunPlan, *, out: Path, options: RayOptions,
                          resume: bool = False,
                          progress_stream: IO[str] | None = None) -> ClusterOutcome:
    """``simulate.simulate`` over a Ray cluster; the same run directory at the end."""
    ray = _import_ray()
    started = time.monotonic()
    out = Path(out).resolve()
    run = open_run_dir(plan, out, resume=resume)
    tasks = list(plan.tasks)
    order = run_order(plan)
    already = run.read_journal().finished
    remaining = [eid for eid in order if eid not in already]

    connected_here = not ray.is_initialized()
    if connected_here:
        _check_reachable(options.address)
        try:
            ray.init(address=options.address, log_to_driver=False, logging_level="warning")
        except (ConnectionError, ValueError) as exc:
            raise ClusterError(f"cannot reach the Ray cluster at {options.address}: "
                               f"{exc}") from None
    attempts: dict[int, int] = {}
    status = ClusterStatus({}, (), ())
    shards: list[list[str]] = []
    workers = 0
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = max(1, options.workers or cpus)
        shards = load_or_save_plan(run.path, plan_shards(remaining, options.shards or workers))
        # A resumed run: episodes already merged are not the shards' to count or run.
        todo = [[eid for eid in ids if eid not in already] for ids in shards]
        if remaining:
            status = await _run_shards(ray, plan, run.manifest, run.path, todo,
                                       workers, options, attempts, started,
                                       len(order) - len(remaining), len(order),
                                       progress_stream)
    finally:
        if connected_here:
            ray.shutdown()

    merged = merge_shards(run, shards, order) if shards else 0
    records = records_in_run_order(run.read_journal().finished, plan)
    report = write_outputs(run, plan, records, tasks)
    complete = len(records) == len(order)
    if complete and (run.path / "shards").exists():
        remove_shards(run.path)
    outcome = RunOutcome(run_dir=run.path, records=records,
                         progress=progress_of(len(order), len(already), status.shards,
                                              started),
                         summary=summary(records, tasks, plan.export_filter),
                         export=report, stopped_early=not complete, expected=len(order),
                         warnings=plan.warnings)
    return ClusterOutcome(run=outcome, shards=len(shards), workers=workers,
                          attempts=attempts, lost=status.lost, budget=status.budget,
                          merged=merged, seconds=time.monotonic() - started,
                          statuses=list(status.shards.values()))


async def _run_shards(ray: Any, plan: RunPlan, manifest: Manifest,
                      run_path: Path, shards: list[list[str]], workers: int,
                      options: RayOptions, attempts: dict[int, int], started: float,
                      already: int, total: int,
                      progress_stream: IO[str] | None) -> ClusterStatus:
    log = get_logger(component="ray")
    lost_errors = _lost_worker_errors(ray)
    running = [i for i, ids in enumerate(shards) if ids]
    concurrency = math.ceil(plan.config.simulate.concurrency
                            / max(1, min(workers, len(running))))
    async with _one_endpoint_for_all(plan) as worker_plan:
        worker_config = worker_plan.config
        limits: Limits = {n: (e.requests_per_minute, e.tokens_per_minute)
                          for n, e in _used_endpoints(worker_config).items()
                          if e.requests_per_minute is not None or e.tokens_per_minute is not None}
        coordinator = ray.remote(num_cpus=0)(Coordinator).remote(limits, options.lease_s)
        plan_ref = ray.put(worker_plan)  # once, shared by every shard
        remote_shard = ray.remote(num_cpus=1, max_retries=0)(shard_task)
        refs: dict[int, Any] = {}

        def submit(index: int) -> asyncio.Future[Any]:
            attempts[index] = attempts.get(index, 0) + 1
            ref = remote_shard.remote(plan_ref, manifest,
                                      str(shard_path(run_path, index)), shards[index], index,
                                      attempts[index] - 1, concurrency, coordinator,
                                      options.lease_s, sorted(limits))
            refs[index] = ref
            return asyncio.wrap_future(ref.future())

        pending = {submit(i): i for i in running}
        status = ClusterStatus({}, (), ())
        last_line = 0.0
        tty = progress_stream is not None and progress_stream.isatty()
        stop = options.stop or StopRequest()
        loop = asyncio.get_running_loop()
        installed = install_stop_signals(loop, stop)
        try:
            while pending and stop.admitting:
                done, _ = await asyncio.wait(pending, timeout=options.poll_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                status = await _get(coordinator.status.remote())
                for future in done:
                    index = pending.pop(future)
                    try:
                        future.result()
                    except lost_errors as exc:
                        shard = status.shards.get(index)
                        if shard is not None and shard.attempt == attempts[index] - 1:
                            await _get(coordinator.worker_lost.remote(shard.worker))
                        log.warning("ray.shard_lost", shard=index, attempt=attempts[index],
                                    error=type(exc).__name__)
                        if attempts[index] >= options.max_shard_attempts:
                            raise ClusterError(f"lost its worker {attempts[index]} times",
                                               shard=index) from None
                        pending[submit(index)] = index
                    except ray.exceptions.RayTaskError as exc:
                        raise exc.as_instanceof_cause() from None
                status = await _get(coordinator.status.remote())
                if options.on_status is not None:
                    options.on_status(status)
                progress = progress_of(total, already, status.shards, started)
                now = time.monotonic()
                if tty:
                    _show(progress_stream, progress, now)
                elif now - last_line >= 5.0:
                    last_line = now
                    log.info("progress", status=progress.render(now))
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            # Stopped or failed: running shards end now (their unfinished episodes start
            # over on --resume); what they finished is merged by the caller.
            for future in pending:
                ray.cancel(refs[pending[future]], force=True)
                future.cancel()
            ray.kill(coordinator)
        if tty:
            progress_stream.write("\n")  # type: ignore[union-attr]
        return status


def _show(stream: IO[str] | None, progress: Progress, now: float) -> None:
    assert stream is not None
    stream.write("\r" + progress.render(now) + "\x1b[K")
    stream.flush()
