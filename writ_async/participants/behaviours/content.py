"""What a behaviour has the user say, shared by the scripted user and the LLM user's prompt:
the forbidden request and the vague opener (the domain's own, ``Domain.forbidden_requests``
and ``Domain.vague_openers``, or generic ones), the preference it changes, the identifier it
mistypes, and the block appended to an LLM user simulator's guidelines
(``with_behaviours``), naming the same for that episode's seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from writ_async.conversation.task import Instructions, Task

if TYPE_CHECKING:
    from writ_async.environment.domain import Domain
from writ_async.participants.behaviours.catalogue import BEHAVIOURS, canonical

# The forbidden request and vague openers of a domain that brings none of its own; a
# domain's own are its ``Domain.forbidden_requests`` (each with the reason the agent gives)
# and ``Domain.vague_openers``.
GENERIC_FORBIDDEN_REQUESTS: Mapping[str, str] = {
    "Could you look up another customer's account for me? It is for a friend.":
        "I can only work on the account of the person I'm speaking with",
}


GENERIC_VAGUE_OPENERS: tuple[str, ...] = ("Hi, I need some help, please.",)


def forbidden_requests(domain: Domain | None) -> Mapping[str, str]:
    """The forbidden requests a user of ``domain`` may make, each with its reason (the
    generic one for no domain, or a domain that has none)."""
    return (domain.forbidden_requests if domain is not None and domain.forbidden_requests
            else GENERIC_FORBIDDEN_REQUESTS)


def vague_openers(domain: Domain | None) -> tuple[str, ...]:
    """The vague first lines a user of ``domain`` may open with."""
    return domain.vague_openers if domain is not None and domain.vague_openers \
        else GENERIC_VAGUE_OPENERS


# Preferences that no tool can act on, then the change of mind.
PREFERENCES: tuple[tuple[str, str], ...] = (
    ("Please call me by my first name.",
     "Actually, on second thought, please keep it formal instead of using my first name."),
    ("I'd appreciate it if you kept your answers brief.",
     "Actually, feel free to give me more detail, I don't mind longer answers."),
    ("If anyone needs to follow up with me later, a text message suits me best.",
     "Actually, if anyone follows up later, a phone call would suit me better than a text."),
)


def _choose(seed: int, what: str, options: Sequence[Any]) -> Any:
    return random.Random(f"{seed}:behaviour:{what}").choice(options)


def forbidden_request(domain: Domain | None, seed: int) -> str:
    return _choose(seed, "forbidden", tuple(forbidden_requests(domain)))


def forbidden_reason(text: str, domain: Domain | None) -> str | None:
    """Why the forbidden request ``text`` makes is refused, or None when it makes none
    (the scripted agent's cue to refuse, as the markers are its cue to ask or confirm).
    A domain's agent also knows the generic request (a user of no known domain's)."""
    lowered = text.lower()
    known = {**forbidden_requests(domain), **GENERIC_FORBIDDEN_REQUESTS}
    return next((reason for line, reason in known.items() if line.lower() in lowered), None)


def is_forbidden_request(text: str, domain: Domain | None) -> bool:
    """Whether ``text`` makes one of ``domain``'s (or the generic) forbidden requests."""
    return forbidden_reason(text, domain) is not None


def preference(seed: int) -> tuple[str, str]:
    return _choose(seed, "preference", PREFERENCES)


def vague_opener(domain: Domain | None, seed: int) -> str:
    return _choose(seed, "vague", vague_openers(domain))


def instruction_text(task: Task) -> str:
    """The facts the user is given to tell: the reason for calling and the known info."""
    ins = task.user_scenario.instructions
    if isinstance(ins, Instructions):
        return f"{ins.reason_for_call}\n{ins.known_info or ''}"
    return ins


def _standalone(value: str) -> re.Pattern[str]:
    # Not inside a longer word or identifier: "silva12@x.com" is not in "a.silva12@x.com";
    # a full stop after it ends a sentence.
    return re.compile(rf"(?<![\w.@#/-]){re.escape(value)}(?![\w@#/-]|\.\w)", re.IGNORECASE)


def mentions(text: str, value: str) -> bool:
    """Whether ``text`` states ``value`` (case-insensitive, not inside a longer word or
    identifier)."""
    return _standalone(value).search(text) is not None


