"""The scripted user: it opens with the scenario's reason for calling, reveals its facts
when asked, says yes when asked to confirm and ends the episode when the agent closes.

User behaviours (``writ_async.participants.behaviours``) change how it tells the same
task: ``ScriptedUser(..., behaviours=...)`` implements each of them (``_Telling``). Like
the agent it is a pure function of its side of the conversation, the task and the seed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from writ_async.conversation.messages import STOP, TRANSFER, AssistantMessage, Message, UserMessage
from writ_async.conversation.task import Task
from writ_async.environment.domain import Domain
from writ_async.participants import phrasebank as pb
from writ_async.participants.behaviours.catalogue import (
    CHANGES_PREFERENCE,
    COOPERATIVE,
    CORRECTABLE_ID_MISTAKE,
    FORBIDDEN_FIRST,
    IMPATIENT,
    ONE_FACT_WHEN_ASKED,
    OUT_OF_ORDER,
    VAGUE_THEN_NARROWS,
    VERBOSE,
    canonical,
)
from writ_async.participants.behaviours.content import (
    forbidden_request,
    id_mistake,
    mentions,
    preference,
    replace_value,
    vague_opener,
)
from writ_async.participants.behaviours.phrasing import fact_units, first_person, terse
from writ_async.participants.behaviours.user_phrases import FILLERS, HURRIES, PHRASINGS
from writ_async.participants.scripted.markers import intent_of

DEFAULT_MAX_USER_TURNS = 30


def user_view(messages: Sequence[Message]) -> list[AssistantMessage | UserMessage]:
    """What the user sees: the agent's text messages (not tool calls) and its own."""
    return [m for m in messages
            if isinstance(m, UserMessage)
            or (isinstance(m, AssistantMessage) and not m.is_tool_call and m.content)]


class ScriptedUser:
    """A user that tells its reason for calling, reveals its facts when asked, confirms
    with "yes", and ends the episode when the agent closes (or transfers).

    With ``behaviours`` (names from ``writ_async.participants.behaviours``) it tells the
    same task the way they say (``_Telling``); without, it tells the instructions as
    written, one block per question, as it always has.
    """

    __slots__ = ("_telling", "behaviours", "facts", "max_turns", "reason", "seed", "task")

    def __init__(self, task: Task, seed: int,
                 max_turns: int = DEFAULT_MAX_USER_TURNS, *,
                 behaviours: Sequence[str] = (), domain: Domain | None) -> None:
        self.task = task
        self.seed = seed
        self.max_turns = max_turns
        self.behaviours = canonical(behaviours)
        # The scenario is written to the simulated user ("You want to cancel ..."; "If
        # asked, say ..."): the user says its facts in the first person, the reason for
        # calling first and then, one per question, the known info and the instructions
        # that state facts, never the directions on how to play (fact_units).
        reason, known, extra = fact_units(task)
        self.reason = " ".join(first_person(unit) for unit in reason)
        self.facts = [" ".join(first_person(unit) for unit in part)
                      for part in (known, extra) if part]
        self._telling = (_Telling(task, seed, self.behaviours, domain) if self.behaviours
                         else None)

    def __repr__(self) -> str:
        told = f" behaviours={'+'.join(self.behaviours)}" if self.behaviours else ""
        return f"<ScriptedUser task={self.task.id} facts={len(self.facts)}{told}>"

    def reply(self, messages: Sequence[Message]) -> UserMessage:
        view = user_view(messages)
        own = sum(1 for m in view if isinstance(m, UserMessage))
        rng = random.Random(f"{self.seed}:user:{len(view)}")
        if own >= self.max_turns:
            return UserMessage(content=STOP)
        if self._telling is not None:
            return UserMessage(content=self._telling.reply(view, rng))
        if own == 0:
            return UserMessage(content=self.reason)
        last = view[-1].content if isinstance(view[-1], AssistantMessage) else ""
        intent = intent_of(last or "")
        if intent == "transfer":
            return UserMessage(content=TRANSFER)
        if intent == "closing":
            return UserMessage(content=STOP)
        if intent == "confirm":
            return UserMessage(content=_PLAIN_LINES.confirm.pick(rng, _own(view)))
        if intent == "ask":
            # Questions before the user first spoke (the greeting) asked for no fact.
            first = next(i for i, m in enumerate(view) if isinstance(m, UserMessage))
            asked = sum(1 for m in view[first:-1]
                        if isinstance(m, AssistantMessage) and intent_of(m.content or "") == "ask")
            if asked < len(self.facts):
                return UserMessage(content=self.facts[asked])
            return UserMessage(content=_PLAIN_LINES.exhausted.pick(rng, _own(view)))
        return UserMessage(content=_PLAIN_LINES.ack.pick(rng, _own(view)))


