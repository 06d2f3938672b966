"""`writ simulate`: a whole run, from configuration to results and SFT export.

Builds the domain and its base database, loads (or synthesizes) the tasks, creates the
run directory with its manifest (or reopens it to resume), starts the model pool when a
participant needs one, runs every (task, trial) episode not yet finished through the
scheduler, and finally derives ``results.json`` (tau2-bench's format) and the SFT export
from the journal, so that what is reported is exactly what was committed.

On resume, an episode that a crash cut short goes on from the messages its last attempt
journaled (``runner.restore``, the code path of a fork), not from the start. The run's
tasks are kept in the run directory (``tasks.json``) for ``writ replay``.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import AsyncIterator, Container, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import msgspec

import writ_async
from domains import get_domain
from writ_async.behaviours import Scenario, expand_scenarios, with_behaviours
from writ_async.config import Config
from writ_async.datastats import toolbox_kinds, write_export_stats
from writ_async.domain import Domain
from writ_async.episode import Limits
from writ_async.errors import ConfigError, ReplayDivergence
from writ_async.export import ExportContext, ExportFilter, ExportReport, write_exports
from writ_async.grading import GoldCache
from writ_async.journal import RERUN_TERMINATION, Event, JournalContents, MessageAdded
from writ_async.judge import Judge
from writ_async.logs import get_logger
from writ_async.messages import Message
from writ_async.models.pool import ModelPool
from writ_async.models.setup import RateLimiterFactory, open_pool
from writ_async.overlay import BaseDB
from writ_async.participants import InProcess, LLMAgent, LLMUser, Participant
from writ_async.preference import Reference, write_preferences
from writ_async.prompts import (
    AGENT_INSTRUCTIONS,
    USER_GUIDELINES,
    agent_system_prompt,
    user_system_prompt,
)
from writ_async.records import EpisodeRecord, episode_id
from writ_async.results import summary, to_tau2_results
from writ_async.rundir import RunDir, atomic_write, create_run, new_manifest, open_for_resume
from writ_async.runner import EpisodeSetup, EpisodeSpec, restore
from writ_async.scheduler import MakeParticipants, Progress, StopRequest, run_many
from writ_async.scripted import MistakeConfig, ScriptedAgent, ScriptedUser
from writ_async.seeds import episode_seed, run_seed
from writ_async.tasks import Task, check_base, check_gold_actions, load_tasks
from writ_async.tools import Toolbox
from writ_async.trl_format import write_trl_export

SCRIPTED_HTTP = "scripted-http"
TASKS = "tasks.json"  # the run's tasks, kept in the run directory


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_dir: Path
    records: list[EpisodeRecord]
    progress: Progress | None
    summary: dict[str, Any]
    export: ExportReport
    stopped_early: bool
    expected: int = 0  # episodes the whole run holds (``len(records)`` of them are done)
    warnings: tuple[str, ...] = ()  # what the operator must know about the data (prepare)


def _read_text(path: str | None, default: str) -> str:
    if path is None:
        return default
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None


def load_run_tasks(config: Config, domain: Domain, base: Any) -> tuple[list[Task], str]:
    """The run's tasks and the sha256 that identifies them."""
    sim = config.simulate
    if sim.tasks is not None:
        tasks = load_tasks(sim.tasks, split=sim.split)
        return tasks, hashlib.sha256(Path(sim.tasks).read_bytes()).hexdigest()
    from writ_async.synthesis.tasks import tasks_from_config

    tasks = tasks_from_config(domain, base, sim.task_count, run_seed(config),
                              config.synthesis)
    return tasks, hashlib.sha256(msgspec.json.encode(tasks)).hexdigest()


@asynccontextmanager
async def _maybe_pool(config: Config, tasks: Sequence[Task], domain: Domain,
                      needs_pool: bool, mistakes: MistakeConfig,
                      rate_limiter: RateLimiterFactory | None = None,
                      ) -> AsyncIterator[ModelPool | None]:
    if not needs_pool:
        yield None
        return
    policy = None
    if SCRIPTED_HTTP in (config.simulate.agent, config.simulate.user):
        from writ_async.models.scripted_policy import ScriptedPolicy

        policy = ScriptedPolicy({t.id: t for t in tasks}, {domain.name: domain}, mistakes)
    async with open_pool(config.models, mock_config=config.mock, seed=run_seed(config),
                         mock_policy=policy, rate_limiter=rate_limiter) as pool:
        yield pool


