"""A run's configuration resolved once into a frozen ``RunPlan``.

``writ simulate``, ``writ replay``, the Ray cluster and ``writ loadtest --from-run`` all
take a plan rather than a ``Config``: the domain (looked up in the registry by the
command, never here), its base database, the checked tasks, the scenarios, every
episode's id and seed in run order, the export filter, and what the participants need
(prompts, mistakes). What a run mutates as it goes (the judge, the grading caches) lives
in the ``EpisodeSetup`` that ``RunPlan.episode_setup`` builds fresh, not in the plan.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from writ_async.config import Config
from writ_async.conversation.episode import Limits
from writ_async.conversation.messages import Message
from writ_async.conversation.records import episode_id
from writ_async.conversation.task import Task, check_base, check_gold_actions, load_tasks
from writ_async.engine.journal import RERUN_TERMINATION, Event, JournalContents, MessageAdded
from writ_async.engine.runner import EpisodeSetup, EpisodeSpec, restore
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import Toolbox
from writ_async.errors import ConfigError, ReplayDivergence
from writ_async.export.sft import ExportFilter
from writ_async.grading.gold import GoldCache
from writ_async.logs import get_logger
from writ_async.participants.behaviours.scenarios import Scenario, expand_scenarios
from writ_async.participants.prompts import AGENT_INSTRUCTIONS, USER_GUIDELINES, agent_system_prompt
from writ_async.participants.scripted.mistakes import MistakeConfig
from writ_async.seeds import episode_seed, run_seed


@dataclass(frozen=True, slots=True)
class PlannedEpisode:
    """One (scenario, trial) of the run, with the seed it runs under."""

    episode_id: str
    scenario: Scenario
    trial: int
    seed: int


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Everything a run's episodes are made from, resolved once (module doc)."""

    config: Config
    domain: Domain
    base: BaseDB
    toolbox: Toolbox
    tasks: tuple[Task, ...]
    tasks_hash: str  # the sha256 that identifies the tasks (the manifest's)
    scenarios: tuple[Scenario, ...]
    episodes: tuple[PlannedEpisode, ...]  # run order: scenario by scenario, trial by trial
    seed: int  # the run seed
    export_filter: ExportFilter  # what "kept" means for the export, summary and progress
    agent_system: str
    guidelines: str
    mistakes: MistakeConfig
    gold_must_succeed: bool  # tasks written for another database (see ``resolve_plan``)
    warnings: tuple[str, ...] = ()  # what the operator must know about the data

    @property
    def domain_name(self) -> str:
        return self.domain.name

    @property
    def episode_ids(self) -> list[str]:
        return [e.episode_id for e in self.episodes]

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def episode_setup(self) -> EpisodeSetup:
        """A fresh setup every episode of one run shares (its caches and judge are that
        run's own)."""
        sim = self.config.simulate
        return EpisodeSetup(
            domain=self.domain, base=self.base, toolbox=self.toolbox,
            limits=Limits(max_steps=sim.max_steps, max_errors=sim.max_errors),
            greeting=sim.greeting, gold=GoldCache(gold_must_succeed=self.gold_must_succeed),
            agent_name=sim.agent, user_name=sim.user,
            timeout_s=sim.episode_timeout_s, wall_clock=time.time, known_hashes={},
        )


def export_filter(config: Config) -> ExportFilter:
    """The run's export filter: what "kept" means for its export and its summary."""
    exp = config.export
    return ExportFilter(min_reward=exp.min_reward, terminations=list(exp.terminations),
                        require_evidence=exp.require_evidence, dedupe=exp.dedupe,
                        reasoning=exp.reasoning)


def run_scenarios(config: Config, tasks: Sequence[Task]) -> list[Scenario]:
    """Every (task, behaviours) scenario of the run: one per task without a behaviour mix,
    else each task told by the mix's sampled behaviours (WRIT stage 2)."""
    mix = config.simulate.behaviours
    if mix is None:
        return [Scenario(t.id, ()) for t in tasks]
    return expand_scenarios([t.id for t in tasks], mix, run_seed(config))


def load_run_tasks(config: Config, domain: Domain, base: BaseDB) -> tuple[list[Task], str]:
    """The run's tasks and the sha256 that identifies them."""
    sim = config.simulate
    if sim.tasks is not None:
        tasks = load_tasks(sim.tasks, split=sim.split)
        return tasks, hashlib.sha256(Path(sim.tasks).read_bytes()).hexdigest()
    from writ_async.synthesis.driver import tasks_from_config

    tasks = tasks_from_config(domain, base, sim.task_count, run_seed(config),
                              config.synthesis)
    return tasks, hashlib.sha256(msgspec.json.encode(tasks)).hexdigest()


def _read_text(path: str | None, default: str) -> str:
    if path is None:
        return default
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None