# The behaviour user's fixed phrases, by style (plain, impatient, verbose): the banks of
# behaviours.user_phrases.PHRASINGS, from which a user never says the same sentence twice.
_PLAIN, _TERSE, _CHATTY = "plain", IMPATIENT, VERBOSE


_PLAIN_LINES = PHRASINGS[_PLAIN]


def _own(view: Sequence[AssistantMessage | UserMessage]) -> list[str]:
    """What the user said so far: the lines its phrase banks must not repeat."""
    return [m.content for m in view if isinstance(m, UserMessage)]


_NOT_FOUND_CUE = re.compile(
    r"(could ?n[o']t|can ?n[o']t|unable to|not able to|did ?n[o']t) (find|locate)|not found|"
    r"no record|double[- ]check|does ?n[o']t match|invalid|incorrect", re.IGNORECASE)


_STOP_WORDS = frozenset((
    "can", "help", "with", "that", "could", "please", "give", "your", "and", "any",
    "details", "detail", "request", "the", "still", "need", "one", "more", "number", "for",
    "what", "have", "are", "this", "about", "would", "like", "may", "you", "our", "records",
    "find", "check", "double", "tell", "know", "also",
))


# The agent's question wording (phrase bank) names no fact: only what it asks for does.
_ASKING_WORDS = pb.asking_words()


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{3,}", text.lower()) if w not in _STOP_WORDS
            and w not in _ASKING_WORDS}


