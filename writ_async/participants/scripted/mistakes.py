"""The scripted agent's mistakes (``MistakeConfig``), decided once per episode from the seed.

The agent exposes the one it applied as ``agent.mistake`` so tests and filters know the
ground truth. A kind that cannot apply to a task (no read before a write, no write, ...)
falls back, for a drawn mistake, to the next allowed kind in ``MistakeKind`` order
(wrapping around), and to no mistake when none applies; a forced kind that cannot apply
gives no mistake, so that a test asking for one kind never silently gets another.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from writ_async.conversation.task import Action
from writ_async.environment.tools import ToolKind
from writ_async.participants.scripted.markers import FIXED_TEXT


class MistakeKind(StrEnum):
    SKIPPED_READ = "skipped_read"  # a gold read that precedes a write is left out
    WRONG_ARGUMENT = "wrong_argument"  # one argument of a gold write takes another value
    PREMATURE_WRITE = "premature_write"  # a write is made before the reads that precede it
    MISSING_CONFIRMATION = "missing_confirmation"  # a write without asking first
    HALLUCINATED_VALUE = "hallucinated_value"  # a reported value (or argument) made up


_KIND_NAMES = tuple(k.value for k in MistakeKind)


class MistakeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How often the scripted agent errs, and how.

    ``rate`` is the probability that an episode has one mistake, of a kind drawn from
    ``kinds`` (None: every kind); ``forced`` applies that kind to every episode (where it
    can apply). Kinds may be given as their names (configuration files do).
    """

    rate: float = 0.0
    kinds: tuple[MistakeKind, ...] | None = None
    forced: MistakeKind | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"mistake rate must be within [0, 1], got {self.rate}")
        names = [*(self.kinds or ()), *([self.forced] if self.forced is not None else [])]
        unknown = [k for k in names if k not in _KIND_NAMES]
        if unknown:
            raise ValueError(f"unknown mistake kind(s) {unknown}; known: {', '.join(_KIND_NAMES)}")
        if self.kinds is not None and not self.kinds:
            raise ValueError("mistake kinds must not be empty (leave unset for all kinds)")

    def allowed(self) -> list[MistakeKind]:
        """The kinds that may be drawn, in ``MistakeKind`` order."""
        wanted = set(self.kinds) if self.kinds is not None else set(_KIND_NAMES)
        return [k for k in MistakeKind if k in wanted]


NO_MISTAKES = MistakeConfig()


class AppliedMistake(msgspec.Struct, frozen=True, kw_only=True):
    """The mistake an episode's agent makes: which kind, on which gold action (index into
    ``task.gold_actions``) and where inside it (``path``: an argument path such as
    ``item_ids[0]``, or ``communicate_info[1]``)."""

    kind: MistakeKind
    action: int | None = None
    path: str = ""
    detail: str = ""


ArgPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class _ArgumentChange:
    """A write argument the agent gets wrong. The replacement is chosen when the message
    is written: a value of the same shape seen in earlier tool results (a plausible id),
    else a perturbed copy; ``invent`` skips the search (a made-up value)."""

    action: int
    path: ArgPath
    invent: bool
    pick: float  # where in the candidate list, drawn once from the seed


Decision = tuple[AppliedMistake, _ArgumentChange | None]


def decide(actions: list[Action], kinds: list[ToolKind], reported: list[str], seed: int,
            config: MistakeConfig, fixed: tuple[str, ...] = ()) -> Decision | None:
    """The mistake the agent makes, if any; ``fixed``: the domain's own fixed phrases,
    which a hallucinated value must not be found in either (``reportable_values``)."""
    rng = random.Random(f"{seed}:mistake")
    if config.forced is not None:
        return _apply(actions, kinds, reported, MistakeKind(config.forced), rng, fixed)
    if config.rate <= 0.0 or rng.random() >= config.rate:
        return None
    allowed = config.allowed()
    start = rng.randrange(len(allowed))
    for kind in allowed[start:] + allowed[:start]:
        decided = _apply(actions, kinds, reported, kind, rng, fixed)
        if decided is not None:
            return decided
    return None


def _writes(kinds: list[ToolKind]) -> list[int]:
    return [i for i, k in enumerate(kinds) if k is ToolKind.WRITE]


