"""A planned run's directory and what is derived from its journal.

Opening (or resuming) the run directory of a plan, keeping the run's tasks beside the
journal (``tasks.json``, for ``writ replay``), and deriving ``results.json`` (tau2-bench's
format) and the SFT export from the finished records, so that what is reported is
exactly what was committed. Shared by ``writ simulate``, the Ray cluster and ``writ
replay``'s continuations.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

import writ_async
from writ_async.conversation.records import EpisodeRecord
from writ_async.conversation.task import Task
from writ_async.engine.plan import RunPlan
from writ_async.engine.run_participants import SCRIPTED_HTTP
from writ_async.engine.rundir import RunDir, atomic_write, create_run, new_manifest, open_for_resume
from writ_async.engine.scheduler import Progress
from writ_async.errors import ConfigError
from writ_async.export.datastats import toolbox_kinds, write_export_stats
from writ_async.export.preference import Reference, write_preferences
from writ_async.export.sft import ExportContext, ExportReport, write_exports
from writ_async.export.trl_format import write_trl_export
from writ_async.grading.results import to_tau2_results
from writ_async.participants.scripted.agent import ScriptedAgent

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
    warnings: tuple[str, ...] = ()  # what the operator must know about the data (the plan)


def save_tasks(run: RunDir, tasks: Sequence[Task]) -> None:
    """Keep the run's tasks beside its journal (``tasks.json``), so that a replay grades
    with exactly these even if the task file or the synthesizer changes later."""
    path = run.path / TASKS
    if not path.exists():
        atomic_write(path, msgspec.json.encode(list(tasks)))


def open_run_dir(plan: RunPlan, out: Path, *, resume: bool) -> RunDir:
    """Create the plan's run directory at ``out`` (or, resuming, open it after checking
    its manifest against the config), with the run's tasks saved."""
    config, sim = plan.config, plan.config.simulate
    if not plan.tasks:
        raise ConfigError("simulate", "no tasks to run", "simulate.tasks")
    manifest = new_manifest(
        config, base_db_hash=plan.base.db_hash(), tasks_file_sha256=plan.tasks_hash,
        task_ids=[t.id for t in plan.tasks], trials=sim.trials, agent=sim.agent,
        user=sim.user,
    )
    run = open_for_resume(out, manifest) if resume else create_run(out, manifest)
    save_tasks(run, plan.tasks)
    return run


def records_in_run_order(finished: Mapping[str, EpisodeRecord],
                         plan: RunPlan) -> list[EpisodeRecord]:
    """The finished records of the plan's episodes, in run order."""
    return [finished[eid] for eid in plan.episode_ids if eid in finished]


def write_outputs(run: RunDir, plan: RunPlan, records: Sequence[EpisodeRecord],
                  tasks: Sequence[Task]) -> ExportReport:
    """results.json (tau2-bench's format) and the SFT export of ``records`` (each of
    one of ``tasks``)."""
    config, domain = plan.config, plan.domain
    run.write_results(to_tau2_results(records, tasks, _info(plan), domain=domain))
    context = ExportContext(system_prompt_by_domain={domain.name: plan.agent_system},
                            tools_by_domain={domain.name: plan.toolbox.schemas()})
    exp = config.export
    task_ids = [t.id for t in tasks]
    report = write_exports(records, run.path / "export", context, plan.export_filter, task_ids)
    write_trl_export(run.path / "export")
    extra: dict[str, Any] = {}
    if exp.preference:
        extra["preference"] = msgspec.to_builtins(write_preferences(
            records, run.path / "export", context, plan.export_filter, task_ids,
            _mistake_free(plan, tasks)))
    write_export_stats(run.path / "export", kind_of=toolbox_kinds({domain.name: domain}),
                       against=exp.contamination_tasks,
                       split=exp.contamination_split, extra=extra)
    return report


def _mistake_free(plan: RunPlan, tasks: Sequence[Task]) -> Reference | None:
    """For the scripted agent: the reply of the same agent without mistakes, by which the
    preference export finds each failing trial's mistake (``preference`` module doc)."""
    if plan.config.simulate.agent not in ("scripted", SCRIPTED_HTTP):
        return None
    by_id = {t.id: t for t in tasks}
    return lambda record: ScriptedAgent(by_id[record.task_id], plan.domain, record.seed).reply


def _info(plan: RunPlan) -> dict[str, Any]:
    sim, name = plan.config.simulate, plan.domain.name
    return {
        "num_trials": sim.trials, "max_steps": sim.max_steps, "max_errors": sim.max_errors,
        "seed": plan.seed, "domain": name,
        "agent_info": {"implementation": sim.agent}, "user_info": {"implementation": sim.user},
        "environment_info": {"domain_name": name},
        "writ_version": writ_async.__version__, "python": sys.version.split()[0],
    }
