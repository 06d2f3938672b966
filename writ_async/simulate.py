"""`writ simulate`: a whole run, from configuration to results and SFT export.

Builds the domain and its base database, loads (or synthesizes) the tasks, creates the
run directory with its manifest (or reopens it to resume), starts the model pool when a
participant needs one, runs every (task, trial) episode not yet finished through the
scheduler, and finally derives ``results.json`` (tau2-bench's format) and the SFT export
from the journal, so that what is reported is exactly what was committed.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec

import writ_async
from domains import get_domain
from writ_async.config import Config
from writ_async.episode import Limits
from writ_async.errors import ConfigError
from writ_async.export import ExportContext, ExportFilter, ExportReport, write_exports
from writ_async.grading import GoldCache
from writ_async.judge import Judge
from writ_async.models.pool import ModelPool
from writ_async.models.setup import open_pool
from writ_async.participants import InProcess, LLMAgent, LLMUser, Participant
from writ_async.prompts import (
    AGENT_INSTRUCTIONS,
    USER_GUIDELINES,
    agent_system_prompt,
    user_system_prompt,
)
from writ_async.records import EpisodeRecord, derive_seed, episode_id
from writ_async.results import summary, to_tau2_results
from writ_async.rundir import RunDir, create_run, new_manifest, open_for_resume
from writ_async.runner import EpisodeSetup, EpisodeSpec
from writ_async.scheduler import Progress, StopRequest, run_many
from writ_async.scripted import MistakeConfig, ScriptedAgent, ScriptedUser
from writ_async.tasks import Task, load_tasks

SCRIPTED_HTTP = "scripted-http"


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_dir: Path
    records: list[EpisodeRecord]
    progress: Progress | None
    summary: dict[str, Any]
    export: ExportReport
    stopped_early: bool


def _read_text(path: str | None, default: str) -> str:
    if path is None:
        return default
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read: {exc.strerror or exc}") from None


def load_run_tasks(config: Config, domain_name: str, base: Any) -> tuple[list[Task], str]:
    """The run's tasks and the sha256 that identifies them."""
    sim = config.simulate
    if sim.tasks is not None:
        tasks = load_tasks(sim.tasks, split=sim.split)
        return tasks, hashlib.sha256(Path(sim.tasks).read_bytes()).hexdigest()
    from writ_async.synthesis.tasks import generate_tasks

    tasks = generate_tasks(domain_name, base, sim.task_count, config.run.seed)
    return tasks, hashlib.sha256(msgspec.json.encode(tasks)).hexdigest()


@asynccontextmanager
async def _maybe_pool(config: Config, tasks: Sequence[Task], domain_name: str,
                      needs_pool: bool, mistakes: MistakeConfig) -> AsyncIterator[ModelPool | None]:
    if not needs_pool:
        yield None
        return
    policy = None
    if SCRIPTED_HTTP in (config.simulate.agent, config.simulate.user):
        from writ_async.models.scripted_policy import ScriptedPolicy

        toolbox = get_domain(domain_name).toolbox
        policy = ScriptedPolicy({t.id: t for t in tasks}, {domain_name: toolbox}, mistakes)
    async with open_pool(config.models, mock_config=config.mock, seed=config.run.seed,
                         mock_policy=policy) as pool:
        yield pool


