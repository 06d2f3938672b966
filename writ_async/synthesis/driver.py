"""WRIT stage 1: tasks synthesized from a domain database, with verified gold actions.

``generate_tasks`` asks the domain's own synthesizers for drafts, one user with one or
several requests each, and turns every draft into a tau2-format ``Task``: gold actions
(the reads each decision needs, then its write), what the agent must communicate, the
user scenario, the WRIT axes and a ``Provenance`` record. Three trajectory types, mixed
by ``mix``:

* ``write_intensive`` (the domain's ``Domain.write_intensive``): several requests in
  sequence, each valid under tools and policy where it happens, plus refusals;
* ``read_heavy`` (the domain's ``Domain.read_heavy``): one write whose arguments only a
  criterion over read evidence fixes, proved unique by enumerating every candidate
  through the read tools; its burden (the size of the minimal read plan) is drawn within
  ``evidence``;
* ``mixed``: several writes, one or two of them read-heavy, with all reads within
  ``evidence``.

Every task is verified before it is kept: its gold actions are executed on a fresh
overlay, each must succeed, and the end state must be the one the synthesizer reached
while simulating; that state's tau2 DB hash is recorded. A read-heavy or mixed task also
lists its decisions (criterion, candidate space, the write they fix) in
``description["decisions"]``, so its uniqueness can be re-checked from the database.

Determinism: task ``i`` depends only on the base database, the seed, the mix, ``i`` and
the tasks before it (which it must not duplicate), so the same arguments give the same
bytes and a smaller ``count`` gives a prefix of a larger one. Types are interleaved in a
fixed order that keeps every prefix as close to the mix as whole tasks allow. Ids are
``<domain>-<w|r|m>-<i:06d>`` (write-intensive, read-heavy, mixed).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from writ_async.conversation.task import (
    Action,
    Axes,
    EvaluationCriteria,
    Instructions,
    Provenance,
    Task,
    UserScenario,
)
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import Toolbox, ToolKind
from writ_async.errors import SynthesisError
from writ_async.seeds import synthesis_seed as _derive
from writ_async.synthesis.drafts import Call, Draft, GoldActionError, Shape, Synthesizer
from writ_async.synthesis.readheavy import (
    MIXED,
    READ_HEAVY,
    ReadHeavyStep,
    ReadHeavySynthesizer,
    ReadShape,
)
from writ_async.synthesis.wording import join_requests, manners

WRITE_INTENSIVE = "write_intensive"
TYPES = (WRITE_INTENSIVE, READ_HEAVY, MIXED)
ID_LETTERS = {WRITE_INTENSIVE: "w", READ_HEAVY: "r", MIXED: "m"}
LABELS = {WRITE_INTENSIVE: "Write-intensive", READ_HEAVY: "Read-heavy", MIXED: "Mixed"}
# A mix for a training set (``generate_tasks`` defaults to write-intensive only).
DEFAULT_MIX = {WRITE_INTENSIVE: 0.5, READ_HEAVY: 0.35, MIXED: 0.15}
EVIDENCE = (3, 20)  # reads of a read-heavy or mixed task
REWARD_BASIS = ("DB", "COMMUNICATE")
REFUSAL_SHARE = 0.1  # share of tasks made only of requests the policy refuses
MIXED_REFUSAL = 0.2  # chance that a write-intensive task also has one refused request
TWO_READ_HEAVY = 0.35  # chance that a mixed task of 3+ writes has two read-heavy requests
SHAPE_TRIES = 32  # attempts with the index's own shape before the shape is redrawn
MAX_TRIES = 400  # attempts per task before the database is declared too small


def generate_tasks(
    domain: Domain,
    base: BaseDB,
    count: int,
    seed: int,
    *,
    writes: tuple[int, int] = (2, 6),
    exclude: Iterable[Task] = (),
    refusal_share: float = REFUSAL_SHARE,
    mix: Mapping[str, float] | None = None,
    evidence: tuple[int, int] = EVIDENCE,
) -> list[Task]:
    """``count`` verified tasks for ``domain`` over ``base``.

    ``mix`` maps trajectory types (``write_intensive``, ``read_heavy``, ``mixed``) to
    shares or counts (only their ratios matter); None means write-intensive only. A
    write-intensive task has between ``writes[0]`` and ``writes[1]`` gold writes, except
    the share ``refusal_share`` made only of requests the policy refuses (no write,
    unchanged end state). A read-heavy task has one write and a burden (reads) within
    ``evidence``, drawn evenly among the burdens the database allows; a mixed task has
    at least two writes within ``writes`` and its reads within ``evidence``. No task's
    gold writes equal those of a task in ``exclude`` or of an earlier task of the batch
    (tasks without writes compare on all their gold actions).
    """
    low, high = writes
    if not 1 <= low <= high:
        raise ValueError(f"writes must be a range 1 <= low <= high, got {writes!r}")
    if not 1 <= evidence[0] <= evidence[1]:
        raise ValueError(f"evidence must be a range 1 <= low <= high, got {evidence!r}")
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    shares = _shares(mix)
    if shares[MIXED] and high < 2:
        raise ValueError(f"mixed tasks need at least 2 writes, but writes is {writes!r}")
    makers = _Synthesizers(domain, base, evidence)
    seen = {gold_key(task, domain.toolbox) for task in exclude}
    kinds = assign_types(shares, count)
    return [
        _one_task(domain, makers, base, seed, index, kind, writes, refusal_share, seen)
        for index, kind in enumerate(kinds)
    ]


def _shares(mix: Mapping[str, float] | None) -> dict[str, float]:
    if mix is None:
        return {WRITE_INTENSIVE: 1.0, READ_HEAVY: 0.0, MIXED: 0.0}
    unknown = sorted(set(mix) - set(TYPES))
    if unknown:
        raise ValueError(f"unknown trajectory types {unknown} (known: {', '.join(TYPES)})")
    shares = {kind: float(mix.get(kind, 0.0)) for kind in TYPES}
    if any(v < 0 for v in shares.values()) or not sum(shares.values()) > 0:
        raise ValueError(f"mix must have non-negative shares and a positive total, got "
                         f"{dict(mix)!r}")
    total = sum(shares.values())
    return {kind: v / total for kind, v in shares.items()}


def assign_types(shares: Mapping[str, float], count: int) -> list[str]:
    """The type of each task index: at every step the type furthest behind its share
    (ties in ``TYPES`` order), so each prefix matches the shares to within one task."""
    made = dict.fromkeys(TYPES, 0)
    out = []
    for i in range(count):
        kind = max(TYPES, key=lambda k: (shares.get(k, 0.0) * (i + 1) - made[k],
                                         -TYPES.index(k)))
        made[kind] += 1
        out.append(kind)
    return out


class _Synthesizers:
    """The domain's synthesizers for one base, prepared on first use."""

    def __init__(self, domain: Domain, base: BaseDB, evidence: tuple[int, int]) -> None:
        self.domain = domain
        self.name = domain.name
        self.base = base
        self.evidence = evidence
        self._write: Synthesizer | None = None
        self._read: ReadHeavySynthesizer | None = None
        self._burdens: list[int] | None = None

    def write_intensive(self) -> Synthesizer:
        if self._write is None:
            if self.domain.write_intensive is None:
                raise SynthesisError(f"{self.name}: the domain has no write-intensive "
                                     "task synthesizer")
            self._write = self.domain.write_intensive(self.base)
        return self._write

    def read_heavy(self) -> ReadHeavySynthesizer:
        if self._read is None:
            if self.domain.read_heavy is None:
                raise SynthesisError(f"{self.name}: the domain has no read-heavy task "
                                     "synthesizer; give a mix of write_intensive only")
            self._read = self.domain.read_heavy(self.base)
        return self._read

    def burdens(self) -> list[int]:
        if self._burdens is None:
            self._burdens = self.read_heavy().burdens(*self.evidence)
            if not self._burdens:
                raise SynthesisError(
                    f"{self.name}: the database allows no read-heavy task with "
                    f"{self.evidence[0]}..{self.evidence[1]} reads"
                )
        return self._burdens

    def of(self, kind: str) -> Synthesizer | ReadHeavySynthesizer:
        return self.write_intensive() if kind == WRITE_INTENSIVE else self.read_heavy()


