"""Grading one finished episode exactly as tau2-bench grades it, plus writ's evidence check.

tau2-bench's reward (src/tau2/evaluator) is the product, over the task's ``reward_basis``,
of these components, and zero unless the user or the agent ended the episode:

* ``DB`` — the episode's final DB hash equals the hash of a fresh environment after the
  task's gold actions (errors ignored: some gold writes fail by design).
* ``COMMUNICATE`` — every ``communicate_info`` string occurs, lower-cased, in the
  lower-cased, comma-stripped text of some assistant message (all or nothing).
* ``ACTION`` — every gold action is matched by some tool call of the same name whose
  arguments equal the gold ones on ``compare_args`` (on the call's own arguments when
  that is null). Diagnostic in airline and retail: not in their basis.
* ``NL_ASSERTION`` — a judge model's verdicts, all or nothing. Without a judge they are
  listed in ``not_graded``, left out of the product, and the note says so.

Writ adds a **verdict** (``RewardInfo.verdict``): a reward of 1 is only worth something if
the task could be graded at all and fits the database it ran on.

* ``not_graded`` — the task has no evaluation criteria, an empty ``reward_basis``, or no
  component of its basis could be graded (NL assertions without a judge, env assertions).
  tau2-bench would give 1.0 for an empty product; writ gives 0.0 and says so, because a
  1.0 here would read as "verified" downstream (results.json, export). results.json stays
  in tau2's format; only such episodes' rewards differ from tau2's re-grade.
* ``invalid_task`` — the task was written for another database (a task file with no
  ``synthesis.base_db_hash``, i.e. tau2-bench's, run on a *generated* database) and one of
  its gold actions fails on the loaded one. The caller says when this applies
  (``GoldCache(gold_must_succeed=True)``): on tau2-bench's own db.json, some gold actions
  fail by design (retail lookups of users that do not exist; the failing gold writes of
  retail tasks 64 and 105) and those tasks are graded as tau2 grades them.
* ``graded`` — everything else.

Writ also lists **write errors** (``RewardInfo.write_errors``): the agent's write calls
that returned an error, except those equal to a gold write that fails on a fresh
environment too (the gold expects that error). Export drops such episodes.

Writ adds an **evidence** check that is not part of the reward: every write the agent made
that succeeded must rest on the reads that identify its arguments (by default, the gold
reads that precede the matching gold write; a task may bring its own plan), each made
successfully and answered *before* the agent sent the write; and the last user message
before it must contain an explicit "yes" (policy: explicit confirmation).

Everything here is pure: no I/O, no clock. The only environment use is ``replay_gold``,
which runs the gold actions on a fresh overlay of a base that the caller loaded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

import msgspec

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.records import Check, RewardInfo
from writ_async.conversation.task import Action, Task
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import Toolbox, ToolKind
from writ_async.errors import DataError

DB = "DB"
ENV_ASSERTION = "ENV_ASSERTION"
ACTION = "ACTION"
COMMUNICATE = "COMMUNICATE"
NL_ASSERTION = "NL_ASSERTION"
COMPONENTS = (DB, ENV_ASSERTION, ACTION, COMMUNICATE, NL_ASSERTION)

REWARDED_TERMINATIONS = frozenset({"user_stop", "agent_stop"})
SUCCESS_TOLERANCE = 1e-6

# Evidence checks are named "<kind>:<tool>[<call id>]".
EVIDENCE = "evidence"
CONFIRMATION = "confirmation"

_YES = re.compile(r"\byes\b", re.IGNORECASE)
_MISSING = object()

EvidencePlan = Mapping[int, Sequence[Action]]

# RewardInfo.verdict values
GRADED = "graded"
NOT_GRADED = "not_graded"
INVALID_TASK = "invalid_task"

_ERROR_TEXT = 200  # characters of a tool's error output quoted in a write error


# -- the gold end state --------------------------------------------------------------------


class GoldReplay(msgspec.Struct, frozen=True):
    """The gold actions applied to a fresh environment: its hash, and which failed.

    ``must_succeed``: the task was written for another database than the one replayed
    on, so a failing gold action means the task does not fit it (``invalid_task``), not
    a failure by design.
    """

    db_hash: str
    failed: frozenset[int] = frozenset()  # indices into task.gold_actions
    must_succeed: bool = False


def replay_gold(domain: Domain, base: BaseDB, task: Task) -> GoldReplay:
    """Run the task's gold actions in order on a fresh overlay of ``base``.

    Errors are ignored, as tau2-bench ignores them: a gold write that fails (retail tasks
    64 and 105) leaves the gold end state without it. ``task.initial_state`` is not
    applied (no airline or retail task has one).
    """
    env = domain.environment(base)
    failed = [i for i, action in enumerate(task.gold_actions)
              if env.call(action.name, action.arguments).error]
    return GoldReplay(env.db_hash(), frozenset(failed))


def gold_db_hash(domain: Domain, base: BaseDB, task: Task) -> str:
    return replay_gold(domain, base, task).db_hash


class GoldCache:
    """Gold replays per (domain, base, task id): every trial of a task shares one.

    ``gold_must_succeed``: the base is not the database the run's unsynthesized tasks
    were written for (tau2-bench tasks on a generated database), so their replays are
    marked ``must_succeed``. Synthesized tasks are never marked: their base is checked by
    hash before the run (``plan.resolve_plan``).
    """

    __slots__ = ("_entries", "gold_must_succeed", "hits", "misses")

    def __init__(self, *, gold_must_succeed: bool = False) -> None:
        self._entries: dict[tuple[str, int, str], tuple[BaseDB, GoldReplay]] = {}
        self.gold_must_succeed = gold_must_succeed
        self.hits = 0
        self.misses = 0

    def get(self, domain: Domain, base: BaseDB, task: Task) -> GoldReplay:
        key = (domain.name, id(base), task.id)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is base:
            self.hits += 1
            return entry[1]
        self.misses += 1
        found = replay_gold(domain, base, task)
        if self.gold_must_succeed and task.synthesis is None:
            found = msgspec.structs.replace(found, must_succeed=True)
        self._entries[key] = (base, found)  # holding base keeps id(base) from being reused
        return found

    def db_hash(self, domain: Domain, base: BaseDB, task: Task) -> str:
        return self.get(domain, base, task).db_hash

    def evidence_plan(self, domain: Domain, base: BaseDB, task: Task) -> dict[int, list[Action]]:
        """The default plan, without the gold reads that fail on a fresh environment."""
        return default_evidence_plan(task, domain.toolbox, self.get(domain, base, task).failed)

    def __repr__(self) -> str:
        return f"<GoldCache entries={len(self._entries)} hits={self.hits} misses={self.misses}>"


# -- matching calls against gold actions ----------------------------------------------------


def action_matches(action: Action, call: ToolCall) -> bool:
    """tau2-bench's ``Action.compare_with_tool_call``, quirks included.

    With ``compare_args`` null the compared keys are the *call's* arguments, so a call
    that omits an argument the gold action has still matches, and one with an extra
    argument does not; an empty key list matches any call of that name.
    """
    if action.name != call.name:
        return False
    keys = set(action.compare_args if action.compare_args is not None else call.arguments)
    if not keys:
        return True
    called = {k: v for k, v in call.arguments.items() if k in keys}
    wanted = {k: v for k, v in action.arguments.items() if k in keys}
    return called == wanted


def same_call(action: Action, name: str, arguments: Mapping[str, Any]) -> bool:
    """Strict matching for evidence: same name, equal on ``compare_args`` (every argument,
    both ways, when null)."""
    if action.name != name:
        return False
    if action.compare_args is None:
        return dict(arguments) == action.arguments
    return all(arguments.get(k, _MISSING) == action.arguments.get(k, _MISSING)
               for k in action.compare_args)


def _tool_calls(messages: Iterable[Message]) -> list[ToolCall]:
    return [call for m in messages if isinstance(m, AssistantMessage) and m.tool_calls
            for call in m.tool_calls]


def _call_results(messages: Sequence[Message]) -> dict[tuple[int, int], ToolMessage]:
    """(message index, call index) -> the tool message answering that call.

    Results follow their assistant message and are paired by id within that block, so a
    call id reused by a later message cannot borrow an earlier result.
    """
    found: dict[tuple[int, int], ToolMessage] = {}
    for i, message in enumerate(messages):
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            continue
        pending: dict[str, list[int]] = {}
        for j, call in enumerate(message.tool_calls):
            pending.setdefault(call.id, []).append(j)
        for result in islice(messages, i + 1, None):
            if not isinstance(result, ToolMessage):
                break
            slots = pending.get(result.id)
            if slots:
                found[(i, slots.pop(0))] = result
    return found


def _describe(name: str, arguments: Mapping[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return f"{name}({args})"


# -- tau2-bench's components ---------------------------------------------------------------


def communicate_checks(messages: Sequence[Message], infos: Sequence[str]) -> list[Check]:
    """tau2-bench's COMMUNICATE check, one Check per required string (name = the string).

    As tau2 does it: commas are removed from the message, not from the string, so a
    required string that contains a comma can never be found.
    """
    texts = [m.content for m in messages
             if isinstance(m, AssistantMessage) and m.content and m.content.strip()]
    checks = []
    for info in infos:
        needle = info.lower()
        hit = next((t for t in texts if needle in t.lower().replace(",", "")), None)
        if hit is None:
            checks.append(Check(name=info, passed=False,
                                detail=f"Information '{info}' not communicated."))
        else:
            checks.append(Check(
                name=info, passed=True,
                detail=f"Information '{info}' communicated in the message:\n '{hit}'"))
    return checks


def action_checks(messages: Sequence[Message], gold: Sequence[Action]) -> list[Check]:
    """tau2-bench's ACTION check, one Check per gold action, in gold order."""
    calls = _tool_calls(messages)
    checks = []
    for i, action in enumerate(gold):
        hit = next((c for c in calls if action_matches(action, c)), None)
        label = action.action_id or f"{i}:{action.name}"
        if hit is None:
            detail = f"no {action.name} call matches {_describe(action.name, action.arguments)}"
            if action.compare_args is not None:
                detail += f" on {action.compare_args}"
            checks.append(Check(name=label, passed=False, detail=detail))
        else:
            checks.append(Check(name=label, passed=True, detail=f"matched by call {hit.id}"))
    return checks


