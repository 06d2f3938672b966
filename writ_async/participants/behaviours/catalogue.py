"""The catalogue of user behaviours: their names, what each does, which exclude each other
(``Behaviour.excludes``), and a composition in its one canonical order (``canonical``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


COOPERATIVE = "cooperative"


ONE_FACT_WHEN_ASKED = "one_fact_when_asked"


VAGUE_THEN_NARROWS = "vague_then_narrows"


OUT_OF_ORDER = "out_of_order"


IMPATIENT = "impatient"


VERBOSE = "verbose"


CORRECTABLE_ID_MISTAKE = "correctable_id_mistake"


FORBIDDEN_FIRST = "forbidden_first"


CHANGES_PREFERENCE = "changes_preference"


@dataclass(frozen=True, slots=True)
class Behaviour:
    """One named way of telling a task.

    ``excludes`` names the behaviours it cannot be combined with (the relation is
    symmetric: ``compatible`` checks both sides); ``composable`` False would make it a
    behaviour that only ever appears alone. ``prompt`` is the instruction given to an LLM
    user simulator; ``{forbidden}``, ``{preference}``, ``{change}``, ``{identifier}`` and
    ``{typo}`` are filled per episode by ``user_prompt_block``.
    """

    name: str
    summary: str
    prompt: str
    excludes: frozenset[str] = frozenset()
    composable: bool = True


CATALOGUE: tuple[Behaviour, ...] = (
    Behaviour(
        COOPERATIVE, "fully specified and cooperative: everything in the first message",
        "Give everything the scenario tells you in your first message: what you want, "
        "every identifier and detail you know, all of it at once. Answer any later question "
        "directly and completely.",
        excludes=frozenset({ONE_FACT_WHEN_ASKED, VAGUE_THEN_NARROWS})),
    Behaviour(
        ONE_FACT_WHEN_ASKED, "reveals one fact at a time, only when asked",
        "Start with the main thing you want, in one sentence, and nothing else. After that, "
        "give exactly one piece of information per message, and only the piece the agent "
        "asks for; never volunteer anything the agent has not asked about.",
        excludes=frozenset({COOPERATIVE})),
    Behaviour(
        VAGUE_THEN_NARROWS, "starts vague and narrows when asked",
        "Open with a vague description of your problem (for example that you need help "
        "with your bookings or orders) without any identifier or specific request. When "
        "the agent asks, become more specific step by step: first what you want, then the "
        "identifiers and details.",
        excludes=frozenset({COOPERATIVE})),
    Behaviour(
        OUT_OF_ORDER, "gives facts out of order",
        "Give the facts of your scenario in a jumbled order: for example your identifiers "
        "before your request, or a later request before an earlier one's details. Keep "
        "every fact exactly right; only the order changes."),
    Behaviour(
        IMPATIENT, "impatient and terse",
        "You are in a hurry. Write very short messages, a few words each; answer questions "
        "with just the value asked for; confirm with a bare yes. You may say you are in a "
        "hurry, but stay polite enough and never skip a fact the agent needs.",
        excludes=frozenset({VERBOSE})),
    Behaviour(
        VERBOSE, "verbose, with irrelevant detail",
        "You are chatty. Wrap your answers in irrelevant personal detail (your week, the "
        "weather, your pets, the app you tried earlier), while still giving every fact the "
        "agent asks for, exactly.",
        excludes=frozenset({IMPATIENT})),
    Behaviour(
        CORRECTABLE_ID_MISTAKE, "makes a correctable mistake in an identifier",
        "The first time you give {identifier}, get it slightly wrong: say {typo}. When the "
        "agent says it cannot find it or asks you to check it, apologise and give the "
        "correct value, {identifier}. Never repeat the wrong value after that."),
    Behaviour(
        FORBIDDEN_FIRST, "asks first for something the policy forbids",
        "Before your real request, ask for this: \"{forbidden}\" When the agent says it "
        "cannot do that, accept it without arguing and go on with your real request. Do "
        "not bring it up again."),
    Behaviour(
        CHANGES_PREFERENCE, "changes an unimportant preference mid-way",
        "Early in the conversation mention this preference: \"{preference}\" A little later, "
        "change your mind about it: \"{change}\" It does not change anything you want done."),
)


BEHAVIOURS: Mapping[str, Behaviour] = {b.name: b for b in CATALOGUE}


NAMES: tuple[str, ...] = tuple(BEHAVIOURS)


_ORDER = {name: i for i, name in enumerate(NAMES)}


def compatible(a: str, b: str) -> bool:
    """Whether behaviours ``a`` and ``b`` may be combined (a behaviour never with itself)."""
    one, two = behaviour(a), behaviour(b)
    return (a != b and one.composable and two.composable
            and b not in one.excludes and a not in two.excludes)


def canonical(behaviours: Iterable[str]) -> tuple[str, ...]:
    """``behaviours`` validated, deduplicated and in catalogue order (the form recorded
    and used in scenario ids); a ValueError names an unknown or incompatible one."""
    names = sorted(set(behaviours), key=lambda n: _ORDER.get(n, -1))
    for name in names:
        behaviour(name)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not compatible(a, b):
                raise ValueError(f"behaviours {a!r} and {b!r} cannot be combined")
    return tuple(names)


def behaviour(name: str) -> Behaviour:
    try:
        return BEHAVIOURS[name]
    except KeyError:
        raise ValueError(f"unknown behaviour {name!r}; known: {', '.join(NAMES)}") from None