def _shape(rng: random.Random, writes: tuple[int, int], refusal_share: float) -> Shape:
    if rng.random() < refusal_share:
        return Shape(writes=0, refusals=rng.choice((1, 1, 2)))
    return Shape(writes=rng.randint(*writes), refusals=int(rng.random() < MIXED_REFUSAL))


def _draw(kind: str, rng: random.Random, makers: _Synthesizers, writes: tuple[int, int],
          refusal_share: float) -> Shape | ReadShape:
    if kind == WRITE_INTENSIVE:
        return _shape(rng, writes, refusal_share)
    if kind == READ_HEAVY:
        return ReadShape(evidence=rng.choice(makers.burdens()))
    n = rng.randint(max(2, writes[0]), writes[1])
    heavy = 2 if n >= 3 and rng.random() < TWO_READ_HEAVY else 1
    return ReadShape(evidence=rng.randint(*makers.evidence), writes=n, read_heavy=heavy)


def _one_task(
    domain: Domain,
    makers: _Synthesizers,
    base: BaseDB,
    seed: int,
    index: int,
    kind: str,
    writes: tuple[int, int],
    refusal_share: float,
    seen: set[tuple[str, ...]],
) -> Task:
    task_id = f"{domain.name}-{ID_LETTERS[kind]}-{index:06d}"
    synthesizer = makers.of(kind)
    shape = _draw(kind, random.Random(_derive(seed, index, "shape")), makers, writes,
                  refusal_share)
    low, high = makers.evidence
    for attempt in range(MAX_TRIES):
        if attempt >= SHAPE_TRIES:  # this shape does not fit the database: redraw it
            shape = _draw(kind, random.Random(_derive(seed, index, "shape", attempt)), makers,
                          writes, refusal_share)
        task_seed = _derive(seed, index, attempt)
        rng = random.Random(task_seed)
        env = domain.environment(base)
        draft = synthesizer.draft(env, rng, shape)  # type: ignore[arg-type]
        if draft is None:
            continue
        task = _task(domain, base, task_id, draft, rng, synthesizer.generator, seed,
                     task_seed, env.db_hash(), kind)
        assert task.axes is not None
        if kind != WRITE_INTENSIVE and not low <= task.axes.evidence <= high:
            continue
        key = gold_key(task, domain.toolbox)
        if key in seen:
            continue
        seen.add(key)
        return task
    if kind == WRITE_INTENSIVE:
        asked = f"writes {writes[0]}..{writes[1]}"
    else:
        asked = f"{kind} tasks with {low}..{high} reads"
    raise SynthesisError(
        f"{domain.name}: no task {index} after {MAX_TRIES} attempts; the database is too "
        f"small for the requested {asked}"
    )