def resolve_plan(config: Config, domain: Domain, *,
                 tasks: tuple[Sequence[Task], str] | None = None,
                 base: BaseDB | None = None) -> RunPlan:
    """``config``'s run on ``domain`` (the one ``[run] domain`` names: the command looks
    it up); ``tasks`` (with their sha256) instead of loading or synthesizing them, and
    ``base`` (already built from the same config) instead of building it again.

    Before any episode, the tasks are checked against the domain: every gold action must
    bind to a tool (``tasks.check_gold_actions``) and synthesized tasks must have been
    synthesized on this base (``tasks.check_base``); either is a DataError. Tasks without
    provenance (tau2-bench's) on a *generated* base were written for another database:
    the run goes on, with a warning in ``warnings``, and their gold replays must succeed
    (``GoldCache(gold_must_succeed=True)``: an episode whose gold actions fail here is an
    invalid task, never exported). With a ``db_path`` they are graded exactly as tau2
    grades them, gold actions that fail by design included.
    """
    sim = config.simulate
    if domain.name != config.run.domain:
        raise ConfigError("run", f"the plan's domain is {domain.name!r}, the config's "
                          f"{config.run.domain!r}", "run.domain")
    seed = run_seed(config)
    settings = config.domain_settings(domain.name)
    if base is None:
        base = domain.base(settings.db_path, seed, settings.scale)
    toolbox = domain.toolbox_with_schemas(settings.tools_path)
    policy = domain.policy(settings.policy_path)
    task_list, tasks_hash = (list(tasks[0]), tasks[1]) if tasks is not None else \
        load_run_tasks(config, domain, base)
    source = sim.tasks or "synthesized tasks"
    check_gold_actions(task_list, toolbox, source)
    check_base(task_list, base.db_hash(), source)
    exp = config.export
    if exp.contamination_tasks is not None:
        # Read now, so a wrong path or split stops the run before its episodes, not after.
        load_tasks(exp.contamination_tasks, split=exp.contamination_split)
    foreign = sum(t.synthesis is None for t in task_list) if settings.db_path is None else 0
    warnings: list[str] = []
    if foreign:
        warnings.append(
            f"{source}: {foreign} of {len(task_list)} tasks record no base database (tau2-bench "
            f"tasks?) and were written for another one than this generated {domain.name} "
            "database; give theirs with --db (here, episodes whose gold actions fail are "
            "graded invalid_task and not exported)")
    scenarios = run_scenarios(config, task_list)
    episodes = tuple(
        PlannedEpisode(episode_id(s.id, trial), s, trial, episode_seed(seed, s.id, trial))
        for s in scenarios for trial in range(sim.trials))
    return RunPlan(
        config=config, domain=domain, base=base, toolbox=toolbox, tasks=tuple(task_list),
        tasks_hash=tasks_hash, scenarios=tuple(scenarios), episodes=episodes, seed=seed,
        export_filter=export_filter(config),
        agent_system=agent_system_prompt(policy, _read_text(sim.agent_instructions_path,
                                                            AGENT_INSTRUCTIONS)),
        guidelines=_read_text(sim.user_guidelines_path, USER_GUIDELINES),
        mistakes=MistakeConfig(rate=sim.mistake_rate, kinds=sim.mistakes),
        gold_must_succeed=bool(foreign), warnings=tuple(warnings))


def resumable_prefix(setup: EpisodeSetup, events: Sequence[Event]) -> tuple[Message, ...]:
    """The messages of an unfinished attempt that restore cleanly (``runner.restore``):
    a resumed episode goes on from there instead of from the start. An attempt that does
    not reproduce (the code changed) starts over, with a warning."""
    messages = tuple(e.message for e in events if isinstance(e, MessageAdded))
    if not messages:
        return ()
    try:
        restored = restore(setup, messages)
    except ReplayDivergence as divergence:
        get_logger(component="simulate").warning(
            "resume.restart", episode=events[0].episode_id, reason=str(divergence))
        return ()
    return messages[:len(restored.episode.messages)]


def episode_specs(plan: RunPlan, setup: EpisodeSetup, previous: JournalContents, *,
                  only: Container[str] | None = None,
                  continue_unfinished: bool = True) -> list[EpisodeSpec]:
    """The specs of every episode of the plan not finished in ``previous`` (of those in
    ``only``, if given), in run order. An attempt a crash cut short goes on from its
    journaled messages, or, with ``continue_unfinished=False``, starts over (its model
    calls and tokens are then counted in full, as in an uninterrupted run)."""
    by_id = {t.id: t for t in plan.tasks}
    specs = []
    for planned in plan.episodes:
        eid = planned.episode_id
        done = previous.finished.get(eid)
        # An episode that ended on the infrastructure is run again, from where it broke.
        rerun = done is not None and done.termination == RERUN_TERMINATION
        if (done is not None and not rerun) or (only is not None and eid not in only):
            continue
        prefix: tuple[Message, ...] = ()
        if continue_unfinished and (rerun or eid in previous.unfinished):
            prefix = resumable_prefix(setup, previous.events(eid, previous.attempts[eid]))
        specs.append(EpisodeSpec(task=by_id[planned.scenario.task_id], trial=planned.trial,
                                 seed=planned.seed, attempt=previous.next_attempt(eid),
                                 prefix=prefix, behaviours=planned.scenario.behaviours))
    return specs
