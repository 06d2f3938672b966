"""Scripted participants: the embedded default that runs the pipeline with no model.

``ScriptedAgent`` carries out a task's gold plan as a conversation: it asks for what it
must know, performs the gold reads one call per message, asks an explicit confirmation
before each write, writes after the user's yes, reports every ``communicate_info``
string verbatim and lets the user end. ``ScriptedUser`` opens with the scenario's
reason for calling, reveals its facts when asked, says yes when asked to confirm and
ends the episode when the agent closes.

Both are pure functions of what their side of the conversation shows (plus the task,
its ``Domain``: tool kinds, phrases, forbidden requests, identity lookups; and the
seed). That is what lets the mock server answer for them (``models/scripted_policy.py``):
rebuilt from an HTTP request's history they give the same reply as in-process. So they
keep no state between calls: the agent finds its place in the plan by counting its own
messages since the user first spoke, and every random choice is drawn from
``random.Random(f"{seed}:...")`` keyed on the seed and on the history length, or made
once from the seed when the plan is built.

The marker sentences (``ASK_MARKER``, ``CONFIRM_LINE``, ``CLOSING_LINE``,
``TRANSFER_LINE``) are shared so the user recognises the agent's intent from its text
alone; the user also recognises the looser phrasing an LLM agent would use.

User behaviours (``writ_async.participants.behaviours``) change how the user tells the same task:
``ScriptedUser(..., behaviours=...)`` implements each of them (``_Telling``). The agent
is not told the behaviour; it copes from what it sees, with detours outside its plan:
it refuses a forbidden request (one of the catalogue's), asks again for a value the user
was meant to give before the call that needs it (the values of the gold arguments that
the user's reason for calling or known info state), and tries a lookup with an
identifier the user said with a character missing, then reports it not found. Detours
open with their own leads (heard lookups carry ``HEARD_SUFFIX`` in their call id), so the
agent still finds its place in the plan by counting; with the behaviour-less user none
ever happens and the conversation is the plan's, message for message.

Mistakes (``MistakeConfig``) are decided once per episode from the seed; the agent
exposes the one it applied as ``agent.mistake`` so tests and filters know the ground
truth. A kind that cannot apply to a task (no read before a write, no write, ...) falls
back, for a drawn mistake, to the next allowed kind in ``MistakeKind`` order (wrapping
around), and to no mistake when none applies; a forced kind that cannot apply gives no
mistake, so that a test asking for one kind never silently gets another.
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec

from writ_async.conversation.episode import DEFAULT_GREETING, Episode, Limits
from writ_async.conversation.messages import (
    STOP,
    TRANSFER,
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.task import Action, Instructions, Task
from writ_async.engine.drive import drive, finish_now, on
from writ_async.environment.domain import Domain
from writ_async.environment.overlay import BaseDB
from writ_async.environment.tools import Toolbox, ToolKind
from writ_async.participants import phrasebank as pb
from writ_async.participants.behaviours import (
    CHANGES_PREFERENCE,
    COOPERATIVE,
    CORRECTABLE_ID_MISTAKE,
    FILLERS,
    FORBIDDEN_FIRST,
    HURRIES,
    IMPATIENT,
    ONE_FACT_WHEN_ASKED,
    OUT_OF_ORDER,
    PHRASINGS,
    VAGUE_THEN_NARROWS,
    VERBOSE,
    canonical,
    fact_units,
    first_person,
    forbidden_reason,
    forbidden_request,
    id_mistake,
    instruction_text,
    looks_like_id,
    mentions,
    preference,
    replace_value,
    string_leaves,
    terse,
    vague_opener,
)
from writ_async.participants.llm import InProcess

# -- the shared markers --------------------------------------------------------------------

# Canonical wording, kept for LLM agents and older transcripts; the scripted agent's own
# wording is composed from the phrase bank (``writ_async.participants.phrasebank``) and
# recognised by ``is_confirmation`` / ``is_closing`` / ``_intent``.
ASK_MARKER = "Could you please give me"
CONFIRM_LINE = "Do you confirm (yes/no)?"
CLOSING_LINE = "Is there anything else I can help you with?"
# tau2-bench's policies (airline, retail) prescribe this exact line after the tool call.
TRANSFER_LINE = "YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON."
TRANSFER_TOOL = "transfer_to_human_agents"
DEFAULT_MAX_USER_TURNS = 30

_YES = re.compile(r"\byes\b", re.IGNORECASE)  # tau2's policies ask for an explicit "yes"

# What the agent asks for when the user's identity lookup (``Domain.identity_lookups``:
# the lookups whose arguments identify the user, asked for first) names nothing else.
_IDENTITY_DEFAULT = "your user id"
HEARD_SUFFIX = "_heard"  # a lookup made with a value as the user said it (maybe mistyped)
REASK_LIMIT = 6  # re-asks for a missing value before the agent goes on without it
# What the agent calls an argument when it asks for it.
_ASK_FOR = {
    "user_id": "your user id", "reservation_id": "the reservation number",
    "order_id": "the order number", "email": "the email address on your account",
    "first_name": "your first and last name", "last_name": "your first and last name",
    "zip": "your zip code", "flight_number": "the flight number",
    "payment_id": "the payment method", "payment_method_id": "the payment method",
    "address1": "the address", "address2": "the address", "city": "the address",
    "state": "the address", "country": "the address", "passengers": "the passenger details",
    "origin": "the airports", "destination": "the airports", "cabin": "the cabin",
}
# Every fixed string the agent may say, so that a hallucinated value is only ever chosen
# among communicate strings that no fixed phrase happens to contain (``_reportable``).
# The domain's identity asks are added per agent (``_reportable``).
_FIXED_TEXT = (*pb.fixed_wording(), _IDENTITY_DEFAULT, *_ASK_FOR.values(), ASK_MARKER,
               CONFIRM_LINE, CLOSING_LINE, TRANSFER_LINE, DEFAULT_GREETING)
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


# -- mistakes ------------------------------------------------------------------------------


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


# -- the plan ------------------------------------------------------------------------------


class StepKind(StrEnum):
    ASK = "ask"
    CALL = "call"
    CONFIRM = "confirm"
    REPORT = "report"


@dataclass(frozen=True, slots=True)
class Step:
    """One assistant message of the plan. ``action`` indexes ``task.gold_actions``;
    ``confirmed`` marks a write whose confirmation step comes just before it."""

    kind: StepKind
    action: int = -1
    confirmed: bool = False


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


class ScriptedAgent:
    """An agent that performs ``task``'s gold plan, with at most one seeded mistake.

    ``reply`` is pure: the same ``messages`` give the same message, in-process or when
    rebuilt from a chat request. Tool calls carry ids ``call_{turn}_{i}`` where ``turn``
    is the message's index in the conversation.

    Its wording comes from the phrase bank, composed afresh for each message from an rng
    keyed on the seed and the history length; what it says about the domain's tools
    (``phrases``: by default ``domain.phrases``) is read from the arguments and the tool
    results in the history. The tool kinds, the forbidden requests it refuses and the
    lookups that identify the user are the domain's too.
    """

    __slots__ = ("_change", "_domain", "_kind_of", "_kinds", "_needed", "_phrases",
                 "_refusals", "_reported", "actions", "mistake", "plan", "seed", "task",
                 "transfers")

    def __init__(self, task: Task, domain: Domain, seed: int,
                 mistakes: MistakeConfig | None = None, *,
                 phrases: pb.DomainPhrases | None = None) -> None:
        self.task = task
        self.seed = seed
        self._domain = domain
        toolbox = domain.toolbox
        self.actions: list[Action] = task.gold_actions
        kinds = [_kind(toolbox, a.name) for a in self.actions]
        self._kinds = kinds
        self._kind_of = {name: _kind(toolbox, name) for name in toolbox.names()}
        self._phrases = (phrases if phrases is not None
                         else domain.phrases or _GENERIC_PHRASES)
        self._needed = _needed_values(task)
        criteria = task.evaluation_criteria
        self._reported: list[str] = list((criteria.communicate_info or []) if criteria else [])
        self._refusals = _refusals(task)
        self.transfers = any(a.name == TRANSFER_TOOL for a in self.actions)
        order = list(range(len(self.actions)))
        unconfirmed: int | None = None
        asks = tuple(ask for ask in domain.identity_lookups.values() if ask is not None)
        decided = _decide(self.actions, kinds, self._reported, seed, mistakes or NO_MISTAKES,
                          asks)
        self.mistake, self._change = decided or (None, None)
        if self.mistake is not None:
            m = self.mistake
            if m.kind is MistakeKind.SKIPPED_READ:
                order.remove(m.action)
            elif m.kind is MistakeKind.PREMATURE_WRITE:
                order = _write_first(self.actions, kinds, m.action)
            elif m.kind is MistakeKind.MISSING_CONFIRMATION:
                unconfirmed = m.action
        steps = [Step(StepKind.ASK)]
        for i in order:
            if kinds[i] is ToolKind.WRITE and i != unconfirmed:
                steps += [Step(StepKind.CONFIRM, i), Step(StepKind.CALL, i, confirmed=True)]
            else:
                steps.append(Step(StepKind.CALL, i))
        steps.append(Step(StepKind.REPORT))
        self.plan: tuple[Step, ...] = tuple(steps)

    def __repr__(self) -> str:
        return f"<ScriptedAgent task={self.task.id} steps={len(self.plan)} mistake={self.mistake}>"

    def reply(self, messages: Sequence[Message]) -> AssistantMessage:
        turn = len(messages)
        rng = pb.Fresh(f"{self.seed}:{turn}", _said(messages))
        first_user = next((i for i, m in enumerate(messages) if isinstance(m, UserMessage)), None)
        if first_user is None:  # the agent opens (no configured greeting)
            return AssistantMessage(content=DEFAULT_GREETING, turn_idx=turn)
        last = messages[-1]
        reason = (forbidden_reason(last.content, self._domain)
                  if isinstance(last, UserMessage) else None)
        if reason is not None:
            return self._text(self._say([pb.compose(rng, pb.REFUSAL_LEADS, pb.REFUSAL_BODIES,
                                                    pb.REFUSAL_REASONS, reason=reason)]), turn)
        # Each plan step is exactly one assistant message after the user first spoke, so
        # counting them (detours aside) finds the place in the plan without keeping state.
        # The ASK step is left out when what the user said before the agent's first plan
        # message already tells everything the plan needs: that prefix of the history never
        # changes, so the decision is the same at every later turn.
        done = sum(1 for m in messages[first_user + 1:]
                   if isinstance(m, AssistantMessage) and not _is_detour(m))
        plan = self.plan if self._missing_at_start(messages, first_user) else self.plan[1:]
        if done >= len(plan):
            return self._text(self._say([self._closing(rng)]), turn)
        step = plan[done]
        if step.kind is StepKind.ASK:
            return self._text(self._ask(messages, first_user, rng), turn)
        if step.kind is StepKind.CONFIRM:
            detour = self._detour(step.action, messages, lookup=False)
            if detour is not None:
                return detour
            return self._text(self._confirm(step.action, messages, rng), turn)
        if step.kind is StepKind.CALL:
            if step.confirmed and not _said_yes(messages):
                return self._text(self._say([pb.compose(rng, *pb.DECLINED)]), turn)
            if not step.confirmed:
                detour = self._detour(step.action, messages,
                                      lookup=self._kinds[step.action] is ToolKind.READ)
                if detour is not None:
                    return detour
            action = self.actions[step.action]
            call = ToolCall(id=f"call_{turn}_0", name=action.name,
                            arguments=self._arguments(step.action, messages),
                            requestor=action.requestor)
            return AssistantMessage(tool_calls=(call,), turn_idx=turn)
        return self._text(self._report(messages, rng), turn)

    # -- detours ---------------------------------------------------------------------------

    def _detour(self, index: int, messages: Sequence[Message],
                lookup: bool) -> AssistantMessage | None:
        """A message outside the plan before gold action ``index``, or None to go on.

        The agent does not act on a value the user was meant to tell it (one of the
        action's arguments stated in the user's instructions) until the user has said it.
        A lookup whose value the user said with one character missing is made with the
        value as said (its call id ends with ``HEARD_SUFFIX``), and the failure reported;
        a value not said at all is asked for again, up to ``REASK_LIMIT`` times per step.
        With a user that tells its instructions as written, nothing is ever missing and no
        detour happens.
        """
        turn = len(messages)
        rng = pb.Fresh(f"{self.seed}:{turn}:detour", _said(messages))
        last = messages[-1]
        if isinstance(last, ToolMessage) and last.id.endswith(HEARD_SUFFIX):
            heard = _heard_value(messages, last.id, self.actions[index].arguments)
            parts = pb.NOT_FOUND_LEADS, pb.NOT_FOUND_WHERE, pb.NOT_FOUND_TAILS
            lead = rng.choice(parts[0])
            rest = pb.clause(rng, *parts[1:])
            return self._text(self._say([(f"{lead} {heard} {rest}", f"{lead} that {rest}")]),
                              turn)
        said = " ".join(m.content for m in messages if isinstance(m, UserMessage))
        missing = [(key, value) for key, value in self._needed[index]
                   if not _heard(said, value)]
        if not missing:
            return None
        if lookup:
            tried = {v for m in messages if isinstance(m, AssistantMessage)
                     for c in (m.tool_calls or ()) if c.id.endswith(HEARD_SUFFIX)
                     for v in string_leaves(c.arguments)}
            for _, value in missing:
                heard = _near_miss(value, said, tried) if looks_like_id(value) else None
                if heard is not None:
                    action = self.actions[index]
                    args = _replace_leaves(self._arguments(index, messages), value, heard)
                    call = ToolCall(id=f"call_{turn}_0{HEARD_SUFFIX}", name=action.name,
                                    arguments=args, requestor=action.requestor)
                    return AssistantMessage(tool_calls=(call,), turn_idx=turn)
        if _reasks_since_step(messages) >= REASK_LIMIT:
            return None
        what = pb.listing(list(dict.fromkeys(_ask_for(key) for key, _ in missing)))
        parts = [pb.compose(rng, pb.REASK_LEADS, what, pb.REASK_MIDDLES, pb.REASK_TAILS)]
        # What the user just told for a later step is acknowledged, not asked for again.
        latest = last.content if isinstance(last, UserMessage) else ""
        current = {value for _, value in self._needed[index]}
        later = [value for pairs in self._needed[index + 1:] for key, value in pairs
                 if key.endswith(_RECORD_KEYS) and value not in current
                 and _heard(latest, value)]
        if later:
            parts.append(pb.compose(rng, *pb.REASK_NOTED, value=later[0]))
        return self._text(self._say(parts), turn)

    # -- what the agent knows --------------------------------------------------------------

    def _missing_at_start(self, messages: Sequence[Message], first_user: int) -> bool:
        """Whether the plan opens with its ASK step: unless the user's messages before the
        agent's first plan message state every value the plan needs from the user, the
        identity it looks the user up by among them (a plan that looks nobody up gets the
        ASK: the agent would know nothing of the user)."""
        start = next((i for i in range(first_user + 1, len(messages))
                      if isinstance(messages[i], AssistantMessage)
                      and not _is_detour(messages[i])), len(messages))  # type: ignore[arg-type]
        said = " ".join(m.content for m in messages[:start] if isinstance(m, UserMessage))
        needed = [pair for pairs in self._needed for pair in pairs]
        # Without an identity lookup the plan never shows who the user is: ask.
        identified = any(a.name in self._domain.identity_lookups and pairs
                         for a, pairs in zip(self.actions, self._needed, strict=True))
        return not identified or any(not _heard(said, value) for _, value in needed)

    def _ask(self, messages: Sequence[Message], first_user: int, rng: random.Random) -> str:
        """The ASK step: the user's identity (with the request when nothing useful was said
        yet), or, when that is known, the pieces still missing, named."""
        said = " ".join(m.content for m in messages if isinstance(m, UserMessage))
        identity = [v for a, pairs in zip(self.actions, self._needed, strict=True)
                    if a.name in self._domain.identity_lookups for _, v in pairs]
        needed = list(dict.fromkeys(pair for pairs in self._needed for pair in pairs))
        missing = [(k, v) for k, v in needed if not _heard(said, v)]
        heard_any = len(missing) < len(needed)
        unknown = any(not _heard(said, v) for v in identity) if identity else not heard_any
        if not needed or unknown:
            details = "" if heard_any else rng.choice(pb.ASK_DETAILS)
            return self._say([pb.compose(rng, pb.ASK_OPENERS, pb.ASK_VERBS, self._identity(),
                                         details, pb.ASK_THEN) + "?"])
        what = pb.listing(list(dict.fromkeys(_ask_for(k) for k, _ in missing)))
        return self._say([pb.compose(rng, pb.ASK_MORE_OPENERS, pb.ASK_MORE, what) + "?"])

    def _identity(self) -> str:
        # Ask for what the gold plan looks the user up by (retail: email or name and zip).
        lookups = self._domain.identity_lookups
        for action in self.actions:
            if lookups.get(action.name) is not None:
                return lookups[action.name]  # type: ignore[return-value]
        return _IDENTITY_DEFAULT

    def _records(self, messages: Sequence[Message]) -> list[pb.Record]:
        """Every tool call of the history with its result. Whether a result is an error is
        read from its text (a chat request does not carry the flag)."""
        calls: dict[str, ToolCall] = {}
        records = []
        for m in messages:
            if isinstance(m, AssistantMessage):
                calls.update((c.id, c) for c in m.tool_calls or ())
            elif isinstance(m, ToolMessage) and m.id in calls:
                call = calls[m.id]
                error = m.content.startswith("Error")
                records.append(pb.Record(call.name, call.arguments, m.content,
                                         None if error else pb.decode(m.content), error))
        return records

    def _since_last_text(self, messages: Sequence[Message]) -> int:
        """The index after the agent's last plan text message (0 when none)."""
        for i in range(len(messages) - 1, -1, -1):
            m = messages[i]
            if isinstance(m, AssistantMessage) and m.content and not m.tool_calls \
                    and not _is_detour(m):
                return i + 1
        return 0

    # -- text ------------------------------------------------------------------------------

    @staticmethod
    def _text(content: str, turn: int) -> AssistantMessage:
        return AssistantMessage(content=content, turn_idx=turn)

    def _say(self, parts: Sequence[str | tuple[str, str | None]]) -> str:
        """A message from its sentences. A sentence given as (text, fallback) states data
        from the conversation: when the episode's mistake is a hallucinated value, a
        sentence stating the true value gives way to its fallback (None: left out), so
        that the made-up value is the only one the user is told."""
        hidden = self._hidden()
        out = []
        for part in parts:
            text, fallback = (part, part) if isinstance(part, str) else part
            if hidden and _states(text, hidden):
                text = fallback or ""
            if text:
                out.append(text)
        return " ".join(out)

    def _hidden(self) -> str | None:
        m = self.mistake
        if m is not None and m.kind is MistakeKind.HALLUCINATED_VALUE and m.action is None:
            return self._reported[_info_index(m.path)]
        return None

    def _closing(self, rng: random.Random) -> str:
        if self.transfers:
            return TRANSFER_LINE
        return pb.compose(rng, pb.CLOSING_PREFIXES, pb.CLOSERS)

    def _outcomes(self, messages: Sequence[Message],
                  rng: random.Random) -> list[tuple[str, str | None]]:
        """What each write since the agent's last plan text did, read from its result."""
        start = self._since_last_text(messages)
        records = self._records(messages)
        seen = pb.Seen(records, first_name_ok=_first_name_ok(messages))
        recent = self._records(messages[start:])
        out: list[tuple[str, str | None]] = []
        for r in recent:
            if self._kind_of.get(r.name) is not ToolKind.WRITE:
                continue
            record = next((x for x in records if x.text == r.text and x.name == r.name
                           and x.arguments == r.arguments), r)
            generic = rng.choice(pb.OUTCOME_GENERIC)
            if r.error:
                reason = r.text.removeprefix("Error:").strip().rstrip(".") or "no reason given"
                out.append((pb.compose(rng, *pb.OUTCOME_FAILED, reason=reason), None))
                continue
            said = self._phrases.outcome(record, seen, rng)
            text = f"{rng.choice(pb.OUTCOME_LEADS)} {said}." if said else generic
            out.append((text, generic))
        return out

    def _summary(self, messages: Sequence[Message], rng: random.Random,
                 about: dict[str, Any] | None = None) -> list[tuple[str, str | None]]:
        """What the reads since the last plan text showed, a sentence each, now and then:
        up to three of them, those that concern the write about to be described first,
        in the order they were made (not the record the write changes: the confirmation
        describes it). An agent that gathered evidence says what it found."""
        start = self._since_last_text(messages)
        seen = pb.Seen(self._records(messages), first_name_ok=_first_name_ok(messages))
        reads = [r for r in self._records(messages[start:])
                 if self._kind_of.get(r.name) is ToolKind.READ and not r.error]
        if not reads or rng.random() < 0.2:
            return []
        leaves = [v for v in string_leaves(about or {}) if len(v) >= 3]
        target = [r for r in reads if isinstance(r.output, dict) and any(
            r.output.get(k) in leaves for k in ("reservation_id", "order_id"))]
        # Several reads of one tool (the user's reservations gone through, searches
        # compared) are told together, the record the write changes among them.
        by_tool: dict[str, list[pb.Record]] = {}
        for r in reads:
            by_tool.setdefault(r.name, []).append(r)
        said: list[str] = []
        surveyed: set[str] = set()
        for name, group in by_tool.items():
            if len(group) >= 3 and (told := self._phrases.survey(group, seen, rng, about)):
                said.append(told)
                surveyed.add(name)
        others = [r for r in reads if r not in target and r.name not in surveyed]
        related = [r for r in others if any(v in r.text for v in leaves)]
        chosen = (related or others)[-rng.choice((1, 2, 3)):]
        said += [text for r in others if r in chosen
                 if (text := self._phrases.summary(r, seen, rng, about))]
        return [(text, None) for text in dict.fromkeys(said)]

    def _confirm(self, index: int, messages: Sequence[Message], rng: random.Random) -> str:
        action = self.actions[index]
        args = self._arguments(index, messages)
        seen = pb.Seen(self._records(messages), first_name_ok=_first_name_ok(messages))
        described = self._phrases.describe(action.name, args, seen, rng) or _describe(
            action.name, args)
        generic = f"go ahead with the {pb.words(action.name)} request we discussed"
        sentences = []
        for what in (described, generic):
            if rng.random() < 0.5:
                sentences.append(pb.compose(rng, pb.CONFIRM_STEMS, what, pb.CONFIRM_YESNO) + "?")
            else:
                sentences.append(pb.compose(rng, pb.CONFIRM_LEADS, what, pb.CONFIRM_TAILS))
        parts = [*self._outcomes(messages, rng), *self._summary(messages, rng, args),
                 *self._refused(messages, rng, final=False), (sentences[0], sentences[1])]
        return self._say(parts)

    def _report(self, messages: Sequence[Message], rng: random.Random) -> str:
        outcomes = self._outcomes(messages, rng)
        parts: list[str | tuple[str, str | None]] = list(outcomes)
        if not outcomes:
            parts += self._summary(messages, rng)
        refused = self._refused(messages, rng, final=True)
        parts += refused
        values = self.reported_values()
        records = self._records(messages)
        for i, (value, true) in enumerate(zip(values, self._reported, strict=True)):
            opener = rng.choice(pb.VALUE_OPENERS if i == 0 else pb.VALUE_MORE)
            unlabelled = pb.compose(rng, opener, pb.VALUE_UNLABELLED, value=value)
            found = self._label(true, records, rng)
            if found is None:
                parts.append(unlabelled)
                continue
            label, is_money = found
            shown = f"${value}" if is_money and _number(value) is not None else value
            forms = pb.VALUE_FORMS_MONEY if is_money else pb.VALUE_FORMS
            parts.append((pb.compose(rng, opener, forms, label=label, value=shown), unlabelled))
        if not values and not refused:
            if self.actions:
                if not outcomes or rng.random() < 0.5:
                    parts.append(pb.compose(rng, *pb.DONE))
            else:
                parts.append(pb.compose(rng, *pb.NOTHING))
        parts.append(self._closing(rng))
        return self._say(parts)

    def _refused(self, messages: Sequence[Message], rng: random.Random, *,
                 final: bool) -> list[tuple[str, str | None]]:
        """The requests the agent turns down, each told once, with the policy's reason: in
        the first plan text after a read that shows the record concerned, or (``final``)
        in the report when no read ever showed it. Stateless: which reads came before the
        agent's last plan text tells what was already said."""
        if not self._refusals:
            return []
        start = self._since_last_text(messages)
        shown_before = " ".join(r.text for r in self._records(messages[:start]) if not r.error)
        shown_now = " ".join(r.text for r in self._records(messages[start:]) if not r.error)
        out: list[tuple[str, str | None]] = []
        for refusal in self._refusals:
            if any(k in shown_before for k in refusal.keys):
                continue
            if final or any(k in shown_now for k in refusal.keys):
                out.append((pb.compose(rng, pb.REFUSED_FORMS, what=refusal.what,
                                       why=refusal.why), None))
        return out

    def _label(self, value: str, records: Sequence[pb.Record],
               rng: random.Random) -> tuple[str, bool] | None:
        """What ``value`` is, found in the conversation: money a write moved, else the key
        a tool result holds it under; None when neither says."""
        seen = pb.Seen(records)
        number = _number(value)
        if number is not None:
            for r in records:
                if r.error or self._kind_of.get(r.name) is not ToolKind.WRITE:
                    continue
                for amount, label in self._phrases.amounts(r, seen):
                    if abs(abs(amount) - abs(number)) < 0.005:
                        return rng.choice(label.split("|")), True
        for r in records:
            if r.error:
                continue
            if r.name == "calculate" and _number(r.text) is not None and number is not None \
                    and abs(_number(r.text) - number) < 0.005:  # type: ignore[operator]
                return "the total", False
            found = _find_leaf(r.output, value, number)
            if found is not None:
                return found
        return None

    def reported_values(self) -> list[str]:
        """The values the final report states: the communicate strings, one of them
        replaced when the mistake is a hallucinated value."""
        values = list(self._reported)
        m = self.mistake
        if m is not None and m.kind is MistakeKind.HALLUCINATED_VALUE and m.action is None:
            index = _info_index(m.path)
            values[index] = _perturb(values[index], random.Random(f"{self.seed}:hallucinate"))
        return values

    # -- arguments -------------------------------------------------------------------------

    def _arguments(self, index: int, messages: Sequence[Message]) -> dict[str, Any]:
        # A copy: the task's gold arguments must never be shared with (or changed by) a
        # conversation.
        args = copy.deepcopy(self.actions[index].arguments)
        change = self._change
        if change is None or change.action != index:
            return args
        old = _get(args, change.path)
        rng = random.Random(f"{self.seed}:argument")
        new = None
        if not change.invent and isinstance(old, str):
            seen = _same_shape(old, messages)
            if seen:
                new = seen[int(change.pick * len(seen))]
        if new is None:
            new = _perturb_value(old, rng)
        _set(args, change.path, new)
        return args