def _apply(actions: list[Action], kinds: list[ToolKind], reported: list[str],
           kind: MistakeKind, rng: random.Random,
           fixed: tuple[str, ...] = ()) -> Decision | None:
    """The mistake of ``kind`` placed by ``rng``, or None when it cannot apply."""
    writes = _writes(kinds)
    if kind is MistakeKind.SKIPPED_READ:
        reads = [i for i in range(len(actions)) if _skippable(actions, kinds, writes, i)]
        if not reads:
            return None
        i = rng.choice(reads)
        return AppliedMistake(kind=kind, action=i, detail=f"skipped {actions[i].name}"), None
    if kind is MistakeKind.PREMATURE_WRITE:
        eligible = [w for w in writes if _reads_before(actions, kinds, w)]
        if not eligible:
            return None
        w = rng.choice(eligible)
        moved = len(_reads_before(actions, kinds, w))
        return AppliedMistake(kind=kind, action=w, detail=f"{actions[w].name} before its "
                                                          f"{moved} preceding call(s)"), None
    if kind is MistakeKind.MISSING_CONFIRMATION:
        if not writes:
            return None
        w = rng.choice(writes)
        return AppliedMistake(kind=kind, action=w, detail=f"{actions[w].name} unconfirmed"), None
    if kind is MistakeKind.HALLUCINATED_VALUE:
        reportable = reportable_values(reported, [actions[w].arguments for w in writes], fixed)
        if reportable:
            c = rng.choice(reportable)
            return AppliedMistake(kind=kind, path=f"communicate_info[{c}]",
                                  detail=f"reports a wrong value for {reported[c]!r}"), None
        return _change_argument(actions, writes, kind, rng, invent=True)
    return _change_argument(actions, writes, kind, rng, invent=False)


def _reads_before(actions: list[Action], kinds: list[ToolKind], write: int) -> list[int]:
    """The calls between the previous write (or the start) and ``write``, if any of them
    is a first read."""
    start = max((w for w in _writes(kinds) if w < write), default=-1) + 1
    window = list(range(start, write))
    return window if any(_first_read(actions, kinds, i) for i in window) else []


def _skippable(actions: list[Action], kinds: list[ToolKind], writes: list[int],
               i: int) -> bool:
    """A read that the next write depends on and that no other call repeats before it:
    without it the agent writes without having seen what it shows."""
    if kinds[i] is not ToolKind.READ:
        return False
    following = next((w for w in writes if w > i), None)
    if following is None:
        return False
    a = actions[i]
    return not any(b.name == a.name and b.arguments == a.arguments
                   for j, b in enumerate(actions[:following]) if j != i)


def _first_read(actions: list[Action], kinds: list[ToolKind], i: int) -> bool:
    """A read whose call (name and arguments) the plan has not made before: omitting or
    delaying a repeated read withholds nothing from the agent, so it is no mistake."""
    if kinds[i] is not ToolKind.READ:
        return False
    a = actions[i]
    return not any(b.name == a.name and b.arguments == a.arguments for b in actions[:i])


def write_first(actions: list[Action], kinds: list[ToolKind], write: int) -> list[int]:
    """The call order with ``write`` moved before the calls that precede it."""
    window = _reads_before(actions, kinds, write)
    count = len(actions)
    return [*range(window[0]), write, *window, *range(write + 1, count)]


def reportable_values(values: list[str], write_args: list[dict[str, Any]],
                fixed_extra: tuple[str, ...] = ()) -> list[int]:
    """Communicate strings whose absence the COMMUNICATE check would notice: not inside
    another required string, a write's arguments (shown in confirmations) or the agent's
    fixed phrases. Strings with digits are preferred: they are the facts that matter."""
    def norm(text: str) -> str:
        return text.lower().replace(",", "")

    fixed = norm(" ".join((*FIXED_TEXT, *fixed_extra, json.dumps(write_args))))
    ok = []
    for i, value in enumerate(values):
        v = norm(value)
        others = [norm(o) for j, o in enumerate(values) if j != i]
        if v and v not in fixed and not any(v in o for o in others):
            ok.append(i)
    with_digits = [i for i in ok if any(ch.isdigit() for ch in values[i])]
    return with_digits or ok


def _change_argument(actions: list[Action], writes: list[int], kind: MistakeKind,
                     rng: random.Random, invent: bool) -> Decision | None:
    options = [(w, path) for w in writes for path in _leaves(actions[w].arguments)]
    if not options:
        return None
    # Identifiers (strings with digits) are what a careless agent gets wrong.
    ids = [(w, p) for w, p in options
           if isinstance(v := get_path(actions[w].arguments, p), str)
           and any(ch.isdigit() for ch in v)]
    w, path = rng.choice(ids or options)
    where = _path_text(path)
    what = "a made-up" if invent else "another"
    applied = AppliedMistake(kind=kind, action=w, path=where,
                             detail=f"{actions[w].name}: {what} value for {where}")
    return applied, _ArgumentChange(w, path, invent, rng.random())


def _leaves(value: Any, path: ArgPath = ()) -> Iterator[ArgPath]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _leaves(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _leaves(sub, (*path, i))
    elif isinstance(value, str | int | float) and path:
        yield path


def get_path(value: Any, path: ArgPath) -> Any:
    for key in path:
        value = value[key]
    return value


def set_path(value: Any, path: ArgPath, new: Any) -> None:
    get_path(value, path[:-1])[path[-1]] = new


def _path_text(path: ArgPath) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text