async def simulate(
    config: Config,
    *,
    out: Path,
    resume: bool = False,
    progress_stream: IO[str] | None = None,
    stop: StopRequest | None = None,
) -> RunOutcome:
    sim = config.simulate
    domain_name = config.run.domain
    domain = get_domain(domain_name)
    settings = config.domain_settings(domain_name)
    base = domain.base(settings.db_path, config.run.seed, settings.scale)
    toolbox = domain.toolbox_with_schemas(settings.tools_path)
    policy = domain.policy(settings.policy_path)
    tasks, tasks_hash = load_run_tasks(config, domain_name, base)
    if not tasks:
        raise ConfigError("simulate", "no tasks to run", "simulate.tasks")

    manifest = new_manifest(
        config, base_db_hash=base.db_hash(), tasks_file_sha256=tasks_hash,
        task_ids=[t.id for t in tasks], trials=sim.trials, agent=sim.agent, user=sim.user,
    )
    run: RunDir = open_for_resume(out, manifest) if resume else create_run(out, manifest)
    previous = run.read_journal()  # empty for a new run
    specs = [
        EpisodeSpec(task=task, trial=trial, seed=derive_seed(config.run.seed, task.id, trial),
                    attempt=previous.next_attempt(episode_id(task.id, trial)))
        for task in tasks for trial in range(sim.trials)
        if episode_id(task.id, trial) not in previous.finished
    ]

    agent_system = agent_system_prompt(policy, _read_text(sim.agent_instructions_path,
                                                          AGENT_INSTRUCTIONS))
    guidelines = _read_text(sim.user_guidelines_path, USER_GUIDELINES)
    mistakes = MistakeConfig(rate=sim.mistake_rate, kinds=sim.mistakes)
    needs_pool = not (sim.agent == "scripted" and sim.user == "scripted") or bool(sim.judge)
    setup = EpisodeSetup(
        domain=domain, base=base, toolbox=toolbox,
        limits=Limits(max_steps=sim.max_steps, max_errors=sim.max_errors),
        greeting=sim.greeting, gold=GoldCache(), agent_name=sim.agent, user_name=sim.user,
        timeout_s=sim.episode_timeout_s, wall_clock=time.time,
    )

    progress = None
    async with AsyncExitStack() as stack:
        pool = await stack.enter_async_context(
            _maybe_pool(config, tasks, domain_name, needs_pool, mistakes))
        tools = toolbox.schemas()
        if sim.judge is not None:
            assert pool is not None
            setup.judge = Judge(pool, sim.judge)

        def participants(spec: EpisodeSpec) -> tuple[Participant, Participant]:
            return (_agent(spec, sim.agent, pool, agent_system, tools, toolbox, mistakes,
                           sim.temperature, sim.max_tokens),
                    _user(spec, sim.user, pool, guidelines, sim.temperature, sim.max_tokens))

        journal = run.open_journal()  # cuts a torn tail left by a crash, then appends
        try:
            if specs:
                _, progress = await run_many(
                    setup, specs, participants, journal, concurrency=sim.concurrency,
                    stop=stop, progress_stream=progress_stream,
                )
        finally:
            journal.close()

    records = _in_order(run.read_journal().finished, tasks, sim.trials)
    run.write_results(to_tau2_results(records, tasks, _info(config, domain_name)))
    context = ExportContext(system_prompt_by_domain={domain_name: agent_system},
                            tools_by_domain={domain_name: toolbox.schemas()})
    exp = config.export
    report = write_exports(
        records, run.path / "export", context,
        ExportFilter(min_reward=exp.min_reward, terminations=list(exp.terminations),
                     require_evidence=exp.require_evidence, dedupe=exp.dedupe),
        [t.id for t in tasks],
    )
    expected = len(tasks) * sim.trials
    return RunOutcome(run_dir=run.path, records=records, progress=progress,
                      summary=summary(records, tasks), export=report,
                      stopped_early=len(records) < expected)


def _in_order(finished: Mapping[str, EpisodeRecord], tasks: Sequence[Task],
              trials: int) -> list[EpisodeRecord]:
    out = []
    for task in tasks:
        for trial in range(trials):
            record = finished.get(episode_id(task.id, trial))
            if record is not None:
                out.append(record)
    return out


def _info(config: Config, domain_name: str) -> dict[str, Any]:
    sim = config.simulate
    return {
        "num_trials": sim.trials, "max_steps": sim.max_steps, "max_errors": sim.max_errors,
        "seed": config.run.seed, "domain": domain_name,
        "agent_info": {"implementation": sim.agent}, "user_info": {"implementation": sim.user},
        "environment_info": {"domain_name": domain_name},
        "writ_version": writ_async.__version__, "python": sys.version.split()[0],
    }


def _tag(spec: EpisodeSpec, role: str) -> str:
    from writ_async.models.scripted_policy import request_tag

    return request_tag(episode_id(spec.task.id, spec.trial), role, spec.seed)


def _agent(spec: EpisodeSpec, who: str, pool: ModelPool | None, system: str,
           tools: list[dict[str, Any]], toolbox: Any, mistakes: MistakeConfig,
           temperature: float, max_tokens: int | None) -> Participant:
    if who == "scripted":
        return InProcess(ScriptedAgent(spec.task, toolbox, spec.seed, mistakes).reply)
    assert pool is not None
    role = "agent" if who == SCRIPTED_HTTP else who
    return LLMAgent(pool, role, system, tools, seed=spec.seed, tag=_tag(spec, "agent"),
                    temperature=temperature, max_tokens=max_tokens)


def _user(spec: EpisodeSpec, who: str, pool: ModelPool | None, guidelines: str,
          temperature: float, max_tokens: int | None) -> Participant:
    if who == "scripted":
        return InProcess(ScriptedUser(spec.task, spec.seed).reply)
    assert pool is not None
    role = "user" if who == SCRIPTED_HTTP else who
    return LLMUser(pool, role, user_system_prompt(spec.task, guidelines), seed=spec.seed,
                   tag=_tag(spec, "user"), temperature=temperature, max_tokens=max_tokens)