@dataclass(slots=True)
class Prepared:
    """A run's configuration turned into what its episodes need: the domain and its base,
    the tasks, the prompts, and the setup every episode shares."""

    config: Config
    domain_name: str
    base: BaseDB
    toolbox: Toolbox
    tasks: list[Task]
    tasks_hash: str
    agent_system: str
    guidelines: str
    mistakes: MistakeConfig
    setup: EpisodeSetup
    warnings: list[str] = field(default_factory=list)

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)


def prepare(config: Config, *, tasks: tuple[list[Task], str] | None = None,
            base: BaseDB | None = None) -> Prepared:
    """Build the base database and the shared episode setup as ``writ simulate`` does;
    ``tasks`` (with their sha256) instead of loading or synthesizing them, and ``base``
    (already built from the same config) instead of building it again.

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
    domain_name = config.run.domain
    domain = get_domain(domain_name)
    settings = config.domain_settings(domain_name)
    if base is None:
        base = domain.base(settings.db_path, run_seed(config), settings.scale)
    toolbox = domain.toolbox_with_schemas(settings.tools_path)
    policy = domain.policy(settings.policy_path)
    task_list, tasks_hash = tasks if tasks is not None else load_run_tasks(
        config, domain, base)
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
            f"tasks?) and were written for another one than this generated {domain_name} "
            "database; give theirs with --db (here, episodes whose gold actions fail are "
            "graded invalid_task and not exported)")
    agent_system = agent_system_prompt(policy, _read_text(sim.agent_instructions_path,
                                                          AGENT_INSTRUCTIONS))
    guidelines = _read_text(sim.user_guidelines_path, USER_GUIDELINES)
    setup = EpisodeSetup(
        domain=domain, base=base, toolbox=toolbox,
        limits=Limits(max_steps=sim.max_steps, max_errors=sim.max_errors),
        greeting=sim.greeting, gold=GoldCache(gold_must_succeed=bool(foreign)),
        agent_name=sim.agent, user_name=sim.user,
        timeout_s=sim.episode_timeout_s, wall_clock=time.time, known_hashes={},
    )
    return Prepared(config=config, domain_name=domain_name, base=base, toolbox=toolbox,
                    tasks=task_list, tasks_hash=tasks_hash, agent_system=agent_system,
                    guidelines=guidelines,
                    mistakes=MistakeConfig(rate=sim.mistake_rate, kinds=sim.mistakes),
                    setup=setup, warnings=warnings)


def export_filter(config: Config) -> ExportFilter:
    """The run's export filter: what "kept" means for its export and its summary."""
    exp = config.export
    return ExportFilter(min_reward=exp.min_reward, terminations=list(exp.terminations),
                        require_evidence=exp.require_evidence, dedupe=exp.dedupe,
                        reasoning=exp.reasoning)


@asynccontextmanager
async def open_participants(prepared: Prepared, *,
                            rate_limiter: RateLimiterFactory | None = None,
                            ) -> AsyncIterator[MakeParticipants]:
    """The participants of each episode (and the judge on the setup), with the model
    pool they need open for as long as the context lasts (``rate_limiter``: see
    ``open_pool``)."""
    config, sim = prepared.config, prepared.config.simulate
    needs_pool = not (sim.agent == "scripted" and sim.user == "scripted") or bool(sim.judge)
    async with _maybe_pool(config, prepared.tasks, prepared.setup.domain, needs_pool,
                           prepared.mistakes, rate_limiter) as pool:
        if sim.judge is not None:
            assert pool is not None
            prepared.setup.judge = Judge(pool, sim.judge)
        try:
            yield participants_factory(prepared, pool)
        finally:
            prepared.setup.judge = None


def participants_factory(prepared: Prepared, pool: ModelPool | None) -> MakeParticipants:
    """Each episode's agent and user as the run's config names them, the LLM ones over
    ``pool`` (``writ loadtest --from-run`` passes a pool that captures requests)."""
    sim = prepared.config.simulate
    tools = prepared.toolbox.schemas()

    def participants(spec: EpisodeSpec) -> tuple[Participant, Participant]:
        return (_agent(spec, sim.agent, pool, prepared.agent_system, tools, prepared.setup.domain,
                       prepared.mistakes, sim.temperature, sim.max_tokens),
                _user(spec, sim.user, pool, prepared.guidelines, prepared.setup.domain,
                      sim.temperature,
                      sim.max_tokens))

    return participants


