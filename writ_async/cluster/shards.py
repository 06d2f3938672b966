"""A run split into shards: which episodes each shard runs, one shard run by a worker,
and the shards merged back into the run directory.

Episode ids are deterministic (``records.episode_id``) and each is assigned to exactly
one shard, dealt round-robin over the run's order so that every shard gets the same mix
of tasks. A shard is an ordinary run directory under the run (``shards/NN/``, with the
run's manifest), run by the ordinary engine (``plan.episode_specs``, ``run_many``,
the journal), so a shard whose worker died is resumed from its own journal like any
run: finished episodes kept, unfinished ones started over. They start over rather than
going on from their recorded prefix so that their records (model calls and tokens
included) are exactly those of an uninterrupted run.

Merging copies every event of each newly finished episode, in the run's order, into the
run's journal; results and exports are then derived from the run's journal exactly as
``writ simulate`` derives them (``outputs.write_outputs``), which is why the merged run
directory matches a single-process run of the same configuration and seed.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import msgspec

from writ_async.engine.plan import RunPlan, episode_specs
from writ_async.engine.run_participants import open_participants
from writ_async.engine.rundir import (
    MANIFEST,
    Manifest,
    RunDir,
    atomic_write,
    create_run,
    open_for_resume,
)
from writ_async.engine.scheduler import Progress, StopRequest, run_many

SHARDS = "shards"  # under the run directory
PLAN = "plan.json"  # shards/plan.json: the episode ids of each shard


class ShardProgress(msgspec.Struct, frozen=True, kw_only=True):
    """One shard's counts as its worker last reported them."""

    shard: int
    attempt: int
    worker: str
    pid: int
    total: int  # episodes of the shard
    done: int  # finished, by this attempt or an earlier one
    running: int = 0
    kept: int = 0
    failed: int = 0
    model_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finished: bool = False  # the attempt ran to its end


def run_order(plan: RunPlan) -> list[str]:
    """Every episode id of the run, in the order results list them."""
    return plan.episode_ids


def plan_shards(episode_ids: Sequence[str], shards: int) -> list[list[str]]:
    """``episode_ids`` dealt round-robin into ``shards`` non-empty shards (fewer if
    there are fewer episodes)."""
    count = max(1, min(shards, len(episode_ids)))
    return [list(episode_ids[i::count]) for i in range(count)]


def shard_path(run_path: Path, index: int) -> Path:
    return run_path / SHARDS / f"{index:02d}"


def load_or_save_plan(run_path: Path, plan: list[list[str]]) -> list[list[str]]:
    """The plan stored with the run (a resumed run keeps its shards), else ``plan``."""
    path = run_path / SHARDS / PLAN
    if path.exists():
        return msgspec.json.decode(path.read_bytes(), type=list[list[str]])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, msgspec.json.encode(plan))
    return plan


Report = Callable[[ShardProgress], Awaitable[None]]


async def run_shard(
    plan: RunPlan,
    manifest: Manifest,
    path: Path,
    episode_ids: Sequence[str],
    *,
    shard: int,
    attempt: int,
    worker: str,
    pid: int,
    concurrency: int,
    rate_limiter: object | None = None,
    report: Report | None = None,
    report_every: float = 0.25,
) -> ShardProgress:
    """Run the shard's episodes not yet finished in its journal at ``path``; the last
    counts. ``rate_limiter`` goes to ``open_pool``; ``report`` gets counts as they move."""
    run: RunDir = (open_for_resume(path, manifest) if (path / MANIFEST).exists()
                   else create_run(path, manifest))
    previous = run.read_journal()
    setup = plan.episode_setup()
    specs = episode_specs(plan, setup, previous, only=set(episode_ids),
                          continue_unfinished=False)
    # kept as the run's export keeps it, so the driver's line matches a plain run's
    progress = Progress(total=len(episode_ids), export_filter=plan.export_filter)
    progress.done = len(episode_ids) - len(specs)  # finished by an earlier attempt

    def snapshot(finished: bool = False) -> ShardProgress:
        c = progress.counters
        return ShardProgress(shard=shard, attempt=attempt, worker=worker, pid=pid,
                             total=progress.total, done=progress.done,
                             running=progress.running, kept=progress.kept,
                             failed=progress.failed, model_calls=c.model_calls,
                             prompt_tokens=c.prompt_tokens,
                             completion_tokens=c.completion_tokens, finished=finished)

    async def reporter() -> None:
        assert report is not None
        while True:
            await report(snapshot())
            await asyncio.sleep(report_every)

    # The reporter lives as long as the shard runs, in one task group with it: one that
    # fails (the coordinator gone) fails the shard rather than dying unseen.
    async with asyncio.TaskGroup() as group:
        reporting = group.create_task(reporter()) if report is not None else None
        try:
            async with open_participants(plan, setup, rate_limiter=rate_limiter) as participants:  # type: ignore[arg-type]
                journal = run.open_journal()
                try:
                    if specs:
                        await run_many(setup, specs, participants, journal,
                                       concurrency=concurrency, stop=StopRequest(),
                                       progress=progress)
                finally:
                    journal.close()
        finally:
            if reporting is not None:
                reporting.cancel()
    last = snapshot(finished=True)
    if report is not None:
        await report(last)
    return last


def merge_shards(run: RunDir, plan: Sequence[Sequence[str]], order: Sequence[str]) -> int:
    """Append to the run's journal every event of each episode finished in a shard and not
    yet in the run's journal, in run order; the number of episodes merged."""
    done = run.read_journal().finished
    where: dict[str, int] = {eid: i for i, ids in enumerate(plan) for eid in ids}
    contents = {}
    for index in range(len(plan)):
        journal = shard_path(run.path, index) / "journal.bin"
        if journal.exists():
            contents[index] = RunDir(journal.parent, run.manifest).read_journal()
    merged = 0
    writer = run.open_journal()
    try:
        for eid in order:
            shard = where.get(eid)
            if eid in done or shard is None or shard not in contents:
                continue
            shard_journal = contents[shard]
            if eid not in shard_journal.finished:
                continue
            for event in shard_journal.events(eid):  # every attempt, as a resumed run keeps
                writer.append(event)
            writer.commit()
            merged += 1
    finally:
        writer.close()
    return merged


def remove_shards(run_path: Path) -> None:
    """Every shard is merged: the run directory is left as a single-process run's."""
    shutil.rmtree(run_path / SHARDS, ignore_errors=False)


def progress_of(total: int, already: int, shards: Mapping[int, ShardProgress],
                started_at: float) -> Progress:
    """The driver's progress line from the shards' latest counts (``already``: finished
    before this run started)."""
    progress = Progress(total=total, started_at=started_at)
    progress.done = already
    for p in shards.values():
        progress.done += p.done
        progress.running += p.running
        progress.kept += p.kept
        progress.failed += p.failed
        progress.counters.model_calls += p.model_calls
        progress.counters.prompt_tokens += p.prompt_tokens
        progress.counters.completion_tokens += p.completion_tokens
    return progress
