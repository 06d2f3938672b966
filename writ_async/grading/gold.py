"""The gold end state of a task: its gold actions run on a fresh overlay of the base (the
DB component's reference hash), once per task (``GoldCache``)."""

from __future__ import annotations

import msgspec

from writ_async.conversation.task import Action, Task
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.grading.evidence import default_evidence_plan


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
