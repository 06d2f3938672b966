"""The scripted user's phrasing rules: instructions turned into the first person, made
terse, and cut into the facts it reveals one at a time.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from writ_async.conversation.task import Instructions, Task

if TYPE_CHECKING:
    pass


_PROTECT = re.compile(r"\S*[\d@_#]\S*")


_SLOT = re.compile(r"\x00(\d+)\x00")


_OBJECT_VERBS = (
    "tell", "tells", "told", "ask", "asks", "asked", "give", "gives", "gave", "offer",
    "offers", "offered", "to", "for", "with", "help", "helps", "let", "lets", "call",
    "send", "sends", "sent", "reach", "contact", "owe", "owes", "charge", "charges",
    "refund", "refunds", "remind", "reminds", "from", "than", "about", "confirms", "assure",
    "assured", "inform", "informs", "informed", "assist", "keeps", "keep", "kept", "stops",
    "stop", "stopped", "prevents", "prevent", "prevented", "forces", "forced",
)


_FIRST_PERSON: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bYou're\b"), "I'm"), (re.compile(r"\byou're\b"), "I'm"),
    (re.compile(r"\bYou are\b"), "I am"), (re.compile(r"\byou are\b"), "I am"),
    (re.compile(r"\b[Yy]ou were\b"), "I was"),
    (re.compile(r"\bYou'(d|ll|ve)\b"), r"I'\1"), (re.compile(r"\byou'(d|ll|ve)\b"), r"I'\1"),
    (re.compile(r"\bYourself\b"), "Myself"), (re.compile(r"\byourself\b"), "myself"),
    (re.compile(r"\bYours\b"), "Mine"), (re.compile(r"\byours\b"), "mine"),
    (re.compile(r"\bYour\b"), "My"), (re.compile(r"\byour\b"), "my"),
    (re.compile(rf"\b({'|'.join(_OBJECT_VERBS)}) you\b", re.IGNORECASE), r"\1 me"),
    (re.compile(r"\bYou\b"), "I"), (re.compile(r"\byou\b"), "I"),
)


def _protected(text: str, rewrite: Any) -> str:
    """``rewrite(text)`` with identifiers (tokens holding a digit, ``@``, ``_`` or ``#``)
    kept byte for byte."""
    kept: list[str] = []

    def hide(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    out = rewrite(_PROTECT.sub(hide, text))
    return _SLOT.sub(lambda m: kept[int(m.group(1))], out)


def first_person(text: str) -> str:
    """The scenario's second-person facts as the user says them ("Your user id is X" ->
    "My user id is X"); identifiers are never touched."""
    def rewrite(s: str) -> str:
        for pattern, repl in _FIRST_PERSON:
            s = pattern.sub(repl, s)
        return s

    return _protected(text, rewrite)


_TERSE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^I (?:would like|want|wish|need) to ", re.IGNORECASE), "Need to "),
    (re.compile(r"^I'd like to ", re.IGNORECASE), "Need to "),
    (re.compile(r"^My ([a-z][a-z ]{0,30}?) is "), r"\1: "),
    (re.compile(r"^I am (?=[A-Z])"), "This is "),
    (re.compile(r"\b(?:please|just|really|kindly|actually) ", re.IGNORECASE), ""),
)


def terse(text: str) -> str:
    """A first-person fact in as few words as it takes; identifiers are never touched."""
    def rewrite(s: str) -> str:
        for pattern, repl in _TERSE:
            s = pattern.sub(repl, s)
        return s[:1].upper() + s[1:]

    return _protected(text, rewrite)


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


_META_STARTS = (
    "if ", "when ", "whenever ", "say ", "ask ", "be ", "do ", "don't ", "make ", "go ",
    "bring ", "handle ", "confirm ", "apart ", "try ", "never ", "only ", "once ",
    "before ", "after ", "mention ", "insist ", "stay ", "keep ", "tell ", "accept ",
    "this is ", "you will ", "you are willing", "first, ", "then ", "repeat ", "refuse ",
)


def fact_units(task: Task, *, sentences: bool = False) -> tuple[list[str], list[str], list[str]]:
    """The facts a behaviour user tells, as the scenario words them: the reason for
    calling by paragraph, the known info by sentence, and the lines of the task
    instructions that state facts (not the ones that direct how to play the scenario).
    With ``sentences``, every fact is one sentence."""
    ins = task.user_scenario.instructions
    if not isinstance(ins, Instructions):
        reason, known, extra = _lines(ins), [], []
    else:
        reason = _lines(ins.reason_for_call)
        known = _sentences(_lines(ins.known_info or ""))
        extra = [fact for fact in map(_facts_only, _lines(ins.task_instructions)) if fact]
    if sentences:
        return _sentences(reason), known, _sentences(extra)
    return reason, known, extra


# A clause after ":" or ";" that starts so tells the user how to play, not what is true
# ("You do not know the order number: let the agent look through your orders").
_DIRECTIVE_STARTS = (*_META_STARTS, "let ", "describe ", "the agent ")
_CLAUSE = re.compile(r"\s*[:;]\s+")


def _facts_only(line: str) -> str:
    """The sentences of an instruction line that state facts, each cut before a clause
    that directs the play; "" when the line only directs."""
    kept = []
    for sentence in _SENTENCE.split(line):
        if sentence.lower().startswith(_META_STARTS):
            continue
        for separator in _CLAUSE.finditer(sentence):
            if sentence[separator.end():].lower().startswith(_DIRECTIVE_STARTS):
                head = sentence[:separator.start()].rstrip()
                sentence = head if head.endswith((".", "!", "?")) else head + "."
                break
        kept.append(sentence)
    return " ".join(kept)


def _sentences(lines: list[str]) -> list[str]:
    return [s.strip() for line in lines for s in _SENTENCE.split(line) if len(s.strip()) > 1]


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if len(line.strip()) > 1]
