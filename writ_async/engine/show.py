"""`writ show`: one episode as a person reads it.

The transcript of the episode's recorded attempt (the last finished one, else the latest):
every message, each tool call with its result, and after each write the change it made
to the database: which records were created or changed and, field by field, what the
values were and became. The changes come from re-executing the tool calls on a fresh
overlay of the run's base and comparing the overlay's delta before and after each write,
so they are the environment's own account, and a tool result that does not reproduce is
flagged. Then the grade and why: the verdict (whether the reward means anything), each
component, each check with its detail, the evidence checks and the write errors. An
episode that ended on the infrastructure (a model endpoint down) is not graded at all:
it is left out of rewards and a resume runs it again, so no FAIL is shown for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from writ_async.conversation.episode import Termination
from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.records import Check, RewardInfo
from writ_async.engine.replay.run import RecordedEpisode, ReplayRun
from writ_async.environment.overlay import BaseDB, Overlay
from writ_async.environment.tools import ToolKind
from writ_async.grading.grade import GRADED, INVALID_TASK, NOT_GRADED

SHORT = 600  # characters of a tool output or value shown without --full


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT = _Absent()


def render_episode(run: ReplayRun, episode: str, *, full: bool = False) -> str:
    """The transcript of ``episode`` of ``run``, then its grade."""
    ep = run.recorded(episode)
    lines = _header(run, ep)
    lines.append("")
    lines += _transcript(run, ep, full)
    record = ep.record
    if record is not None and _infrastructure(record.termination):
        lines.append("")
        lines.append(f"grade: {INFRASTRUCTURE_NOT_GRADED}: the episode ended on the "
                     "infrastructure, not by the agent or the user, so it says nothing of "
                     "either: it is left out of rewards and pass^k, is not exported, and "
                     "`writ simulate --resume` runs it again")
    elif record is not None and record.reward_info is not None:
        lines.append("")
        lines += _grade(record.reward_info, full)
    return "\n".join(lines)


INFRASTRUCTURE_NOT_GRADED = "not graded: infrastructure error"
# What each verdict other than "graded" means for the reward, in words.
VERDICTS = {
    INVALID_TASK: "the task's own gold actions fail on this database (it was written for "
                  "another one): reward 0, not exported",
    NOT_GRADED: "the task has no evaluation criteria, or nothing in its reward basis could "
                "be graded: reward 0, not exported",
}


def _infrastructure(termination: str) -> bool:
    return termination == Termination.INFRASTRUCTURE_ERROR.value


# -- header --------------------------------------------------------------------------------


def _header(run: ReplayRun, ep: RecordedEpisode) -> list[str]:
    record = ep.record
    started = ep.started
    lines = [f"run {run.manifest.run_id} ({run.path})"]
    if record is None:
        task = started.task_id if started else "?"
        lines.append(f"episode {ep.episode_id}  task {task}  attempt {ep.attempt}  "
                     "(unfinished: no record)")
        return lines
    lines.append(f"episode {record.episode_id}  task {record.task_id}  trial {record.trial}  "
                 f"seed {record.seed}  attempt {ep.attempt}  domain {record.domain}")
    lines.append(f"agent {record.agent}  user {record.user}  model calls "
                 f"{record.model_calls}  tokens {record.prompt_tokens} in / "
                 f"{record.completion_tokens} out  {record.timing.duration:.3f} s")
    info = record.reward_info
    if _infrastructure(record.termination):
        # Its reward would be a 0 for the endpoint's fault: none is shown, none counted.
        lines.append(f"termination {record.termination}  {INFRASTRUCTURE_NOT_GRADED} (not "
                     "counted in rewards; `writ simulate --resume` runs it again)")
    else:
        reward = "-" if info is None else f"{info.reward:g}"
        if info is not None and info.verdict != GRADED:
            reward += f" ({info.verdict})"
        evidence = "-" if info is None else ("ok" if info.evidence_ok else "FAILED")
        lines.append(f"termination {record.termination}  reward {reward}  evidence {evidence}")
    if record.error:
        lines.append(f"error: {record.error}")
    if record.lineage is not None:
        lin = record.lineage
        lines.append(f"replayed from {lin.parent_dir} episode {lin.parent_episode} (attempt "
                     f"{lin.parent_attempt}), kept {lin.fork_step} messages, "
                     f"mode {lin.mode}")
    return lines


# -- transcript ----------------------------------------------------------------------------


def _transcript(run: ReplayRun, ep: RecordedEpisode, full: bool) -> list[str]:
    record = ep.record
    messages: list[Message] = record.messages if record is not None else ep.messages
    plan = run.plan
    env = plan.domain.environment(plan.base, plan.toolbox)
    lines: list[str] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        if isinstance(message, UserMessage):
            lines += _said(i, "user", message.content)
        elif isinstance(message, ToolMessage):  # a result without its call: show it as is
            lines += _said(i, "tool", _cut(message.content, full))
        elif isinstance(message, AssistantMessage):
            if message.content:
                lines += _said(i, "agent", message.content)
            calls = message.tool_calls or ()
            for j, call in enumerate(calls):
                step = f"[{i}]" if j == 0 and not message.content else " " * len(f"[{i}]")
                lines.append(f"{step} agent calls {_call(call)}")
            block = messages[i + 1:i + 1 + len(calls)]
            for j, call in enumerate(calls):
                result = block[j] if j < len(block) and isinstance(block[j], ToolMessage) \
                    else None
                lines += _tool(i + 1 + j, call, result, env.overlay, plan.base, env, full,
                               plan.toolbox.kind(call.name) is ToolKind.WRITE)
            i += 1 + sum(1 for m in block if isinstance(m, ToolMessage))
            continue
        i += 1
    return lines


def _said(step: int, who: str, text: str) -> list[str]:
    prefix = f"[{step}] {who}: "
    pad = " " * len(prefix)
    rows = text.splitlines() or [""]
    return [prefix + rows[0], *(pad + row for row in rows[1:])]


def _call(call: ToolCall) -> str:
    args = ", ".join(f"{k}={msgspec.json.encode(v).decode()}" for k, v in call.arguments.items())
    return f"{call.name}({args})  [{call.id}]"


def _tool(step: int, call: ToolCall, result: ToolMessage | None, overlay: Overlay,
          base: BaseDB, env: Any, full: bool, write: bool) -> list[str]:
    before = msgspec.to_builtins(overlay.delta()) if write else None
    replayed = env.call(call.name, call.arguments)
    lines = []
    if result is None:
        lines.append(f"[{step}] (no recorded result for {call.id}; the replay gives: "
                     f"{_cut(replayed.output, full)})")
    else:
        flag = " ERROR" if result.error else ""
        lines += _said(step, f"tool {call.name}{flag}", _cut(result.content, full))
        if (replayed.output, replayed.error) != (result.content, result.error):
            lines.append(f"    !! the replay gives another result: {_cut(replayed.output, full)}")
    if write:
        after = msgspec.to_builtins(overlay.delta())
        changes = list(state_diff(base, before, after, full))
        if changes:
            lines.append("    state after this write:")
            lines += [f"      {c}" for c in changes]
        else:
            lines.append("    state after this write: unchanged")
    return lines


def state_diff(base: BaseDB, before: dict[str, Any], after: dict[str, Any],
               full: bool = False) -> Iterator[str]:
    """What changed between two overlay deltas (``msgspec.to_builtins(overlay.delta())``):
    ``table[key]: created {...}`` or one ``table[key].field.path: old -> new`` per
    changed value (records absent from a delta are the base's)."""
    for table in sorted(before.keys() | after.keys()):
        old_t, new_t = before.get(table, {}), after.get(table, {})
        keys = [*old_t, *(k for k in new_t if k not in old_t)]
        for key in keys:
            old = old_t.get(key, ABSENT)
            new = new_t.get(key, ABSENT)
            if old is ABSENT:
                old = _base_record(base, table, key)
            if new is ABSENT:
                new = _base_record(base, table, key)
            if old == new:
                continue
            if old is ABSENT:
                text = msgspec.json.encode(new).decode()
                yield f"{table}[{key}]: created {_cut(text, full, 300)}"
                continue
            for path, a, b in _changes(old, new, ""):
                if isinstance(a, list) and isinstance(b, list) and b[:len(a)] == a:
                    added = ", ".join(_json(x) for x in b[len(a):])
                    yield f"{table}[{key}]{path}: appended {_cut(added, full, 300)}"
                elif b is ABSENT:
                    yield f"{table}[{key}]{path}: removed (was {_cut(_json(a), full, 200)})"
                elif a is ABSENT:
                    yield f"{table}[{key}]{path}: added {_cut(_json(b), full, 200)}"
                else:
                    yield (f"{table}[{key}]{path}: {_cut(_json(a), full, 200)} -> "
                           f"{_cut(_json(b), full, 200)}")


def _base_record(base: BaseDB, table: str, key: str) -> Any:
    record = base.tables.get(table, {}).get(key)
    return ABSENT if record is None else msgspec.to_builtins(record)


def _changes(a: Any, b: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            yield from _changes(a.get(key, ABSENT), b.get(key, ABSENT), f"{path}.{key}")
        return
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _changes(x, y, f"{path}[{i}]")
        return
    yield path, a, b


def _json(value: Any) -> str:
    return repr(value) if value is ABSENT else msgspec.json.encode(value).decode()


def _cut(text: str, full: bool, limit: int = SHORT) -> str:
    if full or len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters; --full shows all)"


# -- grade ---------------------------------------------------------------------------------


def _grade(info: RewardInfo, full: bool = False) -> list[str]:
    basis = ", ".join(info.reward_basis) or "nothing"
    lines = [f"grade: reward {info.reward:g} (the product over {basis})"]
    meaning = VERDICTS.get(info.verdict, "" if info.verdict == GRADED else "reward 0")
    lines.append(f"  verdict: {info.verdict}" + (f": {meaning}" if meaning else ""))
    for component, value in info.breakdown.items():
        lines.append(f"  {component}: {value:g}")
    if info.db_match is not None:
        final = (info.final_db_hash or "")[:16]
        gold = (info.gold_db_hash or "")[:16]
        lines.append(f"  DB {'matches' if info.db_match else 'DIFFERS'}: final {final}... "
                     f"{'==' if info.db_match else '!='} gold {gold}...")
    lines += _checks("communicate", info.communicate_checks)
    lines += _checks("actions (diagnostic, not in the reward)", info.action_checks)
    lines += _checks("NL assertions", info.nl_assertions)
    if info.not_graded:
        lines.append(f"  not graded: {', '.join(info.not_graded)}")
    lines += _checks(f"evidence ({'ok' if info.evidence_ok else 'FAILED'}; writ's own check, "
                     "not in the reward)", info.evidence_checks)
    if info.write_errors:
        lines.append("  write errors (refused writes the gold does not expect; not exported):")
        lines += [f"    {_cut(' '.join(error.split()), full, 300)}"
                  for error in info.write_errors]
    if info.note:
        lines.append(f"  note: {info.note}")
    return lines


def _checks(title: str, checks: list[Check]) -> list[str]:
    if not checks:
        return []
    lines = [f"  {title}:"]
    for check in checks:
        mark = "ok  " if check.passed else "FAIL"
        detail = " ".join(check.detail.split())
        lines.append(f"    {mark} {check.name}" + (f": {_cut(detail, False, 300)}" if detail
                                                    else ""))
    return lines