_GENERIC_PHRASES = pb.DomainPhrases()  # for a domain without phrases of its own


def _said(messages: Sequence[Message]) -> str:
    """The agent's text so far, lower-cased (what its phrase choices avoid repeating)."""
    return "\n".join((m.content or "").lower() for m in messages
                     if isinstance(m, AssistantMessage) and m.content)


def _first_name_ok(messages: Sequence[Message]) -> bool:
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


def _info_index(path: str) -> int:
    return int(path.removeprefix("communicate_info[").rstrip("]"))


def _norm(text: str) -> str:
    """Text as the COMMUNICATE check reads it: lower-cased, commas removed."""
    return text.lower().replace(",", "")


def _states(text: str, value: str) -> bool:
    return _norm(value) in _norm(text)


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").removeprefix("$"))
    except ValueError:
        return None


def _find_leaf(data: Any, value: str, number: float | None,
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
                found = _find_leaf(leaf, value, number, inner)
                if found is not None:
                    return found
            elif _same_value(leaf, value, number):
                label = _KEY_LABELS.get(str(key), "the " + pb.words(key))
                where = inner if key != "name" else (here or owner)
                return (f"{label} for {where}" if where else label), key in _MONEY_KEYS
    elif isinstance(data, list):
        for leaf in data:
            found = _find_leaf(leaf, value, number, owner)
            if found is not None:
                return found
    return None


def _same_value(leaf: Any, value: str, number: float | None) -> bool:
    if isinstance(leaf, bool):
        return False
    if isinstance(leaf, int | float):
        return number is not None and abs(leaf - number) < 0.005
    return isinstance(leaf, str) and leaf.lower() == value.lower()


def _ask_for(key: str) -> str:
    return _ASK_FOR.get(key, "the " + key.replace("_", " "))


def is_confirmation(text: str) -> bool:
    """Whether the agent's text asks the user to confirm a write: a phrase-bank
    confirmation, or the looser phrasing an LLM agent would use."""
    lowered = text.lower()
    return (any(cue in lowered for cue in pb.CONFIRM_CUES) or "(yes/no)" in lowered
            or "confirm" in lowered)


def is_closing(text: str) -> bool:
    """Whether the agent's text closes the conversation (asks whether anything is left)."""
    return "anything else" in text.lower()


def _kind(toolbox: Toolbox, name: str) -> ToolKind:
    # An unknown name is called like a read: the environment answers with an error.
    return toolbox.kind(name) or ToolKind.GENERIC


def _needed_values(task: Task) -> list[list[tuple[str, str]]]:
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


def _heard(said: str, value: str) -> bool:
    """Whether the user said ``value`` (an order number may come without its ``#``)."""
    return mentions(said, value) or (value.startswith("#") and mentions(said, value[1:]))


_RECORD_KEYS = ("reservation_id", "order_id")


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


def _refusals(task: Task) -> tuple[_Refusal, ...]:
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


def _is_detour(message: AssistantMessage) -> bool:
    if message.tool_calls:
        return any(c.id.endswith(HEARD_SUFFIX) for c in message.tool_calls)
    return (message.content or "").startswith(pb.DETOUR_LEADS)


def _reasks_since_step(messages: Sequence[Message]) -> int:
    """The agent's re-asks since its last plan message."""
    count = 0
    for m in reversed(messages):
        if isinstance(m, AssistantMessage):
            if not _is_detour(m):
                break
            count += (m.content or "").startswith(pb.REASK_LEADS)
    return count


_TOKEN = re.compile(r"[^\s,;:!?()\[\]\"']+")


def _near_miss(value: str, text: str, tried: set[str]) -> str | None:
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


def _replace_leaves(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, dict):
        return {k: _replace_leaves(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_leaves(v, old, new) for v in value]
    return value


def _heard_value(messages: Sequence[Message], call_id: str, gold: dict[str, Any]) -> str:
    """The value a heard lookup used in place of the gold one."""
    expected = set(string_leaves(gold))
    for m in reversed(messages):
        if isinstance(m, AssistantMessage) and m.tool_calls:
            for c in m.tool_calls:
                if c.id == call_id:
                    return next((v for v in string_leaves(c.arguments) if v not in expected),
                                "that")
    return "that"


def _said_yes(messages: Sequence[Message]) -> bool:
    last = next((m for m in reversed(messages) if isinstance(m, UserMessage)), None)
    return last is not None and bool(_YES.search(last.content))


def _describe(name: str, args: dict[str, Any]) -> str:
    """A write in plain words when the domain has no wording for it: the tool's name and
    the identifiers it is given (no argument names, no JSON)."""
    shown = pb.listing([v for v in string_leaves(args) if len(v) >= 3][:3])
    return f"make the {pb.words(name)} change for {shown}" if shown else \
        f"make the {pb.words(name)} change"


# -- choosing the mistake ------------------------------------------------------------------


Decision = tuple[AppliedMistake, _ArgumentChange | None]


def _decide(actions: list[Action], kinds: list[ToolKind], reported: list[str], seed: int,
            config: MistakeConfig, fixed: tuple[str, ...] = ()) -> Decision | None:
    """The mistake the agent makes, if any; ``fixed``: the domain's own fixed phrases,
    which a hallucinated value must not be found in either (``_reportable``)."""
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
        reportable = _reportable(reported, [actions[w].arguments for w in writes], fixed)
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


def _write_first(actions: list[Action], kinds: list[ToolKind], write: int) -> list[int]:
    """The call order with ``write`` moved before the calls that precede it."""
    window = _reads_before(actions, kinds, write)
    count = len(actions)
    return [*range(window[0]), write, *window, *range(write + 1, count)]


def _reportable(values: list[str], write_args: list[dict[str, Any]],
                fixed_extra: tuple[str, ...] = ()) -> list[int]:
    """Communicate strings whose absence the COMMUNICATE check would notice: not inside
    another required string, a write's arguments (shown in confirmations) or the agent's
    fixed phrases. Strings with digits are preferred: they are the facts that matter."""
    def norm(text: str) -> str:
        return text.lower().replace(",", "")

    fixed = norm(" ".join((*_FIXED_TEXT, *fixed_extra, json.dumps(write_args))))
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
           if isinstance(v := _get(actions[w].arguments, p), str)
           and any(ch.isdigit() for ch in v)]
    w, path = rng.choice(ids or options)
    where = _path_text(path)
    what = "a made-up" if invent else "another"
    applied = AppliedMistake(kind=kind, action=w, path=where,
                             detail=f"{actions[w].name}: {what} value for {where}")
    return applied, _ArgumentChange(w, path, invent, rng.random())


# -- values --------------------------------------------------------------------------------


def _leaves(value: Any, path: ArgPath = ()) -> Iterator[ArgPath]:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _leaves(sub, (*path, key))
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            yield from _leaves(sub, (*path, i))
    elif isinstance(value, str | int | float) and path:
        yield path


def _get(value: Any, path: ArgPath) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(value: Any, path: ArgPath, new: Any) -> None:
    _get(value, path[:-1])[path[-1]] = new


def _path_text(path: ArgPath) -> str:
    text = ""
    for key in path:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


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


def _same_shape(value: str, messages: Sequence[Message]) -> list[str]:
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


def _perturb(text: str, rng: random.Random) -> str:
    """``text`` with one digit (or, lacking digits, one letter) changed."""
    digits = [i for i, ch in enumerate(text) if ch.isdigit()]
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    spots = digits or letters
    if not spots:
        return text + "1"
    i = rng.choice(spots)
    ch = text[i]
    if ch.isdigit():
        new = str((int(ch) + rng.randint(1, 9)) % 10)
    else:
        base = ord("A") if ch.isupper() else ord("a")
        new = chr(base + (ord(ch.lower()) - ord("a") + rng.randint(1, 25)) % 26)
    return text[:i] + new + text[i + 1:]


def _perturb_value(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.randint(1, 3)
    if isinstance(value, float):
        return round(value + rng.randint(1, 3), 2)
    return _perturb(str(value), rng)


# -- the user ------------------------------------------------------------------------------


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
        instructions = task.user_scenario.instructions
        if isinstance(instructions, Instructions):
            self.reason = instructions.reason_for_call.strip()
            facts = [instructions.known_info or "", instructions.task_instructions]
        else:
            self.reason, facts = instructions.strip(), []
        # Facts to reveal, in order; task_instructions of "." (tau2 placeholders) is none.
        self.facts = [f.strip() for f in facts if len(f.strip()) > 1]
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
        intent = _intent(last or "")
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
                        if isinstance(m, AssistantMessage) and _intent(m.content or "") == "ask")
            if asked < len(self.facts):
                return UserMessage(content=self.facts[asked])
            return UserMessage(content=_PLAIN_LINES.exhausted.pick(rng, _own(view)))
        return UserMessage(content=_PLAIN_LINES.ack.pick(rng, _own(view)))


# The behaviour user's fixed phrases, by style (plain, impatient, verbose): the banks of
# behaviours.PHRASINGS, from which a user never says the same sentence twice.
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
        intent = _intent(last)
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


def _intent(text: str) -> str:
    """What the agent's text asks of the user: the transfer line, a closing line (every
    closer of the phrase bank holds "anything else"), a confirmation (the bank's cues, or
    "(yes/no)" / "confirm" as an LLM agent would put it), else a question; the looser
    phrasing an LLM agent would use is recognised the same way."""
    lowered = text.lower()
    if TRANSFER_LINE in text or "transferred to a human" in lowered:
        return "transfer"
    if is_closing(text):
        return "closing"
    if is_confirmation(text):
        return "confirm"
    if ASK_MARKER in text or "?" in text:
        return "ask"
    return "other"


# -- a whole episode in-process ------------------------------------------------------------


def run_scripted_episode(
    domain: Domain,
    base: BaseDB,
    task: Task,
    seed: int,
    mistakes: MistakeConfig | None = None,
    limits: Limits | None = None,
    *,
    greeting: str | None = DEFAULT_GREETING,
    behaviours: Sequence[str] = (),
) -> tuple[Episode, str, ScriptedAgent]:
    """Drive one episode with the scripted agent and user (telling the task with
    ``behaviours``), tools run on a fresh overlay of ``base``. Returns the episode, its
    final DB hash and the agent (whose ``mistake`` tells what went wrong on purpose). The
    one episode driver runs it, with no event loop: the scripted pair never waits."""
    env = domain.environment(base)
    agent = ScriptedAgent(task, domain, seed, mistakes)
    user = ScriptedUser(task, seed, behaviours=behaviours, domain=domain)
    episode = Episode(limits, greeting)
    finish_now(drive(episode, episode.start(), InProcess(agent.reply), InProcess(user.reply),
                     on(env)))
    return episode, env.db_hash(), agent