class _Telling:
    """How a behaviour user tells its task: which facts go in which message, and how
    they are worded. Like the rest of the user, a pure function of the user's view: a
    fact counts as told when its wording appears in one of the user's own messages.

    Facts (``behaviours.fact_units``) are told in chunks: the reason for calling, then the
    known info, then the factual task instructions, one chunk per question; all in the
    first message (cooperative), or sentence by sentence, the one the question is about
    (one fact when asked) or those that answer it (impatient). ``out_of_order`` shuffles
    the facts before they are chunked (never starting with the first one);
    ``vague_then_narrows`` opens with a vague line instead of the first chunk. Wording:
    first person throughout, terse when impatient, wrapped in filler when verbose. A
    mistyped identifier is corrected when the agent reports it (or at once, when nobody
    will look it up).
    """

    __slots__ = ("chunks", "cooperative", "forbidden", "lines", "mistake", "preference",
                 "single", "style", "told", "units", "vague")

    def __init__(self, task: Task, seed: int, behaviours: tuple[str, ...],
                 domain: Domain | None) -> None:
        chosen = set(behaviours)
        self.cooperative = COOPERATIVE in chosen
        self.style = (_TERSE if IMPATIENT in chosen else _CHATTY if VERBOSE in chosen
                      else _PLAIN)
        self.lines = PHRASINGS[self.style]
        # One fact at a time, or only what was asked for (impatient): facts are sentences.
        self.single = not self.cooperative and (ONE_FACT_WHEN_ASKED in chosen
                                                or self.style == _TERSE)
        reason, known, extra = fact_units(task, sentences=self.single)
        units = [*reason, *known, *extra]
        order = list(range(len(units)))
        if OUT_OF_ORDER in chosen and len(units) > 1:
            # Shuffled so that the user never starts with what it was meant to say first.
            random.Random(f"{seed}:behaviour:order").shuffle(order)
            if order[0] == 0:
                order[0], order[1] = order[1], order[0]
        self.units = [units[i] for i in order]
        everything = list(range(len(units)))
        if self.cooperative:
            self.chunks = [everything] if units else []
        elif self.single:
            self.chunks = [[i] for i in everything]
        else:
            self.chunks, start = [], 0
            for size in (len(reason), len(known), len(extra)):
                if size:
                    self.chunks.append(everything[start:start + size])
                start += size
        self.mistake = id_mistake(task, seed) if CORRECTABLE_ID_MISTAKE in chosen else None
        self.vague = vague_opener(domain, seed) if VAGUE_THEN_NARROWS in chosen else None
        self.forbidden = forbidden_request(domain, seed) if FORBIDDEN_FIRST in chosen else None
        self.preference = preference(seed) if CHANGES_PREFERENCE in chosen else None
        # Each fact's wording, without and with the mistyped identifier.
        self.told = [(self._word(u, typo=False), self._word(u, typo=True)) for u in self.units]

    def _word(self, unit: str, typo: bool) -> str:
        if typo and self.mistake is not None:
            unit = replace_value(unit, self.mistake.value, self.mistake.typo)
        text = first_person(unit)
        return terse(text) if self.style == _TERSE else text

    # -- the reply -------------------------------------------------------------------------

    def reply(self, view: Sequence[AssistantMessage | UserMessage], rng: random.Random) -> str:
        own = [m.content for m in view if isinstance(m, UserMessage)]
        last = view[-1].content if view and isinstance(view[-1], AssistantMessage) else ""
        last = last or ""
        opening = 1 if self.forbidden is not None else 0
        if len(own) < opening:
            return self._say([self.forbidden or ""], rng, own, opening=True)
        if len(own) == opening:
            parts = [self.lines.accept.pick(rng, own)] if opening else []
            parts += self._opening(own)
            if self.preference is not None:
                parts.append(self.preference[0])
            return self._say(parts, rng, own, opening=True)
        intent = intent_of(last)
        if intent == "transfer":
            return TRANSFER
        if intent == "closing":
            return STOP
        mistake = self.mistake
        if (mistake is not None and self._typo_pending(own)
                and (mentions(last, mistake.typo) or _NOT_FOUND_CUE.search(last))):
            parts = [self.lines.correct.pick(rng, own, value=mistake.value)]
        elif intent == "confirm":
            parts = [self.lines.confirm.pick(rng, own)]
        elif intent == "ask":
            parts = self._answer(last, own, rng)
        else:
            parts = [self.lines.ack.pick(rng, own)]
        if self.preference is not None and not any(self.preference[1] in m for m in own):
            parts.append(self.preference[1])
        return self._say(parts, rng, own)

    def _self_corrected(self, parts: list[str], rng: random.Random,
                        own: list[str]) -> list[str]:
        """``parts``, corrected at once when they mistype an identifier that nobody will
        look up (the agent would never find the typo out)."""
        m = self.mistake
        if m is not None and not m.looked_up and any(mentions(p, m.typo) for p in parts):
            return [*parts, self.lines.self_correct.pick(rng, [*own, *parts], value=m.value)]
        return parts

    def _opening(self, own: list[str]) -> list[str]:
        if self.vague is not None:
            return [self.vague]
        if not self.chunks:
            return []
        typo = self._typo_active(own)
        return [self.told[i][typo] for i in self.chunks[0]]

    def _answer(self, question: str, own: list[str], rng: random.Random) -> list[str]:
        typo = self._typo_active(own)
        untold = [i for i in range(len(self.units)) if not self._is_told(i, own)]
        if not untold:
            wanted = _words(question)
            best = max(range(len(self.units)), default=None,
                       key=lambda i: len(wanted & _words(self.units[i])))
            if best is not None and wanted & _words(self.units[best]):
                return [self.lines.repeat.pick(rng, own) + self.told[best][typo]]
            done = self.lines.all_given if self.cooperative else self.lines.exhausted
            return [done.pick(rng, own)]
        wanted = _words(question)
        scores = {i: len(wanted & _words(self.units[i])) for i in untold}
        top = max(scores.values())
        if self.single:
            # The fact asked about (the next one, failing that); an impatient user gives
            # every fact that answers the question, and only those.
            chosen = [next(i for i in untold if scores[i] == top)]
            if self.style == _TERSE and top > 0:
                chosen = [i for i in untold if scores[i] == top]
        else:
            chunk = next(c for c in self.chunks if any(i in untold for i in c))
            chosen = [i for i in chunk if i in untold]
        parts = [self.told[i][typo] for i in chosen]
        if self.vague is not None and len(untold) == len(self.units):
            parts[0] = self.lines.narrow.pick(rng, own) + parts[0]
        return parts

    def _is_told(self, index: int, own: list[str]) -> bool:
        plain, typo = self.told[index]
        return any(plain in m or typo in m for m in own)

    def _typo_active(self, own: list[str]) -> bool:
        """Whether the identifier is still said mistyped: until the user corrects it."""
        if self.mistake is None:
            return False
        value, typo = self.mistake.value, self.mistake.typo
        first = next((i for i, m in enumerate(own) if mentions(m, typo)), None)
        return first is None or not any(mentions(m, value) for m in own[first:])

    def _typo_pending(self, own: list[str]) -> bool:
        """Said mistyped and not corrected yet."""
        return (self.mistake is not None and any(mentions(m, self.mistake.typo) for m in own)
                and self._typo_active(own))

    def _say(self, parts: list[str], rng: random.Random, own: list[str],
             opening: bool = False) -> str:
        text = " ".join(p for p in self._self_corrected(parts, rng, own) if p)
        if self.style == _TERSE:
            # Always in a hurry when opening, now and then afterwards.
            if opening or rng.random() < 0.5:
                return f"{text} {HURRIES.pick(rng, [*own, text])}"
            return text
        if self.style == _CHATTY:
            # An aside before and after the opening; later, before, after or both.
            where = "both" if opening else rng.choice(("before", "after", "both"))
            if where != "after":
                text = f"{FILLERS.pick(rng, [*own, text])} {text}"
            if where != "before":
                text = f"{text} {FILLERS.pick(rng, [*own, text])}"
        return text
