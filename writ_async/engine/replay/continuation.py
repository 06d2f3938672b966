"""Going on live from a recorded episode, into a new run directory: what a continuation may
override, the episode spec that restores the recorded prefix (``EpisodeSpec.prefix``, the
path a resumed run takes as well), running the specs through the scheduler, and the
outcome. ``fork`` and ``rerun`` are its two uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

from writ_async.config import Config, check_config, load_config
from writ_async.conversation.records import EpisodeRecord, Lineage
from writ_async.engine.outputs import save_tasks, write_outputs
from writ_async.engine.plan import resolve_plan
from writ_async.engine.replay.run import (
    LINEAGE,
    LineageFile,
    RecordedEpisode,
    ReplayRun,
    behaviours_of,
)
from writ_async.engine.run_participants import open_participants
from writ_async.engine.rundir import atomic_write, create_run, new_manifest
from writ_async.engine.runner import EpisodeSpec
from writ_async.engine.scheduler import Progress, StopRequest, run_many
from writ_async.errors import ConfigError, ReplayError
from writ_async.export.sft import ExportReport, is_kept
from writ_async.grading.results import summary
from writ_async.participants.behaviours.scenarios import scenario_id
from writ_async.seeds import episode_seed

FROM_START = "from_start"


FROM_FIRST_WRONG_WRITE = "from_first_wrong_write"


FORK = "fork"


@dataclass(frozen=True, slots=True)
class Overrides:
    """What a continuation may change from the parent run's config."""

    seed: int | None = None  # episode seeds derive from this instead (seeds.episode_seed)
    agent: str | None = None
    user: str | None = None
    config_path: str | None = None  # its [models] and [mock] replace the parent's
    mistake_rate: float | None = None
    concurrency: int | None = None
    behaviours: tuple[str, ...] | None = None  # the user's behaviours for the continuation