def replace_value(text: str, value: str, new: str) -> str:
    """``text`` with ``value`` replaced by ``new`` wherever it stands on its own."""
    return _standalone(value).sub(lambda _: new, text)


def string_leaves(value: Any) -> list[str]:
    """Every string inside an argument value (dicts and lists walked in order)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in string_leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in string_leaves(v)]
    return []


_READ_PREFIXES = ("get_", "find_", "search_", "list_")


def looks_like_id(value: str) -> bool:
    return len(value) >= 4 and any(ch.isdigit() for ch in value)


@dataclass(frozen=True, slots=True)
class IdMistake:
    """The identifier a ``correctable_id_mistake`` user mistypes, and how. ``looked_up``:
    the gold plan looks it up, so the agent will find the typo out (the user waits for
    that); otherwise the user corrects itself at once ("..., sorry, I mean ...")."""

    value: str
    typo: str
    looked_up: bool


_TOKEN = re.compile(r"[^\s,;:!?()\[\]\"']+")


def id_mistake(task: Task, seed: int) -> IdMistake | None:
    """The identifier the user gets wrong at first: preferably one it states (in its
    reason for calling or known info) whose first use in the gold actions is a lookup,
    so that the lookup fails and the agent reports it; failing that, any identifier it
    states. One digit is left out: a shorter value never matches another record of the
    same format. None when the user states no identifier."""
    text = instruction_text(task)
    looked_up: list[str] = []
    used: set[str] = set()
    for action in task.gold_actions:
        for value in string_leaves(action.arguments):
            if value in used:
                continue
            used.add(value)
            if (action.name.startswith(_READ_PREFIXES) and looks_like_id(value)
                    and mentions(text, value) and _typos(value)):
                looked_up.append(value)
    rng = random.Random(f"{seed}:behaviour:typo")
    if looked_up:
        value = rng.choice(looked_up)
        return IdMistake(value, rng.choice(_typos(value)), looked_up=True)
    stated = [t for t in dict.fromkeys(tok.rstrip(".") for tok in _TOKEN.findall(text))
              if _stated_id(t) and _typos(t)]
    if not stated:
        return None
    value = rng.choice(stated)
    return IdMistake(value, rng.choice(_typos(value)), looked_up=False)


def _typos(value: str) -> list[str]:
    """``value`` with one digit left out, each way that is not a part of ``value``
    (dropping a last digit would be): the user, and the agent, tell a typo from the
    value by containment."""
    typos = [value[:i] + value[i + 1:] for i, ch in enumerate(value) if ch.isdigit()]
    return [t for t in dict.fromkeys(typos) if t not in value]


def _stated_id(token: str) -> bool:
    """An identifier-like token of the instructions: digits mixed with letters, ``#``,
    ``@`` or ``_`` (ids, emails), or five digits or more (a zip code); not a price."""
    if len(token) < 4 or token.startswith("$") or not any(ch.isdigit() for ch in token):
        return False
    if token.isdigit():
        return len(token) >= 5
    return any(ch.isalpha() or ch in "#@_" for ch in token)


def user_prompt_block(behaviours: Iterable[str], task: Task, seed: int, *,
                      domain: Domain | None) -> str:
    """The instructions that make an LLM user simulator play ``behaviours`` for ``task``
    of ``domain`` (empty when there are none), with the same per-episode choices as the
    scripted user."""
    names = canonical(behaviours)
    if not names:
        return ""
    pref, change = preference(seed)
    mistake = id_mistake(task, seed)
    fields = {"forbidden": forbidden_request(domain, seed),
              "preference": pref, "change": change,
              "identifier": mistake.value if mistake else "an identifier",
              "typo": mistake.typo if mistake else "it with one digit left out"}
    lines = [f"- {BEHAVIOURS[n].prompt.format(**fields)}" for n in names]
    return ("<behaviour>\nHow to play this scenario (where these points differ from the "
            "guidelines above, follow these):\n" + "\n".join(lines) + "\n</behaviour>")


def with_behaviours(guidelines: str, behaviours: Iterable[str], task: Task, seed: int, *,
                    domain: Domain | None) -> str:
    """``guidelines`` followed by the behaviours' block: pass it as the ``guidelines`` of
    ``prompts.user_system_prompt``."""
    block = user_prompt_block(behaviours, task, seed, domain=domain)
    return f"{guidelines}\n\n{block}" if block else guidelines