# -- writ's evidence check -----------------------------------------------------------------


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
    results = _call_results(messages)
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
    what = "; ".join(_describe(r.name, r.arguments) for r in missing)
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
    results = _call_results(messages)
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
            found.append(f"{_describe(call.name, call.arguments)}: {text}")
    return found


def check_kind(check: Check) -> str:
    """``evidence`` or ``confirmation`` for an evidence check."""
    return check.name.split(":", 1)[0]


# -- the grade -----------------------------------------------------------------------------


def grade(
    task: Task,
    record_messages: Sequence[Message],
    termination: str,
    final_db_hash: str,
    gold_hash: str | GoldReplay,
    domain_toolbox: Toolbox,
    nl_results: list[Check] | None = None,
    *,
    evidence_plan: EvidencePlan | None = None,
) -> RewardInfo:
    """Grade one finished episode as tau2-bench does, and add the evidence check.

    ``gold_hash``: the gold end state's hash, or better the ``GoldReplay`` (from
    ``GoldCache``), which also says which gold actions fail by design, so that failing
    gold reads are not demanded as evidence. ``nl_results``: the judge's verdicts, one
    Check per NL assertion; None means no judge is configured. ``evidence_plan``: write
    index -> required reads; by default ``default_evidence_plan``.

    Components are computed and reported even when the termination zeroes the reward,
    or the verdict does (``not_graded``, ``invalid_task``: see the module docstring).
    """
    gold = gold_hash if isinstance(gold_hash, GoldReplay) else GoldReplay(gold_hash)
    criteria = task.evaluation_criteria
    gold_actions = task.gold_actions
    plan = (evidence_plan if evidence_plan is not None
            else default_evidence_plan(task, domain_toolbox, gold.failed))
    evidence = evidence_checks(record_messages, gold_actions, domain_toolbox, plan)
    evidence_ok = all(c.passed for c in evidence)
    errors = write_errors(record_messages, gold_actions, domain_toolbox, gold.failed)
    rewarded = termination in REWARDED_TERMINATIONS
    notes: list[str] = []
    if not rewarded:
        notes.append(f"The episode ended with {termination!r}, not by the user or the agent: "
                     "reward 0 (the components are still reported).")
    if errors:
        notes.append(f"{len(errors)} write call(s) returned an error the gold does not "
                     "expect: not training data.")

    if criteria is None:
        notes.append("The task has no evaluation criteria: not graded, reward 0 (tau2-bench "
                     "would give 1).")
        return RewardInfo(
            reward=0.0, reward_basis=[], gold_db_hash=gold.db_hash,
            final_db_hash=final_db_hash, evidence_checks=evidence, evidence_ok=evidence_ok,
            note=" ".join(notes), verdict=NOT_GRADED, write_errors=errors,
        )

    # DB: tau2 compares hashes unless the task has neither actions nor env assertions.
    if criteria.actions is None and not criteria.env_assertions:
        db_match = True
    else:
        db_match = final_db_hash == gold.db_hash
    invalid = gold.must_succeed and bool(gold.failed)
    failed_writes = [gold_actions[i].action_id or str(i) for i in sorted(gold.failed)
                     if domain_toolbox.kind(gold_actions[i].name) is ToolKind.WRITE]
    if invalid:
        failing = ", ".join(f"{i} {gold_actions[i].name}" for i in sorted(gold.failed))
        notes.append(f"Invalid task: gold action(s) {failing} fail on this database, which "
                     "is not the one the task was written for (give that one with --db): "
                     "reward 0.")
    elif failed_writes:
        notes.append(f"Gold write(s) {', '.join(failed_writes)} fail on a fresh environment; "
                     "the gold end state is without them, as in tau2-bench.")

    communicate = communicate_checks(record_messages, criteria.communicate_info or [])
    actions = action_checks(record_messages, gold_actions)

    values: dict[str, float] = {
        DB: float(db_match),
        COMMUNICATE: float(all(c.passed for c in communicate)),
        ACTION: float(all(c.passed for c in actions)),
    }
    not_graded: list[str] = []
    if criteria.env_assertions:
        not_graded.append(ENV_ASSERTION)
    else:
        values[ENV_ASSERTION] = 1.0
    nl_checks: list[Check] = []
    if not criteria.nl_assertions:
        values[NL_ASSERTION] = 1.0  # tau2: nothing to judge counts as met
    elif nl_results is None:
        not_graded.append(NL_ASSERTION)
    else:
        nl_checks = list(nl_results)
        values[NL_ASSERTION] = float(all(c.passed for c in nl_checks))

    basis = list(criteria.reward_basis)
    unknown = [b for b in basis if b not in COMPONENTS]
    if unknown:
        raise DataError(f"task {task.id}",
                        f"reward_basis names unknown components {unknown} "
                        f"(known: {', '.join(COMPONENTS)})")
    reward = 1.0
    breakdown: dict[str, float] = {}
    for component in basis:
        if component in values:
            breakdown[component] = values[component]
            reward *= values[component]
    skipped = [c for c in not_graded if c in basis]
    if NL_ASSERTION in skipped:
        notes.append("NL assertions were not graded: no judge is configured. The reward is "
                     f"the product of {', '.join(breakdown) or 'nothing'} only.")
    if ENV_ASSERTION in skipped:
        notes.append("Env assertions were not graded: writ cannot run them.")
    if not evidence_ok:
        failing_checks = sum(not c.passed for c in evidence)
        notes.append(f"Evidence: {failing_checks} check(s) failed (writ's own check, not "
                     "part of the reward).")
    verdict = INVALID_TASK if invalid else GRADED
    if not breakdown and not invalid:
        # tau2's product over nothing is 1: nothing was checked, so nothing is verified
        what = ("The reward basis is empty" if not basis
                else "No component of the reward basis could be graded")
        notes.append(f"{what}: not graded, reward 0 (tau2-bench would give 1).")
        verdict = NOT_GRADED

    return RewardInfo(
        reward=reward if rewarded and verdict == GRADED else 0.0,
        reward_basis=basis,
        db_match=db_match,
        gold_db_hash=gold.db_hash,
        final_db_hash=final_db_hash,
        communicate_checks=communicate,
        action_checks=actions,
        nl_assertions=nl_checks,
        breakdown=breakdown,
        not_graded=skipped,
        evidence_checks=evidence,
        evidence_ok=evidence_ok,
        note=" ".join(notes),
        verdict=verdict,
        write_errors=errors,
    )


# -- over trials ---------------------------------------------------------------------------


def is_success(reward: float) -> bool:
    return abs(reward - 1.0) <= SUCCESS_TOLERANCE


def pass_hat_k(rewards_per_task: Mapping[str, Sequence[float]], k: int) -> float:
    """tau2-bench's pass^k: C(c, k) / C(n, k) per task (n trials, c successes), averaged
    over the tasks that have at least k trials; NaN when none has."""
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    scores = [math.comb(sum(map(is_success, rewards)), k) / math.comb(len(rewards), k)
              for rewards in rewards_per_task.values() if len(rewards) >= k]
    return sum(scores) / len(scores) if scores else math.nan


def average_reward(rewards_per_task: Mapping[str, Sequence[float]]) -> float:
    """Mean reward over every trial of every task (tau2's ``avg_reward``); NaN if none."""
    rewards = [r for trials in rewards_per_task.values() for r in trials]
    return sum(rewards) / len(rewards) if rewards else math.nan