def save_tasks(run: RunDir, tasks: Sequence[Task]) -> None:
    """Keep the run's tasks beside its journal (``tasks.json``), so that a replay grades
    with exactly these even if the task file or the synthesizer changes later."""
    path = run.path / TASKS
    if not path.exists():
        atomic_write(path, msgspec.json.encode(list(tasks)))


def write_outputs(run: RunDir, prepared: Prepared, records: Sequence[EpisodeRecord],
                  tasks: Sequence[Task]) -> ExportReport:
    """results.json (tau2-bench's format) and the SFT export of ``records`` (each of
    one of ``tasks``)."""
    config = prepared.config
    run.write_results(to_tau2_results(records, tasks, _info(config, prepared.domain_name),
                                      domain=prepared.setup.domain))
    context = ExportContext(system_prompt_by_domain={prepared.domain_name: prepared.agent_system},
                            tools_by_domain={prepared.domain_name: prepared.toolbox.schemas()})
    exp = config.export
    report = write_exports(
        records, run.path / "export", context,
        export_filter(config),
        [t.id for t in tasks],
    )
    write_trl_export(run.path / "export")
    extra: dict[str, Any] = {}
    if exp.preference:
        extra["preference"] = msgspec.to_builtins(write_preferences(
            records, run.path / "export", context, export_filter(config), [t.id for t in tasks],
            _mistake_free(prepared, tasks)))
    domain = prepared.setup.domain
    write_export_stats(run.path / "export", kind_of=toolbox_kinds({domain.name: domain}),
                       against=exp.contamination_tasks,
                       split=exp.contamination_split, extra=extra)
    return report


def _mistake_free(prepared: Prepared, tasks: Sequence[Task]) -> Reference | None:
    """For the scripted agent: the reply of the same agent without mistakes, by which the
    preference export finds each failing trial's mistake (``preference`` module doc)."""
    if prepared.config.simulate.agent not in ("scripted", SCRIPTED_HTTP):
        return None
    by_id = {t.id: t for t in tasks}
    return lambda record: ScriptedAgent(by_id[record.task_id], prepared.setup.domain,
                                        record.seed).reply


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


def open_run(config: Config, out: Path, *, resume: bool) -> tuple[Prepared, RunDir]:
    """Prepare ``config``'s run and create its run directory at ``out`` (or, resuming, open
    it after checking its manifest against the config), with the run's tasks saved."""
    sim = config.simulate
    prepared = prepare(config)
    tasks = prepared.tasks
    if not tasks:
        raise ConfigError("simulate", "no tasks to run", "simulate.tasks")
    manifest = new_manifest(
        config, base_db_hash=prepared.base.db_hash(), tasks_file_sha256=prepared.tasks_hash,
        task_ids=[t.id for t in tasks], trials=sim.trials, agent=sim.agent, user=sim.user,
    )
    run = open_for_resume(out, manifest) if resume else create_run(out, manifest)
    save_tasks(run, tasks)
    return prepared, run


async def simulate(
    config: Config,
    *,
    out: Path,
    resume: bool = False,
    progress_stream: IO[str] | None = None,
    stop: StopRequest | None = None,
) -> RunOutcome:
    sim = config.simulate
    prepared, run = open_run(config, out, resume=resume)
    for warning in prepared.warnings:
        get_logger(component="simulate").warning("tasks.foreign_database", detail=warning)
        if progress_stream is not None:
            print(f"writ: warning: {warning}", file=progress_stream, flush=True)
    tasks = prepared.tasks
    previous = run.read_journal()  # empty for a new run
    scenarios = run_scenarios(config, tasks)
    specs = episode_specs(prepared, scenarios, previous)

    progress = Progress(total=len(specs), export_filter=export_filter(config))
    async with open_participants(prepared) as participants:
        journal = run.open_journal()  # cuts a torn tail left by a crash, then appends
        try:
            if specs:
                _, progress = await run_many(
                    prepared.setup, specs, participants, journal,
                    concurrency=sim.concurrency, stop=stop, progress_stream=progress_stream,
                    progress=progress,
                )
        finally:
            journal.close()

    records = records_in_run_order(run.read_journal().finished, scenarios, sim.trials)
    report = write_outputs(run, prepared, records, tasks)
    expected = len(scenarios) * sim.trials
    return RunOutcome(run_dir=run.path, records=records, progress=progress if specs else None,
                      summary=summary(records, tasks, export_filter(config)), export=report,
                      stopped_early=len(records) < expected, expected=expected,
                      warnings=tuple(prepared.warnings))


