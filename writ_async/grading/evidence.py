"""writ's evidence check, not part of the reward: every write the agent made rests on the
reads that identify its arguments, answered before it, and on the user's explicit "yes";
and the agent's write calls that returned an error the gold does not expect."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    UserMessage,
)
from writ_async.conversation.records import Check
from writ_async.conversation.task import Action, Task
from writ_async.environment.tools import Toolbox, ToolKind
from writ_async.errors import DataError
from writ_async.grading.matching import call_results, describe_call, same_call

# Evidence checks are named "<kind>:<tool>[<call id>]".
EVIDENCE = "evidence"
CONFIRMATION = "confirmation"

_YES = re.compile(r"\byes\b", re.IGNORECASE)

EvidencePlan = Mapping[int, Sequence[Action]]

_ERROR_TEXT = 200  # characters of a tool's error output quoted in a write error


def default_evidence_plan(task: Task, toolbox: Toolbox,
                          failed: Collection[int] = ()) -> dict[int, list[Action]]:
    """Gold write index -> the gold reads before it in the gold list (deduplicated).

    A synthesized task whose provenance names a ``read_plan`` (the action ids of the reads
    that identify its decisions) requires only those reads. ``failed`` names gold actions
    that error on a fresh environment (``GoldReplay.failed``): such a read identifies
    nothing (a lookup of a user that does not exist), so it is not required.
    """
    synthesis = getattr(task, "synthesis", None)
    read_plan = set(getattr(synthesis, "read_plan", None) or ())
    plan: dict[int, list[Action]] = {}
    reads: list[Action] = []
    for i, action in enumerate(task.gold_actions):
        kind = toolbox.kind(action.name)
        if kind is ToolKind.READ:
            wanted = not read_plan or action.action_id in read_plan
            if wanted and i not in failed and not any(
                    same_call(r, action.name, action.arguments) for r in reads):
                reads.append(action)
        elif kind is ToolKind.WRITE:
            plan[i] = list(reads)
    return plan


def evidence_checks(messages: Sequence[Message], gold: Sequence[Action], toolbox: Toolbox,
                    plan: EvidencePlan) -> list[Check]:
    """Two Checks per successful write the agent made: ``confirmation:`` and ``evidence:``.

    A write is matched to a gold write of the plan by name and compared arguments (the
    first not yet matched, else the first); a write with no gold counterpart needs no
    evidence (the DB check judges it). A required read counts when a call with the same
    name and equal arguments succeeded in an *earlier* assistant message, i.e. its result
    was in front of the agent when it decided the write.
    """
    for index in plan:
        if not 0 <= index < len(gold):
            raise DataError("evidence plan", f"write index {index} is not a gold action "
                            f"(the task has {len(gold)})")
    results = call_results(messages)
    seen_reads: list[tuple[str, Mapping[str, Any]]] = []
    used: set[int] = set()
    last_user: str | None = None
    checks: list[Check] = []
    for i, message in enumerate(messages):
        if isinstance(message, UserMessage):
            last_user = message.content
            continue
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            continue
        for j, call in enumerate(message.tool_calls):
            result = results.get((i, j))
            if toolbox.kind(call.name) is not ToolKind.WRITE or result is None or result.error:
                continue
            label = f"{call.name}[{call.id}]"
            checks.append(_confirmation(label, last_user))
            checks.append(_evidence(label, call, gold, plan, used, seen_reads))
            last_user = None  # one "yes" confirms one write: the next needs its own
        for j, call in enumerate(message.tool_calls):
            result = results.get((i, j))
            if toolbox.kind(call.name) is ToolKind.READ and result is not None and not result.error:
                seen_reads.append((call.name, call.arguments))
    return checks


def _confirmation(label: str, last_user: str | None) -> Check:
    name = f"{CONFIRMATION}:{label}"
    if last_user is None:
        return Check(name=name, passed=False,
                     detail="no user message since the previous write (or at all)")
    if _YES.search(last_user):
        return Check(name=name, passed=True)
    return Check(name=name, passed=False,
                 detail=f"the last user message before it has no explicit yes: {last_user!r}")


def _evidence(label: str, call: ToolCall, gold: Sequence[Action], plan: EvidencePlan,
              used: set[int], seen_reads: list[tuple[str, Mapping[str, Any]]]) -> Check:
    name = f"{EVIDENCE}:{label}"
    candidates = [k for k in sorted(plan) if same_call(gold[k], call.name, call.arguments)]
    if not candidates:
        return Check(name=name, passed=True,
                     detail="no gold counterpart: needs no evidence, the DB check judges it")
    index = next((k for k in candidates if k not in used), candidates[0])
    used.add(index)
    missing = [r for r in plan[index]
               if not any(same_call(r, n, a) for n, a in seen_reads)]
    if not missing:
        return Check(name=name, passed=True)
    what = "; ".join(describe_call(r.name, r.arguments) for r in missing)
    return Check(name=name, passed=False, detail=f"not read before this write: {what}")


def write_errors(messages: Sequence[Message], gold: Sequence[Action], toolbox: Toolbox,
                 failed: Collection[int] = ()) -> list[str]:
    """The agent's write calls that returned an error the gold does not expect, as
    ``tool(args): output``, in call order.

    An error is expected when the call equals (``same_call``) a gold write that fails on a
    fresh environment too (``failed``, from ``GoldReplay``): retail tasks 64 and 105 ask
    for a write that the database refuses. Any other refused write means the episode
    taught the agent to send a wrong write, whatever its reward.
    """
    expected = [gold[i] for i in sorted(failed) if 0 <= i < len(gold)
                and toolbox.kind(gold[i].name) is ToolKind.WRITE]
    results = call_results(messages)
    found: list[str] = []
    for i, message in enumerate(messages):
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            continue
        for j, call in enumerate(message.tool_calls):
            result = results.get((i, j))
            if (result is None or not result.error
                    or toolbox.kind(call.name) is not ToolKind.WRITE
                    or any(same_call(a, call.name, call.arguments) for a in expected)):
                continue
            text = result.content
            if len(text) > _ERROR_TEXT:
                text = text[:_ERROR_TEXT] + "..."
            found.append(f"{describe_call(call.name, call.arguments)}: {text}")
    return found


def check_kind(check: Check) -> str:
    """``evidence`` or ``confirmation`` for an evidence check."""
    return check.name.split(":", 1)[0]
