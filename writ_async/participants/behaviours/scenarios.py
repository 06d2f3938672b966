"""Scenarios: a task told with a set of behaviours, ``scenario_id(task_id, behaviours)``
(``"<task_id>@<name>+<name>"``; the bare task id when there are none). Which behaviours a
run uses is configured by weights (``BehaviourMix``); ``sample_behaviours`` draws one
composition from a seed and ``expand_scenarios`` gives each task its scenarios, both
deterministic functions of their arguments.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from writ_async.seeds import scenario_seed

if TYPE_CHECKING:
    pass
from writ_async.participants.behaviours.catalogue import (
    BEHAVIOURS,
    COOPERATIVE,
    NAMES,
    behaviour,
    canonical,
    compatible,
)


class BehaviourMix(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which behaviours a run uses, and how often.

    ``weights``: relative weight per behaviour name (missing or 0: never drawn).
    ``per_task``: scenarios per task (distinct compositions, as far as the mix allows).
    ``combine``: after each drawn behaviour, the probability of adding one more,
    compatible one (drawn by weight), up to ``max_size`` behaviours in all.
    """

    weights: dict[str, float] = msgspec.field(default_factory=lambda: {COOPERATIVE: 1.0})
    per_task: int = 1
    combine: float = 0.0
    max_size: int = 2

    def __post_init__(self) -> None:
        for name, weight in self.weights.items():
            behaviour(name)
            if not weight >= 0.0 or weight == float("inf"):
                raise ValueError(f"behaviour weight for {name!r} must be finite and >= 0, "
                                 f"got {weight}")
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("behaviour weights: at least one must be positive")
        if self.per_task < 1:
            raise ValueError(f"behaviours per task must be >= 1, got {self.per_task}")
        if not 0.0 <= self.combine <= 1.0:
            raise ValueError(f"behaviour combine must be within [0, 1], got {self.combine}")
        if self.max_size < 1:
            raise ValueError(f"behaviour max_size must be >= 1, got {self.max_size}")

    def drawable(self) -> list[tuple[str, float]]:
        """The behaviours with a positive weight, in catalogue order."""
        return [(n, self.weights[n]) for n in NAMES if self.weights.get(n, 0.0) > 0]


def sample_behaviours(seed: int, mix: BehaviourMix) -> tuple[str, ...]:
    """One composition drawn from ``mix``: a first behaviour by weight, then, each time
    with probability ``mix.combine``, one more compatible with all drawn so far (by
    weight), up to ``mix.max_size``. Canonical order; the same seed gives the same tuple."""
    rng = random.Random(f"behaviours:{seed}")
    pool = mix.drawable()
    chosen = [_weighted(rng, pool)]
    while len(chosen) < mix.max_size and mix.combine > 0 and rng.random() < mix.combine:
        fits = [(n, w) for n, w in pool if all(compatible(n, c) for c in chosen)]
        if not fits:
            break
        chosen.append(_weighted(rng, fits))
    return canonical(chosen)


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    total = sum(w for _, w in options)
    point = rng.random() * total
    for name, weight in options:
        point -= weight
        if point < 0:
            return name
    return options[-1][0]


SCENARIO_SEPARATOR = "@"


_JOIN = "+"


def scenario_id(task_id: str, behaviours: Iterable[str]) -> str:
    """The scenario's id: ``"<task_id>@<b1>+<b2>"`` in canonical order; the task id itself
    when there is no behaviour (the scripted user's original way of telling it)."""
    names = canonical(behaviours)
    return f"{task_id}{SCENARIO_SEPARATOR}{_JOIN.join(names)}" if names else task_id


def parse_scenario_id(value: str) -> tuple[str, tuple[str, ...]]:
    """``(task_id, behaviours)`` from a scenario id; an id without a valid behaviour
    suffix is a bare task id."""
    task_id, sep, tail = value.rpartition(SCENARIO_SEPARATOR)
    if not sep or not tail:
        return value, ()
    names = tail.split(_JOIN)
    if not all(n in BEHAVIOURS for n in names):
        return value, ()
    return task_id, canonical(names)


@dataclass(frozen=True, slots=True)
class Scenario:
    task_id: str
    behaviours: tuple[str, ...]

    @property
    def id(self) -> str:
        return scenario_id(self.task_id, self.behaviours)


def expand_scenarios(task_ids: Iterable[str], mix: BehaviourMix,
                     run_seed: int) -> list[Scenario]:
    """Each task's scenarios, task by task: ``mix.per_task`` distinct compositions (fewer
    when the mix cannot give that many different ones), in the order first drawn."""
    out: list[Scenario] = []
    for task_id in task_ids:
        seen: list[tuple[str, ...]] = []
        for index in range(mix.per_task * 8):
            drawn = sample_behaviours(scenario_seed(run_seed, task_id, index), mix)
            if drawn not in seen:
                seen.append(drawn)
                if len(seen) == mix.per_task:
                    break
        out.extend(Scenario(task_id, names) for names in seen)
    return out
