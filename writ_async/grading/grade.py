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
from collections.abc import Mapping, Sequence

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
)
from writ_async.conversation.records import Check, RewardInfo
from writ_async.conversation.task import Action, Task
from writ_async.environment.tools import Toolbox, ToolKind
from writ_async.errors import DataError
from writ_async.grading.evidence import (
    EvidencePlan,
    default_evidence_plan,
    evidence_checks,
    write_errors,
)
from writ_async.grading.gold import GoldReplay
from writ_async.grading.matching import action_matches, describe_call, tool_calls_of

DB = "DB"
ENV_ASSERTION = "ENV_ASSERTION"
ACTION = "ACTION"
COMMUNICATE = "COMMUNICATE"
NL_ASSERTION = "NL_ASSERTION"
COMPONENTS = (DB, ENV_ASSERTION, ACTION, COMMUNICATE, NL_ASSERTION)

REWARDED_TERMINATIONS = frozenset({"user_stop", "agent_stop"})
SUCCESS_TOLERANCE = 1e-6


# RewardInfo.verdict values
GRADED = "graded"
NOT_GRADED = "not_graded"
INVALID_TASK = "invalid_task"



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
    calls = tool_calls_of(messages)
    checks = []
    for i, action in enumerate(gold):
        hit = next((c for c in calls if action_matches(action, c)), None)
        label = action.action_id or f"{i}:{action.name}"
        if hit is None:
            detail = f"no {action.name} call matches {describe_call(action.name, action.arguments)}"
            if action.compare_args is not None:
                detail += f" on {action.compare_args}"
            checks.append(Check(name=label, passed=False, detail=detail))
        else:
            checks.append(Check(name=label, passed=True, detail=f"matched by call {hit.id}"))
    return checks


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
