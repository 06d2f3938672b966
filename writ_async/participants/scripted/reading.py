"""What the scripted agent reads from its side of the conversation: the text said so far, a
value the user stated (and where in a tool result it lies), a yes, an identifier heard
with a character missing, the detours it has made, the requests a task forbids.

Pure functions of the messages and the task: the agent keeps no state between calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from writ_async.conversation.messages import AssistantMessage, Message, ToolMessage, UserMessage
from writ_async.conversation.task import Task
from writ_async.participants import phrasebank as pb
from writ_async.participants.behaviours.content import (
    instruction_text,
    looks_like_id,
    mentions,
    string_leaves,
)

_YES = re.compile(r"\byes\b", re.IGNORECASE)  # tau2's policies ask for an explicit "yes"


HEARD_SUFFIX = "_heard"  # a lookup made with a value as the user said it (maybe mistyped)


# What the report calls a value found under a key of a tool result.
_KEY_LABELS = {
    "price": "the price", "amount": "the amount", "balance": "the balance",
    "tracking_id": "the tracking number", "total": "the total",
    "exchange_price_difference": "the price difference", "status": "the status",
    "item_id": "the item id", "order_id": "the order number", "zip": "the zip code",
    "city": "the city", "state": "the state", "address1": "the street address",
    "address2": "the apartment or suite", "name": "the name", "brand": "the brand",
    "last_four": "the last four digits",
}


_MONEY_KEYS = frozenset(("price", "amount", "balance", "total", "exchange_price_difference"))


def said_text(messages: Sequence[Message]) -> str:
    """The agent's text so far, lower-cased (what its phrase choices avoid repeating)."""
    return "\n".join((m.content or "").lower() for m in messages
                     if isinstance(m, AssistantMessage) and m.content)


def first_name_ok(messages: Sequence[Message]) -> bool:
    """Whether the user may be called by their first name: yes unless their latest word on
    it asks otherwise ("keep it formal instead of using my first name", "don't call me by
    my first name"); a later "call me by my first name" makes it yes again."""
    ok = True
    for m in messages:
        text = (m.content or "").lower() if isinstance(m, UserMessage) else ""
        if "first name" in text or "formal" in text:
            asks_not = any(w in text for w in ("formal", "instead of", "don't", "do not",
                                                "rather not", "not by"))
            if asks_not:
                ok = False
            elif "call me" in text:  # not "my first name is ...", which only gives it
                ok = True
    return ok


def info_index(path: str) -> int:
    return int(path.removeprefix("communicate_info[").rstrip("]"))


def _norm(text: str) -> str:
    """Text as the COMMUNICATE check reads it: lower-cased, commas removed."""
    return text.lower().replace(",", "")


def states_value(text: str, value: str) -> bool:
    return _norm(value) in _norm(text)


def says_figure(text: str, value: str) -> bool:
    """Whether ``text`` states ``value`` as a figure of its own ("$85.36", not the "50" in
    "$506" or "HAT050")."""
    return re.search(rf"(?<![\w.]){re.escape(value)}(?!\w|\.\d)", text) is not None


def as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").removeprefix("$"))
    except ValueError:
        return None


def find_leaf(data: Any, value: str, number: float | None,
               owner: str = "") -> tuple[str, bool] | None:
    """The label of the first leaf of a tool result equal to ``value``: its key, and what
    it belongs to (a named item, a reservation or an order)."""
    if isinstance(data, dict):
        name = data.get("name") if isinstance(data.get("name"), str) else None
        here = next((data[k] for k in ("reservation_id", "order_id") if isinstance(
            data.get(k), str)), None)
        inner = f"the {name}" if name else (here or owner)
        for key, leaf in data.items():
            if isinstance(leaf, dict | list):
                found = find_leaf(leaf, value, number, inner)
                if found is not None:
                    return found
            elif _same_value(leaf, value, number):
                label = _KEY_LABELS.get(str(key), "the " + pb.words(key))
                where = inner if key != "name" else (here or owner)
                return (f"{label} for {where}" if where else label), key in _MONEY_KEYS
    elif isinstance(data, list):
        for leaf in data:
            found = find_leaf(leaf, value, number, owner)
            if found is not None:
                return found
    return None


def _same_value(leaf: Any, value: str, number: float | None) -> bool:
    if isinstance(leaf, bool):
        return False
    if isinstance(leaf, int | float):
        return number is not None and abs(leaf - number) < 0.005
    return isinstance(leaf, str) and leaf.lower() == value.lower()


def needed_values(task: Task) -> list[list[tuple[str, str]]]:
    """Per gold action, the (argument, value) pairs the user is meant to tell the agent:
    string values of its arguments stated in the reason for calling or the known info."""
    text = instruction_text(task)
    out = []
    for action in task.gold_actions:
        pairs: dict[tuple[str, str], None] = {}
        for key, value in action.arguments.items():
            for leaf in string_leaves(value):
                if len(leaf) >= 3 and mentions(text, leaf):
                    pairs[(key, leaf)] = None
        out.append(list(pairs))
    return out