def _task(
    domain: Domain, base: BaseDB, task_id: str, draft: Draft, rng: random.Random,
    generator: str, seed: int, task_seed: int, reached_hash: str,
    kind: str = WRITE_INTENSIVE,
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
    decisions: list[dict[str, Any]] = []
    for step in draft.steps:
        add_reads(step.reads)
        if step.write is not None:
            if isinstance(step, ReadHeavyStep):
                write_id = f"{task_id}_{len(calls)}"
                decisions.extend({"write": write_id, **d} for d in step.decisions)
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
    label = "Refusal" if n_writes == 0 else LABELS[kind]
    purpose = (f"{label} task: {n_writes} writes after {len(read_plan)} reads. "
               + "; ".join(step.note for step in draft.steps) + ".")
    description: dict[str, Any] = {"purpose": purpose, "relevant_policies": None,
                                   "notes": None}
    if decisions:
        description["decisions"] = decisions

    task = Task(
        id=task_id,
        description=description,
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
        trajectory_type=kind,
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


def tasks_from_config(domain: Domain, base: BaseDB, count: int, run_seed: int,
                      synthesis: Any, extra_exclude: Iterable[Task] = ()) -> list[Task]:
    """``generate_tasks`` as the ``[synthesis]`` section configures it (mix, ranges,
    exclusion files, seed); used by `writ tasks generate` and by `writ simulate`."""
    from writ_async.conversation.task import load_tasks

    exclude = [t for path in synthesis.exclude for t in load_tasks(path)]
    exclude.extend(extra_exclude)
    seed = run_seed if synthesis.seed is None else synthesis.seed
    return generate_tasks(domain, base, count, seed, writes=tuple(synthesis.writes),
                          evidence=tuple(synthesis.evidence), exclude=exclude,
                          mix=dict(synthesis.mix))