def episode_specs(prepared: Prepared, scenarios: Sequence[Scenario],
                  previous: JournalContents, *, only: Container[str] | None = None,
                  continue_unfinished: bool = True) -> list[EpisodeSpec]:
    """The specs of every episode of ``scenarios`` not finished in ``previous`` (of those
    in ``only``, if given), in run order. An attempt a crash cut short goes on from its
    journaled messages, or, with ``continue_unfinished=False``, starts over (its model
    calls and tokens are then counted in full, as in an uninterrupted run)."""
    config = prepared.config
    by_id = {t.id: t for t in prepared.tasks}
    specs = []
    for scenario in scenarios:
        for trial in range(config.simulate.trials):
            eid = episode_id(scenario.id, trial)
            done = previous.finished.get(eid)
            # An episode that ended on the infrastructure is run again, from where it broke.
            rerun = done is not None and done.termination == RERUN_TERMINATION
            if (done is not None and not rerun) or (only is not None and eid not in only):
                continue
            prefix: tuple[Message, ...] = ()
            if continue_unfinished and (rerun or eid in previous.unfinished):
                prefix = resumable_prefix(
                    prepared.setup, previous.events(eid, previous.attempts[eid]))
            specs.append(EpisodeSpec(task=by_id[scenario.task_id], trial=trial,
                                     seed=episode_seed(run_seed(config), scenario.id, trial),
                                     attempt=previous.next_attempt(eid), prefix=prefix,
                                     behaviours=scenario.behaviours))
    return specs


def run_scenarios(config: Config, tasks: Sequence[Task]) -> list[Scenario]:
    """Every (task, behaviours) scenario of the run: one per task without a behaviour mix,
    else each task told by the mix's sampled behaviours (WRIT stage 2)."""
    mix = config.simulate.behaviours
    if mix is None:
        return [Scenario(t.id, ()) for t in tasks]
    return expand_scenarios([t.id for t in tasks], mix, run_seed(config))


def records_in_run_order(finished: Mapping[str, EpisodeRecord], scenarios: Sequence[Scenario],
              trials: int) -> list[EpisodeRecord]:
    out = []
    for scenario in scenarios:
        for trial in range(trials):
            record = finished.get(episode_id(scenario.id, trial))
            if record is not None:
                out.append(record)
    return out


def _info(config: Config, domain_name: str) -> dict[str, Any]:
    sim = config.simulate
    return {
        "num_trials": sim.trials, "max_steps": sim.max_steps, "max_errors": sim.max_errors,
        "seed": run_seed(config), "domain": domain_name,
        "agent_info": {"implementation": sim.agent}, "user_info": {"implementation": sim.user},
        "environment_info": {"domain_name": domain_name},
        "writ_version": writ_async.__version__, "python": sys.version.split()[0],
    }


def _tag(spec: EpisodeSpec, role: str) -> str:
    from writ_async.models.scripted_policy import request_tag

    return request_tag(spec.episode_id, role, spec.seed)


def _agent(spec: EpisodeSpec, who: str, pool: ModelPool | None, system: str,
           tools: list[dict[str, Any]], domain: Domain, mistakes: MistakeConfig,
           temperature: float, max_tokens: int | None) -> Participant:
    if who == "scripted":
        return InProcess(ScriptedAgent(spec.task, domain, spec.seed, mistakes).reply)
    assert pool is not None
    role = "agent" if who == SCRIPTED_HTTP else who
    return LLMAgent(pool, role, system, tools, seed=spec.seed, tag=_tag(spec, "agent"),
                    temperature=temperature, max_tokens=max_tokens)


def _user(spec: EpisodeSpec, who: str, pool: ModelPool | None, guidelines: str,
          domain: Domain, temperature: float, max_tokens: int | None) -> Participant:
    if who == "scripted":
        return InProcess(ScriptedUser(spec.task, spec.seed, behaviours=spec.behaviours,
                                      domain=domain).reply)
    assert pool is not None
    role = "user" if who == SCRIPTED_HTTP else who
    guidelines = with_behaviours(guidelines, spec.behaviours, spec.task, spec.seed,
                                 domain=domain)
    return LLMUser(pool, role, user_system_prompt(spec.task, guidelines), seed=spec.seed,
                   tag=_tag(spec, "user"), temperature=temperature, max_tokens=max_tokens)
