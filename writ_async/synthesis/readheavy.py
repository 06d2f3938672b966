"""WRIT stage 1, the read-heavy axis: one write whose arguments only reads can fix.

A read-heavy request names its target by a criterion over a candidate set that the agent
sees only through read tools: the cheapest itinerary over several origins, dates and
connections; the reservation that flies to X on date Y among all of a user's bookings;
the order that contains a described item; the in-stock variant with given options. The
domains' synthesizers (``domains/<name>/readheavy.py``) build such requests on an
episode's overlay and **prove** them: every candidate is enumerated through the domain's
own read tools on the state at that point (their JSON output parsed, as an agent would
see it), the criterion is applied, and the request is dropped when two candidates tie
for the best or no candidate qualifies.

The **burden** of a task is the size of its minimal read plan: the identity and lookup
reads plus one read per candidate source that must be compared. Gold actions are that
plan's reads, then the write; the plan's action ids become ``Provenance.read_plan`` and
its size ``Axes.evidence``. A synthesizer reaches a target burden by widening the
candidate set (more origins, dates, a connection search, a user with more reservations
or orders). Mixed tasks carry several writes, some of them read-heavy.

Each read-heavy step records its ``decisions`` (what was asked, as plain JSON: criterion,
candidate space, user; one per choice its write rests on); the driver stores them in the
task's description so that anyone can re-check uniqueness against the database without
this code.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol, TypeVar

from writ_async.environment.instance import Environment
from writ_async.synthesis.drafts import Call, Draft, GoldActionError, Step
from writ_async.synthesis.wording import long_date

READ_HEAVY = "read_heavy"
MIXED = "mixed"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReadShape:
    """What the driver asks a read-heavy synthesizer for: a task of ``writes`` writes,
    ``read_heavy`` of them read-heavy, whose reads number ``evidence`` (exactly for a
    single read-heavy write; as close as the other requests allow for a mixed task)."""

    evidence: int
    writes: int = 1
    read_heavy: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.read_heavy <= self.writes:
            raise ValueError(f"read_heavy must be within 1..writes, got {self!r}")


@dataclass(slots=True)
class ReadHeavyStep(Step):
    """A request whose write is fixed by criteria over read evidence. ``decisions`` state
    each criterion and its candidate space as plain JSON (the driver adds the id of the
    write they decide)."""

    decisions: list[dict[str, Any]] = field(default_factory=list)


class ReadHeavySynthesizer(Protocol):
    """A domain's read-heavy (and mixed) task synthesizer, prepared once per base."""

    generator: str

    def burdens(self, low: int, high: int) -> list[int]:
        """The burdens within ``low..high`` that a single read-heavy write can have on
        this database (the driver draws targets among them)."""
        ...

    def draft(self, env: Environment, rng: random.Random, shape: ReadShape) -> Draft | None:
        """A task of ``shape`` carried out on ``env``; None if this attempt found nothing
        that fits or could not prove a unique answer (the driver draws again)."""
        ...


# -- reading through the tools -------------------------------------------------------------


def canonical(call: Call) -> str:
    return json.dumps(list(call), sort_keys=True, separators=(",", ":"))


def read_json(env: Environment, call: Call) -> Any:
    """Run a read tool on ``env`` and parse its output, as the agent would see it. A read
    in a gold plan must succeed: a failure is a synthesizer bug."""
    name, arguments = call
    result = env.call(name, arguments)
    if result.error:
        raise GoldActionError(f"gold read {name}({arguments!r}) failed: {result.output}")
    try:
        return json.loads(result.output)
    except json.JSONDecodeError:
        return result.output  # a plain string (a user id)


def unique_best(candidates: Iterable[T], key: Callable[[T], Any]) -> T | None:
    """The one candidate with the smallest key; None when there is none or two tie."""
    best: list[T] = []
    best_key: Any = None
    for candidate in candidates:
        k = key(candidate)
        if not best or k < best_key:
            best, best_key = [candidate], k
        elif k == best_key:
            best.append(candidate)
    return best[0] if len(best) == 1 else None


class ReadLedger:
    """The reads a draft's gold already has (the driver never repeats a read), so a step
    knows how many new reads it adds."""

    __slots__ = ("seen",)

    def __init__(self, calls: Iterable[Call] = ()) -> None:
        self.seen: set[str] = {canonical(c) for c in calls}

    def new(self, calls: Iterable[Call]) -> int:
        keys = {canonical(c) for c in calls}
        return len(keys - self.seen)

    def add(self, calls: Iterable[Call]) -> None:
        self.seen.update(canonical(c) for c in calls)

    def __len__(self) -> int:
        return len(self.seen)


def mixed_positions(rng: random.Random, shape: ReadShape) -> set[int]:
    """Which of a mixed task's requests are the read-heavy ones."""
    return set(rng.sample(range(shape.writes), shape.read_heavy))


def step_budget(shape: ReadShape, ledger: ReadLedger, index: int, heavy: set[int],
                per_other: float) -> int:
    """New reads for the read-heavy request at ``index`` of a mixed task: what is left of
    the target once the reads so far and an estimate for the other requests still to
    come are taken off, shared among the read-heavy requests still to come."""
    later_heavy = sum(1 for i in heavy if i >= index)
    later_other = sum(1 for i in range(index + 1, shape.writes) if i not in heavy)
    left = shape.evidence - len(ledger) - round(per_other * later_other)
    return max(1, left // max(1, later_heavy))


# -- wording -------------------------------------------------------------------------------


def date_words(rng: random.Random, dates: Sequence[str]) -> str:
    """'on May 20', 'on May 20 or May 22', 'any day from May 20 to May 23'."""
    days = [long_date(d) for d in dates]
    if len(days) == 1:
        return f"on {days[0]}"
    consecutive = all(int(b[-2:]) - int(a[-2:]) == 1 for a, b in pairwise(dates))
    if consecutive and len(days) > 2 and rng.random() < 0.8:
        return rng.choice((f"any day from {days[0]} to {days[-1]}",
                           f"on any date between {days[0]} and {days[-1]} (both included)"))
    return "on " + either(days)


def either(words: Sequence[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def mixed_steps(rng: random.Random, shape: Any, ledger: Any, per_other: int,
                heavy: Callable[[int], Step | None],
                valid: Callable[[], Step | None]) -> list[Step] | None:
    """The steps of a mixed task: read-heavy requests at positions drawn for ``shape``,
    write-intensive ones elsewhere, each read-heavy step given what is left of the read
    budget; None when some request cannot be made in the current state."""
    positions = mixed_positions(rng, shape)
    steps: list[Step] = []
    for i in range(shape.writes):
        step = (heavy(step_budget(shape, ledger, i, positions, per_other))
                if i in positions else valid())
        if step is None:
            return None
        ledger.add(step.reads)
        steps.append(step)
    return steps
