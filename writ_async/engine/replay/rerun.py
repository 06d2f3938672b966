"""Re-run a run's failures: every failed or rejected episode, from the start or from the
step before its first wrong write, through the scheduler, into a new run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

from writ_async.conversation.episode import FAILURES
from writ_async.conversation.messages import AssistantMessage, ToolMessage
from writ_async.conversation.records import EpisodeRecord
from writ_async.conversation.task import Task
from writ_async.engine.replay.continuation import (
    FROM_FIRST_WRONG_WRITE,
    FROM_START,
    Overrides,
    ReplayOutcome,
    continuation_config,
    continuation_spec,
    continue_live,
)
from writ_async.engine.replay.fork import check_fork
from writ_async.engine.replay.run import ReplayRun
from writ_async.engine.scheduler import StopRequest
from writ_async.environment.tools import ToolKind
from writ_async.errors import ReplayError
from writ_async.export.sft import is_kept
from writ_async.grading.gold import GoldReplay
from writ_async.grading.matching import action_matches


def first_wrong_write(record: EpisodeRecord, task: Task, run: ReplayRun,
                      gold: GoldReplay) -> int | None:
    """The index of the assistant message holding the episode's first wrong write, or
    None. A write (one that succeeded) is wrong when its evidence or confirmation check
    failed, or when no gold write not yet matched matches it (``grading.matching.action_matches``).
    """
    toolbox = run.plan.toolbox
    info = record.reward_info
    failed = {c.name for c in (info.evidence_checks if info else []) if not c.passed}
    gold_writes = [a for i, a in enumerate(task.gold_actions)
                   if toolbox.kind(a.name) is ToolKind.WRITE and i not in gold.failed]
    used: set[int] = set()
    messages = record.messages
    for i, message in enumerate(messages):
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            continue
        results = {}
        for later in messages[i + 1:i + 1 + len(message.tool_calls)]:
            if isinstance(later, ToolMessage):
                results.setdefault(later.id, later)
        for call in message.tool_calls:
            result = results.get(call.id)
            if toolbox.kind(call.name) is not ToolKind.WRITE or result is None or result.error:
                continue
            label = f"{call.name}[{call.id}]"
            if f"evidence:{label}" in failed or f"confirmation:{label}" in failed:
                return i
            match = next((k for k, action in enumerate(gold_writes)
                          if k not in used and action_matches(action, call)), None)
            if match is None:
                return i
            used.add(match)
    return None


async def rerun_failed(run: ReplayRun, *, mode: str = FROM_START, out: Path,
                       overrides: Overrides | None = None,
                       progress_stream: IO[str] | None = None,
                       stop: StopRequest | None = None) -> ReplayOutcome:
    """Re-run every failed or rejected episode of ``run`` into a new run at ``out``, from
    the start or from the step before its first wrong write (``mode``), through the
    scheduler at the configured concurrency."""
    if mode not in (FROM_START, FROM_FIRST_WRONG_WRITE):
        raise ValueError(f"unknown mode {mode!r}")
    overrides = overrides or Overrides()
    config = continuation_config(run.config, overrides)
    setup = run.setup
    parent_filter = run.plan.export_filter
    specs, notes = [], {}
    for ep_id in run.episode_ids():
        record = run.contents.finished[ep_id]
        if is_kept(record, parent_filter):  # only what the run's export dropped
            continue
        ep = run.recorded(ep_id)
        step = 0
        if mode == FROM_FIRST_WRONG_WRITE:
            task = run.task(record.task_id)
            wrong = first_wrong_write(record, task, run, setup.gold.get(
                setup.domain, setup.base, task))
            if wrong is not None:
                step = wrong
            elif record.termination in FAILURES:
                step = len(ep.messages)  # no wrong write: go on from where it failed
                notes[ep_id] = "no wrong write: continued from where it failed"
            else:
                notes[ep_id] = "no wrong write: from the start"
            if step:
                try:
                    check_fork(run, ep, step)
                except ReplayError as refused:
                    step = 0
                    notes[ep_id] = f"from the start ({refused})"
        specs.append(continuation_spec(run, ep, step, mode, overrides))
    outcome = await continue_live(run, config, specs, out, mode, progress_stream, stop, notes)
    outcome.selected = len(specs)
    return outcome
