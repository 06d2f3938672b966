"""WRIT stage 1: tasks synthesized from a domain database, with verified gold actions.

``generate_tasks`` asks the domain's own synthesizer (``domains/<name>/tasks.py``) for
drafts, one user with several requests each, and turns every draft into a tau2-format
``Task``: gold actions (the reads each decision needs, then its write), what the agent
must communicate, the user scenario, the WRIT axes and a ``Provenance`` record. Every
task is verified before it is kept: its gold actions are executed on a fresh overlay,
each must succeed, and the end state must be the one the synthesizer reached while
simulating; that state's tau2 DB hash is recorded.

Determinism: task ``i`` depends only on the base database, the seed, ``i`` and the tasks
before it (which it must not duplicate), so the same arguments give the same bytes and a
smaller ``count`` gives a prefix of a larger one. Its ids are ``<domain>-w-<i:06d>``.

This first slice makes write-intensive tasks (and refusals); read-heavy tasks will come
from further synthesizers with the same ``Draft`` / ``Synthesizer`` protocol.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from importlib import import_module

from domains import get_domain
from writ_async.domain import Domain
from writ_async.errors import WritError
from writ_async.overlay import BaseDB
from writ_async.synthesis.drafts import Call, Draft, GoldActionError, Shape, Synthesizer
from writ_async.synthesis.wording import join_requests, manners
from writ_async.tasks import (
    Action,
    Axes,
    EvaluationCriteria,
    Instructions,
    Provenance,
    Task,
    UserScenario,
)
from writ_async.tools import Toolbox, ToolKind

WRITE_INTENSIVE = "write_intensive"
REWARD_BASIS = ("DB", "COMMUNICATE")
REFUSAL_SHARE = 0.1  # share of tasks made only of requests the policy refuses
MIXED_REFUSAL = 0.2  # chance that a write-intensive task also has one refused request
SHAPE_TRIES = 32  # attempts with the index's own shape before the shape is redrawn
MAX_TRIES = 400  # attempts per task before the database is declared too small


class SynthesisError(WritError):
    """The database cannot yield the tasks asked for (too small, or too few users that
    fit the requested number of writes)."""


def generate_tasks(
    domain_name: str,
    base: BaseDB,
    count: int,
    seed: int,
    *,
    writes: tuple[int, int] = (2, 6),
    exclude: Iterable[Task] = (),
    refusal_share: float = REFUSAL_SHARE,
) -> list[Task]:
    """``count`` verified write-intensive tasks for ``domain_name`` over ``base``.

    Each task has between ``writes[0]`` and ``writes[1]`` gold writes, except the share
    ``refusal_share`` made only of requests the policy refuses (no write, unchanged end
    state). No task's gold writes equal those of a task in ``exclude`` or of an earlier
    task of the batch (tasks without writes compare on all their gold actions).
    """
    low, high = writes
    if not 1 <= low <= high:
        raise ValueError(f"writes must be a range 1 <= low <= high, got {writes!r}")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    domain = get_domain(domain_name)
    synthesizer: Synthesizer = import_module(f"domains.{domain_name}.tasks").write_intensive(
        base
    )
    seen = {gold_key(task, domain.toolbox) for task in exclude}
    return [
        _one_task(domain, synthesizer, base, seed, index, writes, refusal_share, seen)
        for index in range(count)
    ]


def _derive(seed: int, *parts: object) -> int:
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def _shape(rng: random.Random, writes: tuple[int, int], refusal_share: float) -> Shape:
    if rng.random() < refusal_share:
        return Shape(writes=0, refusals=rng.choice((1, 1, 2)))
    return Shape(writes=rng.randint(*writes), refusals=int(rng.random() < MIXED_REFUSAL))


def _one_task(
    domain: Domain,
    synthesizer: Synthesizer,
    base: BaseDB,
    seed: int,
    index: int,
    writes: tuple[int, int],
    refusal_share: float,
    seen: set[tuple[str, ...]],
) -> Task:
    task_id = f"{domain.name}-w-{index:06d}"
    shape = _shape(random.Random(_derive(seed, index, "shape")), writes, refusal_share)
    for attempt in range(MAX_TRIES):
        if attempt >= SHAPE_TRIES:  # this shape does not fit the database: redraw it
            shape = _shape(random.Random(_derive(seed, index, "shape", attempt)), writes,
                           refusal_share)
        task_seed = _derive(seed, index, attempt)
        rng = random.Random(task_seed)
        env = domain.environment(base)
        draft = synthesizer.draft(env, rng, shape)
        if draft is None:
            continue
        task = _task(domain, base, task_id, draft, rng, synthesizer.generator, seed,
                     task_seed, env.db_hash())
        key = gold_key(task, domain.toolbox)
        if key in seen:
            continue
        seen.add(key)
        return task
    raise SynthesisError(
        f"{domain.name}: no task {index} after {MAX_TRIES} attempts; the database is too "
        f"small for the requested writes {writes[0]}..{writes[1]}"
    )


def _task(
    domain: Domain, base: BaseDB, task_id: str, draft: Draft, rng: random.Random,
    generator: str, seed: int, task_seed: int, reached_hash: str,
) -> Task:
    calls: list[Call] = []
    read_keys: set[str] = set()

    def add_reads(reads: Sequence[Call]) -> None:
        for name, args in reads:
            key = _canonical(name, args)
            if key not in read_keys:
                read_keys.add(key)
                calls.append((name, args))

    add_reads(draft.identity)
    communicate: list[str] = []
    assertions: list[str] = []
    for step in draft.steps:
        add_reads(step.reads)
        if step.write is not None:
            calls.append(step.write)
        communicate.extend(c for c in step.communicate if c not in communicate)
        assertions.extend(step.assertions)
    actions = [
        Action(action_id=f"{task_id}_{i}", name=name, arguments=args, info=None)
        for i, (name, args) in enumerate(calls)
    ]
    box = domain.toolbox
    read_plan = [a.action_id for a in actions if box.kind(a.name) is ToolKind.READ]
    n_writes = sum(box.kind(a.name) is ToolKind.WRITE for a in actions)

    asks = [step.ask for step in draft.steps]
    reason = join_requests(rng, asks)
    if draft.opening:
        reason = f"{draft.opening}\n\n{reason}"
    lines: list[str] = []
    for step in draft.steps:
        lines.extend(line for line in step.instructions if line not in lines)
    lines += manners(rng, len(draft.steps), draft.manners)
    kind = "Refusal" if n_writes == 0 else "Write-intensive"
    purpose = (f"{kind} task: {n_writes} writes after {len(read_plan)} reads. "
               + "; ".join(step.note for step in draft.steps) + ".")

    task = Task(
        id=task_id,
        description={"purpose": purpose, "relevant_policies": None, "notes": None},
        user_scenario=UserScenario(
            persona=None,
            instructions=Instructions(
                domain=domain.name,
                reason_for_call=reason,
                known_info=draft.known_info,
                unknown_info=draft.unknown_info,
                task_instructions="\n".join(lines),
            ),
        ),
        initial_state=None,
        evaluation_criteria=EvaluationCriteria(
            actions=actions,
            communicate_info=communicate,
            nl_assertions=assertions or None,
            reward_basis=list(REWARD_BASIS),
        ),
        annotations=None,
        axes=Axes(writes=n_writes, evidence=len(read_plan)),
        trajectory_type=WRITE_INTENSIVE,
        synthesis=Provenance(
            generator=generator,
            seed=seed,
            task_seed=task_seed,
            base_db_hash=base.db_hash(),
            gold_db_hash="",
            read_plan=read_plan,
            requests=[step.kind for step in draft.steps],
        ),
    )
    gold_hash = replay_gold(domain, base, task)
    if gold_hash != reached_hash:
        raise GoldActionError(
            f"{task_id}: replaying the gold reaches {gold_hash}, the synthesizer reached "
            f"{reached_hash}"
        )
    assert task.synthesis is not None
    task.synthesis.gold_db_hash = gold_hash
    return task


def replay_gold(domain: Domain, base: BaseDB, task: Task) -> str:
    """Execute ``task``'s gold actions on a fresh overlay of ``base``; the end state's
    tau2 DB hash. Any action that fails raises ``GoldActionError``."""
    env = domain.environment(base)
    for action in task.gold_actions:
        result = env.call(action.name, action.arguments)
        if result.error:
            raise GoldActionError(
                f"{task.id}: gold action {action.action_id} {action.name}"
                f"({json.dumps(action.arguments)}) failed: {result.output}"
            )
    return env.db_hash()


def gold_key(task: Task, toolbox: Toolbox) -> tuple[str, ...]:
    """What makes two tasks the same for exclusion: their gold writes (as a multiset),
    or, for a task without writes, all of its gold actions in order."""
    actions = task.gold_actions
    writes = sorted(
        _canonical(a.name, a.arguments) for a in actions
        if toolbox.kind(a.name) is ToolKind.WRITE
    )
    if writes:
        return ("writes", *writes)
    return ("actions", *(_canonical(a.name, a.arguments) for a in actions))


def _canonical(name: str, arguments: object) -> str:
    return json.dumps([name, arguments], sort_keys=True, separators=(",", ":"))


def distribution(tasks: Iterable[Task]) -> dict[tuple[int, int], int]:
    """How many tasks have each (writes, evidence) pair, sorted by writes then evidence."""
    counts: dict[tuple[int, int], int] = {}
    for task in tasks:
        if task.axes is not None:
            key = (task.axes.writes, task.axes.evidence)
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def format_distribution(tasks: Sequence[Task]) -> str:
    """A writes-by-evidence table of task counts, for the operator."""
    counts = distribution(tasks)
    if not counts:
        return "no tasks"
    rows = sorted({w for w, _ in counts})
    cols = sorted({e for _, e in counts})
    width = max(5, *(len(str(n)) for n in counts.values()))
    head = "writes\\reads " + " ".join(f"{e:>{width}}" for e in cols) + f" {'total':>{width}}"
    lines = [head]
    for w in rows:
        cells = [counts.get((w, e), 0) for e in cols]
        lines.append(f"{w:>12} " + " ".join(f"{c or '.':>{width}}" for c in cells)
                     + f" {sum(cells):>{width}}")
    lines.append(f"{'total':>12} " + " ".join(
        f"{sum(counts.get((w, e), 0) for w in rows):>{width}}" for e in cols
    ) + f" {len(tasks):>{width}}")
    return "\n".join(lines)
