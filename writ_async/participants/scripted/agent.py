"""The scripted agent: it carries out a task's gold plan as a conversation.

It asks for what it must know, performs the gold reads one call per message, asks an
explicit confirmation before each write, writes after the user's yes, reports every
``communicate_info`` string verbatim and lets the user end. It is a pure function of what
its side of the conversation shows (plus the task, its ``Domain``: tool kinds, phrases,
forbidden requests, identity lookups; and the seed), so that the mock server answers for
it (``mock/scripted_policy.py``) with the same reply as in-process: it finds its place
in the plan by counting its own messages since the user first spoke, and every random
choice is drawn from ``random.Random(f"{seed}:...")`` keyed on the seed and on the history
length, or made once from the seed when the plan is built.

The agent is not told the user's behaviour; it copes from what it sees, with detours
outside its plan: it refuses a forbidden request (one of the catalogue's), asks again for
a value the user was meant to give before the call that needs it (the values of the gold
arguments that the user's reason for calling or known info state), and tries a lookup
with an identifier the user said with a character missing, then reports it not found.
Detours open with their own leads (heard lookups carry ``HEARD_SUFFIX`` in their call
id), so the agent still finds its place in the plan by counting; with the behaviour-less
user none ever happens and the conversation is the plan's, message for message.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from writ_async.conversation.episode import DEFAULT_GREETING
from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.task import Action, Task
from writ_async.environment.domain import Domain
from writ_async.environment.tools import Toolbox, ToolKind
from writ_async.participants import phrasebank as pb
from writ_async.participants.behaviours.content import (
    forbidden_reason,
    looks_like_id,
    string_leaves,
)
from writ_async.participants.scripted.markers import (
    IDENTITY_DEFAULT,
    TRANSFER_LINE,
    TRANSFER_TOOL,
    ask_for,
    is_plural,
)
from writ_async.participants.scripted.mistakes import (
    NO_MISTAKES,
    MistakeConfig,
    MistakeKind,
    decide,
    get_path,
    set_path,
    write_first,
)
from writ_async.participants.scripted.reading import (
    HEARD_SUFFIX,
    as_number,
    find_leaf,
    first_name_ok,
    heard_in,
    heard_value,
    info_index,
    is_detour,
    near_miss,
    needed_values,
    reasks_since_step,
    refusals,
    said_text,
    said_yes,
    same_shape,
    says_figure,
    states_value,
)

REASK_LIMIT = 6  # re-asks for a missing value before the agent goes on without it


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
        self._needed = needed_values(task)
        criteria = task.evaluation_criteria
        self._reported: list[str] = list((criteria.communicate_info or []) if criteria else [])
        self._refusals = refusals(task)
        self.transfers = any(a.name == TRANSFER_TOOL for a in self.actions)
        order = list(range(len(self.actions)))
        unconfirmed: int | None = None
        asks = tuple(ask for ask in domain.identity_lookups.values() if ask is not None)
        decided = decide(self.actions, kinds, self._reported, seed, mistakes or NO_MISTAKES,
                          asks)
        self.mistake, self._change = decided or (None, None)
        if self.mistake is not None:
            m = self.mistake
            if m.kind is MistakeKind.SKIPPED_READ:
                order.remove(m.action)
            elif m.kind is MistakeKind.PREMATURE_WRITE:
                order = write_first(self.actions, kinds, m.action)
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
        rng = pb.Fresh(f"{self.seed}:{turn}", said_text(messages))
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
                   if isinstance(m, AssistantMessage) and not is_detour(m))
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
            if step.confirmed and not said_yes(messages):
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
        rng = pb.Fresh(f"{self.seed}:{turn}:detour", said_text(messages))
        last = messages[-1]
        if isinstance(last, ToolMessage) and last.id.endswith(HEARD_SUFFIX):
            heard = heard_value(messages, last.id, self.actions[index].arguments)
            parts = pb.NOT_FOUND_LEADS, pb.NOT_FOUND_WHERE, pb.NOT_FOUND_TAILS
            lead = rng.choice(parts[0])
            rest = pb.clause(rng, *parts[1:])
            return self._text(self._say([(f"{lead} {heard} {rest}", f"{lead} that {rest}")]),
                              turn)
        said = " ".join(m.content for m in messages if isinstance(m, UserMessage))
        missing = [(key, value) for key, value in self._needed[index]
                   if not heard_in(said, value)]
        if not missing:
            return None
        if lookup:
            tried = {v for m in messages if isinstance(m, AssistantMessage)
                     for c in (m.tool_calls or ()) if c.id.endswith(HEARD_SUFFIX)
                     for v in string_leaves(c.arguments)}
            for _, value in missing:
                heard = near_miss(value, said, tried) if looks_like_id(value) else None
                if heard is not None:
                    action = self.actions[index]
                    args = _replace_leaves(self._arguments(index, messages), value, heard)
                    call = ToolCall(id=f"call_{turn}_0{HEARD_SUFFIX}", name=action.name,
                                    arguments=args, requestor=action.requestor)
                    return AssistantMessage(tool_calls=(call,), turn_idx=turn)
        if reasks_since_step(messages) >= REASK_LIMIT:
            return None
        asks = list(dict.fromkeys(ask_for(key) for key, _ in missing))
        tails = (pb.REASK_TAILS_PLURAL if len(asks) > 1 or is_plural(asks[0])
                 else pb.REASK_TAILS)
        parts = [pb.compose(rng, pb.REASK_LEADS, pb.listing(asks), pb.REASK_MIDDLES, tails)]
        # What the user just told for a later step is acknowledged, not asked for again.
        latest = last.content if isinstance(last, UserMessage) else ""
        current = {value for _, value in self._needed[index]}
        later = [value for pairs in self._needed[index + 1:] for key, value in pairs
                 if key.endswith(_RECORD_KEYS) and value not in current
                 and heard_in(latest, value)]
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
                      and not is_detour(messages[i])), len(messages))  # type: ignore[arg-type]
        said = " ".join(m.content for m in messages[:start] if isinstance(m, UserMessage))
        needed = [pair for pairs in self._needed for pair in pairs]
        # Without an identity lookup the plan never shows who the user is: ask.
        identified = any(a.name in self._domain.identity_lookups and pairs
                         for a, pairs in zip(self.actions, self._needed, strict=True))
        return not identified or any(not heard_in(said, value) for _, value in needed)

    def _ask(self, messages: Sequence[Message], first_user: int, rng: random.Random) -> str:
        """The ASK step: the user's identity (with the request when nothing useful was said
        yet), or, when that is known, the pieces still missing, named."""
        said = " ".join(m.content for m in messages if isinstance(m, UserMessage))
        identity = [v for a, pairs in zip(self.actions, self._needed, strict=True)
                    if a.name in self._domain.identity_lookups for _, v in pairs]
        needed = list(dict.fromkeys(pair for pairs in self._needed for pair in pairs))
        missing = [(k, v) for k, v in needed if not heard_in(said, v)]
        heard_any = len(missing) < len(needed)
        unknown = any(not heard_in(said, v) for v in identity) if identity else not heard_any
        if not needed or unknown:
            details = "" if heard_any else rng.choice(pb.ASK_DETAILS)
            return self._say([pb.compose(rng, pb.ASK_OPENERS, pb.ASK_VERBS, self._identity(),
                                         details, pb.ASK_THEN) + "?"])
        what = pb.listing(list(dict.fromkeys(ask_for(k) for k, _ in missing)))
        return self._say([pb.compose(rng, pb.ASK_MORE_OPENERS, pb.ASK_MORE, what) + "?"])

    def _identity(self) -> str:
        # Ask for what the gold plan looks the user up by (retail: email or name and zip).
        lookups = self._domain.identity_lookups
        for action in self.actions:
            if lookups.get(action.name) is not None:
                return lookups[action.name]  # type: ignore[return-value]
        return IDENTITY_DEFAULT

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
                    and not is_detour(m):
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
            if hidden and states_value(text, hidden):
                text = fallback or ""
            if text:
                out.append(text)
        return " ".join(out)

    def _hidden(self) -> str | None:
        m = self.mistake
        if m is not None and m.kind is MistakeKind.HALLUCINATED_VALUE and m.action is None:
            return self._reported[info_index(m.path)]
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
        # The confirmation of these writes: their outcome need not say its figures again.
        told = messages[start - 1].content or "" if start else ""
        seen = pb.Seen(records, first_name_ok=first_name_ok(messages), told=told)
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
        seen = pb.Seen(self._records(messages), first_name_ok=first_name_ok(messages))
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
        # Each sentence keyed by where its first read stands, so the user hears them in
        # the order the agent read (the profile before the reservations it lists).
        at = {id(r): i for i, r in enumerate(reads)}
        said: list[tuple[int, str]] = []
        surveyed: set[str] = set()
        for name, group in by_tool.items():
            if len(group) >= 3 and (told := self._phrases.survey(group, seen, rng, about)):
                said.append((at[id(group[0])], told))
                surveyed.add(name)
        others = [r for r in reads if r not in target and r.name not in surveyed]
        related = [r for r in others if any(v in r.text for v in leaves)]
        chosen = (related or others)[-rng.choice((1, 2, 3)):]
        said += [(at[id(r)], text) for r in others if r in chosen
                 if (text := self._phrases.summary(r, seen, rng, about))]
        return [(text, None) for text in dict.fromkeys(t for _, t in sorted(said))]

    def _confirm(self, index: int, messages: Sequence[Message], rng: random.Random) -> str:
        action = self.actions[index]
        args = self._arguments(index, messages)
        seen = pb.Seen(self._records(messages), first_name_ok=first_name_ok(messages))
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
        # What this message's outcomes already say ("$85.36 refunded to your gift card") is
        # not said again as a figure; not when a made-up value hides a true one, since the
        # outcomes stating that one give way to their plain fallbacks (``_say``).
        told = "" if self._hidden() else " ".join(
            text for text, _ in outcomes if isinstance(text, str))
        used: set[str] = set()
        for i, (value, true) in enumerate(zip(values, self._reported, strict=True)):
            if told and value == true and says_figure(told, value):
                continue
            # No connective twice in one message ("As for the rest, ... As for the rest,").
            openers = [o for o in (pb.VALUE_OPENERS if i == 0 else pb.VALUE_MORE)
                       if not o or o not in used]
            opener = rng.choice(openers)
            used.add(opener)
            unlabelled = pb.compose(rng, opener, pb.VALUE_UNLABELLED, value=value)
            found = self._label(true, records, rng)
            if found is None:
                parts.append(unlabelled)
                continue
            label, is_money = found
            shown = f"${value}" if is_money and as_number(value) is not None else value
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
        number = as_number(value)
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
            if r.name == "calculate" and as_number(r.text) is not None and number is not None \
                    and abs(as_number(r.text) - number) < 0.005:  # type: ignore[operator]
                return "the total", False
            found = find_leaf(r.output, value, number)
            if found is not None:
                return found
        return None

    def reported_values(self) -> list[str]:
        """The values the final report states: the communicate strings, one of them
        replaced when the mistake is a hallucinated value."""
        values = list(self._reported)
        m = self.mistake
        if m is not None and m.kind is MistakeKind.HALLUCINATED_VALUE and m.action is None:
            index = info_index(m.path)
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
        old = get_path(args, change.path)
        rng = random.Random(f"{self.seed}:argument")
        new = None
        if not change.invent and isinstance(old, str):
            seen = same_shape(old, messages)
            if seen:
                new = seen[int(change.pick * len(seen))]
        if new is None:
            new = _perturb_value(old, rng)
        set_path(args, change.path, new)
        return args


_GENERIC_PHRASES = pb.DomainPhrases()  # for a domain without phrases of its own


def _kind(toolbox: Toolbox, name: str) -> ToolKind:
    # An unknown name is called like a read: the environment answers with an error.
    return toolbox.kind(name) or ToolKind.GENERIC


_RECORD_KEYS = ("reservation_id", "order_id")


def _replace_leaves(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new if value == old else value
    if isinstance(value, dict):
        return {k: _replace_leaves(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_leaves(v, old, new) for v in value]
    return value


def _describe(name: str, args: dict[str, Any]) -> str:
    """A write in plain words when the domain has no wording for it: the tool's name and
    the identifiers it is given (no argument names, no JSON)."""
    shown = pb.listing([v for v in string_leaves(args) if len(v) >= 3][:3])
    return f"make the {pb.words(name)} change for {shown}" if shown else \
        f"make the {pb.words(name)} change"


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