def heard_in(said: str, value: str) -> bool:
    """Whether the user said ``value`` (an order number may come without its ``#``)."""
    return mentions(said, value) or (value.startswith("#") and mentions(said, value[1:]))


@dataclass(frozen=True, slots=True)
class _Refusal:
    """A request the gold plan turns down: what (a verb phrase) and why (a clause), and the
    identifiers whose record, once read, shows the agent the reason."""

    what: str
    why: str
    keys: tuple[str, ...]


# The judge checks of synthesized refusals read "Agent should not <what>: <why>."
_REFUSAL_CHECK = re.compile(r"Agent should not (?P<what>[^:]+): (?P<why>.+?)\.?$", re.S)


_THIRD_PERSON = (("the user is", "you are"), ("the user's", "your"), ("the user", "you"))


def refusals(task: Task) -> tuple[_Refusal, ...]:
    criteria = task.evaluation_criteria
    found = []
    for check in (criteria.nl_assertions or []) if criteria else []:
        m = _REFUSAL_CHECK.match(check)
        if m is None:
            continue
        why = m["why"]
        for third, second in _THIRD_PERSON:
            why = why.replace(third, second)
        # Reservation codes may hold no digit (OVWUEG): capitals count as an identifier.
        keys = tuple(t for t in _TOKEN.findall(m["what"])
                     if looks_like_id(t) or (len(t) >= 5 and t.isupper()))
        if keys:
            found.append(_Refusal(m["what"], why, keys))
    return tuple(found)


def is_detour(message: AssistantMessage) -> bool:
    if message.tool_calls:
        return any(c.id.endswith(HEARD_SUFFIX) for c in message.tool_calls)
    return (message.content or "").startswith(pb.DETOUR_LEADS)


def reasks_since_step(messages: Sequence[Message]) -> int:
    """The agent's re-asks since its last plan message."""
    count = 0
    for m in reversed(messages):
        if isinstance(m, AssistantMessage):
            if not is_detour(m):
                break
            count += (m.content or "").startswith(pb.REASK_LEADS)
    return count


_TOKEN = re.compile(r"[^\s,;:!?()\[\]\"']+")


def near_miss(value: str, text: str, tried: set[str]) -> str | None:
    """A token of ``text`` that is ``value`` with one character left out (a mistyped
    identifier), not tried before."""
    target = value.lower()
    for token in _TOKEN.findall(text):
        token = token.rstrip(".")
        if len(token) != len(value) - 1 or token in tried:
            continue
        lowered = token.lower()
        if any(target[:i] + target[i + 1:] == lowered for i in range(len(target))):
            return token
    return None


def heard_value(messages: Sequence[Message], call_id: str, gold: dict[str, Any]) -> str:
    """The value a heard lookup used in place of the gold one."""
    expected = set(string_leaves(gold))
    for m in reversed(messages):
        if isinstance(m, AssistantMessage) and m.tool_calls:
            for c in m.tool_calls:
                if c.id == call_id:
                    return next((v for v in string_leaves(c.arguments) if v not in expected),
                                "that")
    return "that"


def said_yes(messages: Sequence[Message]) -> bool:
    last = next((m for m in reversed(messages) if isinstance(m, UserMessage)), None)
    return last is not None and bool(_YES.search(last.content))


def _shape(value: str) -> re.Pattern[str]:
    """A pattern for strings that look like ``value``: same length, digits and capitals
    where it has them (mixed when it has capitals: ``XEHM4B``), same lowercase words and
    punctuation (``credit_card_`` stays)."""
    upper = any(ch.isupper() for ch in value)
    parts = []
    for ch in value:
        if ch.isdigit() or ch.isupper():
            parts.append("[A-Z0-9]" if upper else "[0-9]")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts))


def same_shape(value: str, messages: Sequence[Message]) -> list[str]:
    """Other strings shaped like ``value`` in the tool results so far, in order of first
    appearance: plausible wrong ids, drawn from what the agent has seen."""
    if not any(ch.isdigit() for ch in value):
        return []
    pattern = _shape(value)
    found: dict[str, None] = {}
    for m in messages:
        # Error results ("Error: ...") hold no ids; the flag itself is not consulted, as
        # a chat request does not carry it.
        if isinstance(m, ToolMessage):
            for text in _strings(m.content):
                if text != value and pattern.fullmatch(text):
                    found[text] = None
    return list(found)


def _strings(content: str) -> Iterator[str]:
    try:
        data = json.loads(content)
    except ValueError:  # plain-text results (a user id) are one string
        yield content
        return
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from (k for k in item if isinstance(k, str))
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str):
            yield item
