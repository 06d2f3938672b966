"""What a domain's task synthesizer hands to the driver: a user and their requests.

A synthesizer simulates the requests one after another on an episode's overlay, so each
is valid (or, for a refusal, invalid) under the tools and the policy at the point it
happens. It records, per request, the reads an agent needs before deciding, the write
with its exact arguments (``None`` when the policy says the request must be refused), the
sentence the user says, and what the agent must tell the user. The driver
(``writ_async.synthesis.driver``) turns a ``Draft`` into a verified tau2-format ``Task``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from writ_async.environment.instance import Environment
from writ_async.errors import GoldActionError

Call = tuple[str, dict[str, Any]]  # a tool name and its exact arguments


@dataclass(frozen=True, slots=True)
class Shape:
    """What the driver asks for: this many valid writes and this many refused requests."""

    writes: int
    refusals: int = 0


@dataclass(slots=True)
class Step:
    """One request of the user, as the synthesizer carried it out.

    ``ask`` is the request as the user states it, a clause starting with a lowercase
    "you" ("you want to cancel ..."); the driver joins the clauses into the reason for
    the call. ``instructions`` are behaviour hints for the user simulator, ``communicate``
    the exact strings the agent must say (tau2's communicate_info), ``assertions`` what a
    judge checks (tau2's nl_assertions), ``note`` a terse summary for the description.
    """

    kind: str
    reads: list[Call]
    write: Call | None
    ask: str
    instructions: list[str] = field(default_factory=list)
    communicate: list[str] = field(default_factory=list)
    assertions: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def refused(self) -> bool:
        return self.write is None


@dataclass(slots=True)
class Draft:
    """A user with requests in sequence; ``identity`` are the reads that find the user."""

    known_info: str
    identity: list[Call]
    steps: list[Step]
    unknown_info: str | None = None
    opening: str = ""
    manners: list[str] = field(default_factory=list)  # general behaviour lines


def execute(env: Environment, call: Call) -> str:
    """Run one gold action on ``env``; its output. A failing action is a synthesizer bug."""
    name, arguments = call
    result = env.call(name, arguments)
    if result.error:
        raise GoldActionError(f"gold action {name}({arguments!r}) failed: {result.output}")
    return result.output


class Synthesizer(Protocol):
    """A domain's task synthesizer, prepared once per base database."""

    generator: str

    def draft(self, env: Environment, rng: random.Random, shape: Shape) -> Draft | None:
        """Requests of ``shape`` for one user, carried out on ``env``; None if this
        attempt found no user or request that fits (the driver draws again)."""
        ...


REPEAT_DAMPING = 0.3  # each earlier use of a request kind in a task divides its weight so


def choose_step(rng: random.Random, uses: dict[str, int], weights: dict[str, float],
                builders: dict[str, Callable[[], Step | None]]) -> Step | None:
    """A step of a kind drawn by weight (damped by earlier uses in this task); kinds whose
    builder finds nothing valid in the current state are dropped and another is drawn."""
    kinds = list(weights)
    while kinds:
        w = [weights[k] * REPEAT_DAMPING ** uses.get(k, 0) for k in kinds]
        kind = rng.choices(kinds, w)[0]
        step = builders[kind]()
        if step is not None:
            uses[kind] = uses.get(kind, 0) + 1
            return step
        kinds.remove(kind)
    return None