def continuation_config(parent: Config, overrides: Overrides) -> Config:
    """The parent's config with the overrides applied and checked. What decides the
    environment (domain, database, tasks, limits, run seed) is never overridden."""
    replace = msgspec.structs.replace
    config = parent
    source = overrides.config_path or "<command line>"
    if overrides.config_path is not None:
        other = load_config(overrides.config_path)
        config = replace(config, models=other.models, mock=other.mock)
    changes = {key: value for key, value in (
        ("agent", overrides.agent), ("user", overrides.user),
        ("mistake_rate", overrides.mistake_rate), ("concurrency", overrides.concurrency),
    ) if value is not None}
    if changes:
        config = replace(config, simulate=replace(config.simulate, **changes))
    try:  # re-validate: the overrides bypassed the field constraints
        config = msgspec.convert(msgspec.to_builtins(config), Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(source, str(exc)) from None
    check_config(config, source)
    return config


@dataclass(frozen=True, slots=True)
class Continued:
    """One re-run episode: its parent, where it started, and how it ended (``recovered``:
    the new run's export keeps it, ``export.keep`` under that run's filter)."""

    parent_episode: str
    fork_step: int
    record: EpisodeRecord
    recovered: bool
    note: str = ""


@dataclass(slots=True)
class ReplayOutcome:
    run_dir: Path
    mode: str
    episodes: list[Continued]
    export: ExportReport
    summary: dict[str, Any]
    stopped_early: bool = False
    selected: int = 0  # episodes chosen for a re-run (of which some may not have finished)
    skipped: list[str] = field(default_factory=list)

    @property
    def recovered(self) -> int:
        return sum(1 for e in self.episodes if e.recovered)


def continuation_spec(run: ReplayRun, ep: RecordedEpisode, step: int, mode: str,
          overrides: Overrides) -> EpisodeSpec:
    started = ep.started
    record = ep.record
    if started is not None:
        task_id, trial, seed = started.task_id, started.trial, started.seed
    elif record is not None:
        task_id, trial, seed = record.task_id, record.trial, record.seed
    else:
        raise ReplayError(f"{run.path}: episode {ep.episode_id!r} has no recorded start")
    behaviours = behaviours_of(ep.episode_id)
    if overrides.behaviours is not None:
        behaviours = overrides.behaviours
    if overrides.seed is not None:
        seed = episode_seed(overrides.seed, scenario_id(task_id, behaviours), trial)
    lineage = Lineage(parent_run=run.manifest.run_id, parent_dir=str(run.path),
                      parent_episode=ep.episode_id, parent_attempt=ep.attempt,
                      fork_step=step, mode=mode)
    return EpisodeSpec(task=run.task(task_id), trial=trial, seed=seed, attempt=0,
                       prefix=tuple(ep.messages[:step]), lineage=lineage,
                       behaviours=behaviours)


async def continue_live(run: ReplayRun, config: Config, specs: list[EpisodeSpec], out: Path,
                    mode: str, progress_stream: IO[str] | None, stop: StopRequest | None,
                    notes: dict[str, str] | None = None) -> ReplayOutcome:
    parent = run.plan
    plan = resolve_plan(config, parent.domain, tasks=(parent.tasks, parent.tasks_hash),
                        base=parent.base)
    kept_by = plan.export_filter  # "kept" in the new run: its progress, summary, export
    order = {t.id: i for i, t in enumerate(parent.tasks)}
    task_ids = sorted({s.task.id for s in specs}, key=order.__getitem__)
    manifest = new_manifest(
        config, base_db_hash=run.manifest.base_db_hash,
        tasks_file_sha256=parent.tasks_hash, task_ids=task_ids, trials=run.manifest.trials,
        agent=config.simulate.agent, user=config.simulate.user,
    )
    new_run = create_run(out, manifest)
    save_tasks(new_run, parent.tasks)
    lineage = LineageFile(parent_run=run.manifest.run_id, parent_dir=str(run.path),
                           mode=mode, episodes=[s.lineage for s in specs if s.lineage])
    atomic_write(new_run.path / LINEAGE,
                 msgspec.json.format(msgspec.json.encode(lineage), indent=2) + b"\n")
    setup = plan.episode_setup()
    async with open_participants(plan, setup) as participants:
        journal = new_run.open_journal()
        try:
            if specs:
                await run_many(setup, specs, participants, journal,
                               concurrency=config.simulate.concurrency, stop=stop,
                               progress_stream=progress_stream,
                               progress=Progress(total=len(specs), export_filter=kept_by))
        finally:
            journal.close()
    finished = new_run.read_journal().finished
    records, episodes = [], []
    notes = notes or {}
    for spec in specs:
        assert spec.lineage is not None
        # the continuation's own id: the parent's, unless its behaviours were changed
        record = finished.get(spec.episode_id)
        if record is None:
            continue
        records.append(record)
        episodes.append(Continued(parent_episode=spec.lineage.parent_episode,
                                  fork_step=spec.lineage.fork_step, record=record,
                                  recovered=is_kept(record, kept_by),
                                  note=notes.get(spec.lineage.parent_episode, "")))
    tasks = [t for t in parent.tasks if t.id in set(task_ids)]
    report = write_outputs(new_run, plan, records, tasks)
    return ReplayOutcome(run_dir=new_run.path, mode=mode, episodes=episodes, export=report,
                         summary=summary(records, tasks, kept_by),
                         stopped_early=len(records) < len(specs),
                         selected=len(specs))


def render_outcome(run: ReplayRun, outcome: ReplayOutcome) -> str:
    lines = []
    if outcome.mode == FORK:
        (ep,) = outcome.episodes or [None]
        if ep is None:
            return f"fork stopped before its episode finished: {outcome.run_dir}"
        info = ep.record.reward_info
        reward = "-" if info is None else f"{info.reward:g}"
        evidence = "-" if info is None else ("ok" if info.evidence_ok else "failed")
        lines.append(f"forked {ep.parent_episode} of {run.path} at step {ep.fork_step} "
                     f"into {outcome.run_dir}")
        lines.append(f"  {len(ep.record.messages)} messages, termination "
                     f"{ep.record.termination}, reward {reward}, evidence {evidence}")
    else:
        lines.append(f"re-ran {outcome.selected} failed episode(s) of {run.path} "
                     f"({outcome.mode.replace('_', ' ')}) into {outcome.run_dir}")
        lines.append(f"  recovered {outcome.recovered} of {len(outcome.episodes)} "
                     "(kept by the run's export filter)")
        if outcome.episodes:
            width = max(len(e.parent_episode) for e in outcome.episodes)
            lines.append(f"  {'episode':<{width}}  from  termination      reward  evidence")
            for e in outcome.episodes:
                info = e.record.reward_info
                reward = "-" if info is None else f"{info.reward:g}"
                evidence = "-" if info is None else ("ok" if info.evidence_ok else "failed")
                note = f"  ({e.note})" if e.note else ""
                lines.append(f"  {e.parent_episode:<{width}}  {e.fork_step:>4}  "
                             f"{e.record.termination:<15}  {reward:>6}  {evidence}{note}")
    report = outcome.export
    lines.append(f"export: {report.kept} of {report.total} episodes kept, {report.written} "
                 "written")
    if outcome.stopped_early:
        lines.append("stopped before every episode finished")
    return "\n".join(lines)
