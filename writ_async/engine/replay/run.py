"""A run directory opened for replay: its manifest, the config it ran with, the base
rebuilt as the run built it (and checked against the manifest's hash), its tasks and its
journal, read up to any damage (``corruption_warning`` says what was lost).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from writ_async.config import Config
from writ_async.conversation.messages import Message
from writ_async.conversation.records import EpisodeRecord, Lineage
from writ_async.conversation.task import Task
from writ_async.engine.journal import (
    EpisodeFinished,
    EpisodeStarted,
    Event,
    JournalContents,
    MessageAdded,
    read_journal,
)
from writ_async.engine.outputs import TASKS
from writ_async.engine.plan import RunPlan, resolve_plan
from writ_async.engine.rundir import JOURNAL, Manifest, load_manifest, salvage_advice
from writ_async.environment.domain import Domain
from writ_async.errors import ReplayError, RunDirError
from writ_async.participants.behaviours.scenarios import parse_scenario_id

LINEAGE = "lineage.json"  # in a run made by `writ replay`: its parent and fork steps


@dataclass(slots=True)
class RecordedEpisode:
    """One episode's recorded attempt: the last finished one (else the latest)."""

    episode_id: str
    attempt: int
    events: list[Event]
    record: EpisodeRecord | None  # None: this attempt never finished

    @property
    def messages(self) -> list[Message]:
        return [e.message for e in self.events if isinstance(e, MessageAdded)]

    @property
    def started(self) -> EpisodeStarted | None:
        return next((e for e in self.events if isinstance(e, EpisodeStarted)), None)


class ReplayRun:
    """A run directory opened for replay: manifest, config, rebuilt base, tasks, journal."""

    def __init__(self, path: Path, manifest: Manifest, plan: RunPlan,
                 contents: JournalContents) -> None:
        self.path = path
        self.manifest = manifest
        self.config = plan.config
        self.plan = plan
        # The setup verification and forks restore on (their caches and judge are this
        # replay's own, not the frozen plan's).
        self.setup = plan.episode_setup()
        self.contents = contents
        self._tasks = {t.id: t for t in plan.tasks}

    def task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise ReplayError(f"{self.path}: task {task_id!r} is not among the run's tasks")
        return task

    def episode_ids(self) -> list[str]:
        """Every finished episode, in the order the journal finished them."""
        return list(self.contents.finished)

    def recorded(self, ep_id: str) -> RecordedEpisode:
        contents = self.contents
        if ep_id not in contents.attempts:
            known = list(contents.attempts)
            hint = f"; ids look like {known[0]!r}" if known else ""
            lost = ""
            if contents.corrupt is not None:
                lost = (f"; the journal is corrupt from byte {contents.corrupt.offset}, "
                        f"episodes recorded after it cannot be read: {salvage_advice(self.path)}")
            raise ReplayError(f"{self.path}: no episode {ep_id!r} in this run "
                              f"({len(known)} episodes, {len(contents.finished)} finished"
                              f"{hint}){lost}")
        events = contents.events(ep_id)
        standing = contents.finished_attempt.get(ep_id)
        finished = next((e for e in events if isinstance(e, EpisodeFinished)
                         and e.attempt == standing), None)
        attempt = finished.attempt if finished is not None else contents.attempts[ep_id]
        return RecordedEpisode(
            episode_id=ep_id, attempt=attempt,
            events=[e for e in events if e.attempt == attempt],
            record=finished.record if finished is not None else None,
        )

    def __repr__(self) -> str:
        return (f"<ReplayRun {self.path} run_id={self.manifest.run_id} "
                f"episodes={len(self.contents.attempts)} finished={len(self.contents.finished)}>")


def run_config(path: Path | str) -> tuple[Manifest, Config]:
    """A run directory's manifest and the config it was run with (whose ``[run] domain``
    the command looks up for ``open_run``)."""
    manifest = load_manifest(Path(path))  # RunDirError: not a run directory
    try:
        return manifest, msgspec.convert(manifest.config, Config)
    except msgspec.ValidationError as exc:
        raise RunDirError(path, f"the manifest's config cannot be used: {exc}") from None


def open_run(path: Path | str, domain: Domain) -> ReplayRun:
    """Open a run directory of ``domain`` for replay; a clear ``WritError`` if it cannot
    be replayed.

    The base database is rebuilt from the manifest's config as the run built it and must
    have the manifest's hash; the tasks are the run's own ``tasks.json`` (or, for runs
    without one, reloaded or re-synthesized and checked against the manifest's hash).
    """
    path = Path(path)
    manifest, config = run_config(path)
    stored = path / TASKS
    tasks = None
    if stored.exists():
        try:
            tasks = (msgspec.json.decode(stored.read_bytes(), type=list[Task]),
                     manifest.tasks_file_sha256)
        except msgspec.DecodeError as exc:
            raise RunDirError(path, f"{TASKS} is not a task list: {exc}") from None
    plan = resolve_plan(config, domain, tasks=tasks)
    if plan.base.db_hash() != manifest.base_db_hash:
        raise ReplayError(f"{path}: the database rebuilt from the run's config has hash "
                          f"{plan.base.db_hash()[:12]}, the run's had "
                          f"{manifest.base_db_hash[:12]}: it changed since the run")
    if tasks is None and plan.tasks_hash != manifest.tasks_file_sha256:
        raise ReplayError(f"{path}: the run's tasks changed since the run (sha256 "
                          f"{plan.tasks_hash[:12]} != {manifest.tasks_file_sha256[:12]})")
    journal = path / JOURNAL
    if not journal.exists():
        raise ReplayError(f"{path}: no {JOURNAL}: the run recorded no episode")
    # Damage in the middle ends the read there: the episodes before it are still served
    # (``corruption_warning`` says what was lost and how to salvage the run).
    return ReplayRun(path, manifest, plan, read_journal(journal, stop_at_corruption=True))


def corruption_warning(run: ReplayRun) -> str | None:
    """What a corrupt journal means for what is shown, and how to salvage; None if intact."""
    contents = run.contents
    corrupt = contents.corrupt
    if corrupt is None:
        return None
    return (f"{corrupt}: only the {contents.valid_bytes} bytes before it are read "
            f"({len(contents.finished)} finished episodes; the {contents.corrupt_bytes} "
            f"bytes from it on are not); {salvage_advice(run.path)}")


class LineageFile(msgspec.Struct, frozen=True, kw_only=True):
    parent_run: str
    parent_dir: str
    mode: str
    episodes: list[Lineage]


def behaviours_of(episode_id: str) -> tuple[str, ...]:
    """The user behaviours of an episode, from its id (``task[@behaviours]:trial``)."""
    scenario, _, _ = episode_id.rpartition(":")
    return parse_scenario_id(scenario)[1]
