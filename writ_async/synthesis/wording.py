"""Small wording helpers shared by the domains' task templates.

Every choice among phrasings goes through the task's seeded rng, so the same seed gives
the same words.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

_FIRST = ("", "", "First, ", "To start with, ", "Before anything else, ")
_MIDDLE = ("Then ", "After that, ", "Next, ", "Also, ", "On top of that, ", "Besides that, ")
_LAST = ("Finally, ", "Last, ", "And lastly, ", "One last thing: ")
_PAIR_SECOND = ("Then ", "After that, ", "Also, ", "Once that is done, ")

_ORDER = (
    "Bring up your requests one at a time, in the order above, and only move on once the "
    "current one is settled.",
    "Go through your requests in the order above, one after the other.",
    "Handle one request at a time, in the order described, before mentioning the next.",
)
_ORDER_ONE = ("",)
_CONFIRM = (
    "When the agent lists the details of a change and they match what you want, confirm "
    "with a clear yes.",
    "Say yes when the agent reads back exactly what you asked for.",
    "Confirm each change once the agent has described it correctly.",
)
_NOTHING_ELSE = (
    "You do not want anything else changed.",
    "Do not ask for anything beyond these requests.",
    "Apart from this, you have nothing else to sort out today.",
)


def pick(rng: random.Random, templates: Sequence[str], /, **fields: object) -> str:
    """One template, chosen by ``rng``, filled with ``fields``."""
    return rng.choice(templates).format(**fields)


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def full_stop(text: str) -> str:
    text = text.rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


def join_requests(rng: random.Random, asks: Sequence[str]) -> str:
    """The user's requests as connected sentences, in order (one paragraph each)."""
    asks = [full_stop(a) for a in asks]
    if len(asks) == 1:
        return capital(asks[0])
    out = []
    for i, ask in enumerate(asks):
        if i == 0:
            lead = rng.choice(_FIRST)
        elif len(asks) == 2:
            lead = rng.choice(_PAIR_SECOND)
        elif i == len(asks) - 1:
            lead = rng.choice(_LAST)
        else:
            lead = rng.choice(_MIDDLE)
        out.append(capital(lead + ask) if lead else capital(ask))
    return "\n\n".join(out)


def manners(rng: random.Random, n_requests: int, extra: Sequence[str] = ()) -> list[str]:
    """General behaviour lines for the user simulator."""
    lines = [rng.choice(_ORDER if n_requests > 1 else _ORDER_ONE), rng.choice(_CONFIRM)]
    lines.extend(extra)
    if rng.random() < 0.6:
        lines.append(rng.choice(_NOTHING_ELSE))
    return [line for line in lines if line]


def listing(words: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def long_date(date: str) -> str:
    """'2024-05-20' -> 'May 20' (the domains' calendar is May 2024)."""
    months = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
    _, month, day = date.split("-")
    return f"{months[int(month) - 1]} {int(day)}"
