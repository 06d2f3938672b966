"""WRIT stage 2: user behaviours, the same task told by different kinds of users.

A behaviour changes how the user *reveals and phrases* a task, never what the task is:
the gold actions, the gold end state and the strings the agent must communicate stay
those of the task. Behaviours compose (a terse user who gives facts out of order), except
where they contradict each other (``Behaviour.excludes``): a user cannot both give
everything up front and reveal one fact at a time, nor be both terse and verbose.

The catalogue drives both kinds of user:

* the scripted user (``scripted.user.ScriptedUser(..., behaviours=...)``) implements each one
  in its replies, with the content defined here (preferences, fillers, the identifier it
  mistypes, the phrasing rules) and the domain's own (``Domain.forbidden_requests`` and
  ``Domain.vague_openers``; generic ones for a domain without);
* an LLM user simulator gets ``user_prompt_block`` appended to its guidelines
  (``with_behaviours``), naming the same forbidden request, preference and mistyped
  identifier as the scripted user would for that episode's seed.

A scenario is a task told with a set of behaviours: ``scenario_id(task_id, behaviours)``
(``"<task_id>@<name>+<name>"``; the bare task id when there are none). Which behaviours a
run uses is configured by weights (``BehaviourMix``); ``sample_behaviours`` draws one
composition from a seed and ``expand_scenarios`` gives each task its scenarios, both
deterministic functions of their arguments.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from writ_async.conversation.task import Instructions, Task
from writ_async.seeds import scenario_seed

if TYPE_CHECKING:
    from writ_async.environment.domain import Domain

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
    one, two = _get(a), _get(b)
    return (a != b and one.composable and two.composable
            and b not in one.excludes and a not in two.excludes)


def canonical(behaviours: Iterable[str]) -> tuple[str, ...]:
    """``behaviours`` validated, deduplicated and in catalogue order (the form recorded
    and used in scenario ids); a ValueError names an unknown or incompatible one."""
    names = sorted(set(behaviours), key=lambda n: _ORDER.get(n, -1))
    for name in names:
        _get(name)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not compatible(a, b):
                raise ValueError(f"behaviours {a!r} and {b!r} cannot be combined")
    return tuple(names)


def _get(name: str) -> Behaviour:
    try:
        return BEHAVIOURS[name]
    except KeyError:
        raise ValueError(f"unknown behaviour {name!r}; known: {', '.join(NAMES)}") from None


# -- the mix, sampling and scenarios -------------------------------------------------------


class BehaviourMix(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which behaviours a run uses, and how often.

    ``weights``: relative weight per behaviour name (missing or 0: never drawn).
    ``per_task``: scenarios per task (distinct compositions, as far as the mix allows).
    ``combine``: after each drawn behaviour, the probability of adding one more,
    compatible one (drawn by weight), up to ``max_size`` behaviours in all.
    """

    weights: dict[str, float] = msgspec.field(default_factory=lambda: {COOPERATIVE: 1.0})
    per_task: int = 1
    combine: float = 0.0
    max_size: int = 2

    def __post_init__(self) -> None:
        for name, weight in self.weights.items():
            _get(name)
            if not weight >= 0.0 or weight == float("inf"):
                raise ValueError(f"behaviour weight for {name!r} must be finite and >= 0, "
                                 f"got {weight}")
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("behaviour weights: at least one must be positive")
        if self.per_task < 1:
            raise ValueError(f"behaviours per task must be >= 1, got {self.per_task}")
        if not 0.0 <= self.combine <= 1.0:
            raise ValueError(f"behaviour combine must be within [0, 1], got {self.combine}")
        if self.max_size < 1:
            raise ValueError(f"behaviour max_size must be >= 1, got {self.max_size}")

    def drawable(self) -> list[tuple[str, float]]:
        """The behaviours with a positive weight, in catalogue order."""
        return [(n, self.weights[n]) for n in NAMES if self.weights.get(n, 0.0) > 0]


def sample_behaviours(seed: int, mix: BehaviourMix) -> tuple[str, ...]:
    """One composition drawn from ``mix``: a first behaviour by weight, then, each time
    with probability ``mix.combine``, one more compatible with all drawn so far (by
    weight), up to ``mix.max_size``. Canonical order; the same seed gives the same tuple."""
    rng = random.Random(f"behaviours:{seed}")
    pool = mix.drawable()
    chosen = [_weighted(rng, pool)]
    while len(chosen) < mix.max_size and mix.combine > 0 and rng.random() < mix.combine:
        fits = [(n, w) for n, w in pool if all(compatible(n, c) for c in chosen)]
        if not fits:
            break
        chosen.append(_weighted(rng, fits))
    return canonical(chosen)


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    total = sum(w for _, w in options)
    point = rng.random() * total
    for name, weight in options:
        point -= weight
        if point < 0:
            return name
    return options[-1][0]


SCENARIO_SEPARATOR = "@"
_JOIN = "+"


def scenario_id(task_id: str, behaviours: Iterable[str]) -> str:
    """The scenario's id: ``"<task_id>@<b1>+<b2>"`` in canonical order; the task id itself
    when there is no behaviour (the scripted user's original way of telling it)."""
    names = canonical(behaviours)
    return f"{task_id}{SCENARIO_SEPARATOR}{_JOIN.join(names)}" if names else task_id


def parse_scenario_id(value: str) -> tuple[str, tuple[str, ...]]:
    """``(task_id, behaviours)`` from a scenario id; an id without a valid behaviour
    suffix is a bare task id."""
    task_id, sep, tail = value.rpartition(SCENARIO_SEPARATOR)
    if not sep or not tail:
        return value, ()
    names = tail.split(_JOIN)
    if not all(n in BEHAVIOURS for n in names):
        return value, ()
    return task_id, canonical(names)


@dataclass(frozen=True, slots=True)
class Scenario:
    task_id: str
    behaviours: tuple[str, ...]

    @property
    def id(self) -> str:
        return scenario_id(self.task_id, self.behaviours)


def expand_scenarios(task_ids: Iterable[str], mix: BehaviourMix,
                     run_seed: int) -> list[Scenario]:
    """Each task's scenarios, task by task: ``mix.per_task`` distinct compositions (fewer
    when the mix cannot give that many different ones), in the order first drawn."""
    out: list[Scenario] = []
    for task_id in task_ids:
        seen: list[tuple[str, ...]] = []
        for index in range(mix.per_task * 8):
            drawn = sample_behaviours(scenario_seed(run_seed, task_id, index), mix)
            if drawn not in seen:
                seen.append(drawn)
                if len(seen) == mix.per_task:
                    break
        out.extend(Scenario(task_id, names) for names in seen)
    return out


# -- content shared by the scripted user and the LLM prompt --------------------------------

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


# -- the scripted user's stock phrases ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PhraseBank:
    """Stock sentences of one kind (confirmations, fillers, hurries...), composed of slots,
    none said twice in one conversation.

    A sentence is a ``frame`` with a ``core`` in its ``{}`` (a frame without ``{}`` is a
    whole sentence of its own): the core is what is said, the frame how. Cores may hold
    ``{value}``-style fields, filled at ``pick``. The first letter is capitalised.
    """

    cores: tuple[str, ...]
    frames: tuple[str, ...] = ("{}.",)

    def texts(self, **fill: str) -> list[str]:
        """Every sentence the bank can say, in bank order."""
        return list(dict.fromkeys(self._text(f, c, fill) for c in self.cores
                                  for f in self.frames))

    def pick(self, rng: random.Random, said: Sequence[str], **fill: str) -> str:
        """A sentence not in ``said`` (the user's own earlier messages and what it is
        saying now): preferably one whose core none of them holds, failing that the next
        composition of a core said before with a frame not used with it. The user keeps
        no state, so what it said is read back from its messages; ``rng`` decides among
        what is left, so the same seed and history give the same sentence."""
        text = "\n".join(said)
        lowered = text.lower()
        cores = [c for c in self.cores if c.format(**fill).lower() not in lowered]
        pool = cores or list(self.cores)
        # Nor the same lead-in ("Honestly, ...") as just before, where another will do.
        last = said[-1] if said else ""
        for core in rng.sample(pool, len(pool)):
            fresh = [(frame, line) for frame in self.frames
                     if (line := self._text(frame, core, fill)) not in text]
            if fresh:
                varied = [line for frame, line in fresh
                          if (lead := frame.partition("{}")[0]) == "" or lead not in last]
                return rng.choice(varied or [line for _, line in fresh])
        # Reached only after every composition was said: the banks hold more of them
        # than a conversation has user turns (tests/test_behaviours.py checks).
        return self._text(rng.choice(self.frames), rng.choice(self.cores), fill)

    @staticmethod
    def _text(frame: str, core: str, fill: Mapping[str, str]) -> str:
        text = frame.format(core).format(**fill) if "{}" in frame else frame
        return text[:1].upper() + text[1:]


@dataclass(frozen=True, slots=True)
class Phrasing:
    """A style's stock lines: ``confirm`` (each holds an explicit "yes", which tau2's
    policies require before a write), ``ack``, ``exhausted`` (asked for what it does not
    know), ``all_given`` (a cooperative user asked again), ``repeat`` and ``narrow``
    (prefixes to a fact told again, or told after a vague opening), ``accept`` (a
    forbidden request refused), ``correct`` and ``self_correct`` (a mistyped identifier,
    ``{value}`` the right one)."""

    confirm: PhraseBank
    ack: PhraseBank
    exhausted: PhraseBank
    all_given: PhraseBank
    repeat: PhraseBank
    narrow: PhraseBank
    accept: PhraseBank
    correct: PhraseBank
    self_correct: PhraseBank


# None of these holds a digit, a name or a word a tool takes as a value (a cabin, a
# payment method, a reason for cancelling): the agent looks for the user's values in
# everything the user says.
PLAIN_STYLE = "plain"
PHRASINGS: Mapping[str, Phrasing] = {
    PLAIN_STYLE: Phrasing(
        confirm=PhraseBank(
            ("please go ahead", "go ahead", "that's correct", "that's right", "I confirm",
             "please proceed", "that's what I want", "that all looks right",
             "please do that", "you can go ahead", "that works for me", "that's fine",
             "everything there is correct", "I'm happy with that", "that sounds good",
             "that's exactly right", "please go ahead with it", "that's all correct",
             "I agree to that", "that's the one"),
            ("Yes, {}.", "Yes, {}, thank you.", "Yes, {}, thanks.", "Yes.")),
        ack=PhraseBank(
            ("thank you", "thanks for explaining", "that makes sense", "good to know",
             "thanks for telling me", "that's clear", "thank you for the update",
             "that helps", "I appreciate it", "understood", "noted, thanks",
             "thanks for checking", "that's helpful", "fair enough", "thank you for that"),
            ("{}.", "Okay, {}.", "Alright, {}.", "I see, {}.", "Okay.", "Alright.")),
        exhausted=PhraseBank(
            ("I'm afraid that is all the information I have",
             "that's everything I know, I'm afraid", "I don't have any more details than that",
             "I've told you all I know", "there's nothing more I can add",
             "I don't know anything beyond what I said", "that's really all I've got",
             "I don't have any other details", "I wasn't given any more information than that",
             "I can't tell you more than that"),
            ("{}.", "Sorry, {}.", "Hmm, {}.", "Honestly, {}.")),
        all_given=PhraseBank(
            ("I believe I already gave you everything I know in my first message",
             "everything I know was in my first message",
             "I put all the details in my first message",
             "I think I covered everything at the start",
             "I already shared all my details at the start",
             "all I know is in what I wrote first",
             "my first message had everything I can tell you",
             "there's nothing beyond what I told you at the start"),
            ("{}.", "Sorry, {}.", "Hmm, {}.", "Well, {}.")),
        repeat=PhraseBank(
            ("as I mentioned", "as I said", "like I mentioned earlier", "as I said before",
             "just to repeat", "once again", "as I noted earlier", "to repeat myself",
             "like I said earlier", "as I told you", "as I explained", "to say it again",
             "as I mentioned before", "again", "as I said a moment ago"),
            ("{}: ",)),
        narrow=PhraseBank(
            ("to be more specific", "more specifically", "to be precise", "in more detail",
             "specifically", "to put it more precisely", "here are the details"),
            ("{}: ",)),
        accept=PhraseBank(
            ("I see, never mind then", "alright, never mind that then",
             "okay, I understand, let's forget that", "fair enough, let's leave it",
             "I see, that's a shame, never mind", "understood, let's drop that",
             "okay, that's fine, never mind"),
            ("{}.",)),
        correct=PhraseBank(
            ("oh, sorry, I made a typo, it is {value}", "sorry, my mistake, it is {value}",
             "oh, I mistyped that, it should be {value}", "apologies, the right one is {value}",
             "sorry about that, I meant {value}", "oops, I got it wrong, it is {value}"),
            ("{}.",)),
        self_correct=PhraseBank(
            ("sorry, I mean {value}", "sorry, I meant {value}", "sorry, that should be {value}",
             "I mean {value}, sorry", "wait, it is {value}"),
            ("{}.",)),
    ),
    IMPATIENT: Phrasing(
        confirm=PhraseBank(
            ("go ahead", "do it", "correct", "proceed", "confirmed", "that's right", "fine",
             "go", "all good", "right", "please do", "sure", "exactly", "that's it",
             "go for it", "agreed", "sounds right", "do that", "that one", "go on"),
            ("Yes, {}.", "{}, yes.", "Yes.")),
        ack=PhraseBank(
            ("fine", "got it", "noted", "right", "sure", "understood", "thanks", "good",
             "fair", "alright", "makes sense", "great", "clear", "cool", "perfect", "roger"),
            ("{}.", "Ok, {}.", "Ok.")),
        exhausted=PhraseBank(
            ("that's all I know", "nothing else", "that's it", "don't have more",
             "don't know more", "that's everything", "nothing more to add",
             "that's all, really", "all I have", "nothing further"),
            ("{}.", "Sorry, {}.", "{}, sorry.")),
        all_given=PhraseBank(
            ("all in my first message", "already gave you everything", "it's all above",
             "see my first message", "nothing beyond what I said", "I said it all already",
             "it's all up there", "everything's in my first message", "told you it all",
             "only what I wrote"),
            ("{}.", "Sorry, {}.", "{}, sorry.")),
        repeat=PhraseBank(
            ("already said", "said that", "again", "repeat", "as said", "told you",
             "once more", "same as before", "like I said", "already told you", "as before",
             "said it already"),
            ("{}: ",)),
        narrow=PhraseBank(("specifically", "details", "exactly", "precisely", "in short"),
                          ("{}: ",)),
        accept=PhraseBank(("fine, forget it", "ok, skip it", "fine, never mind",
                           "forget that then", "ok, drop it"), ("{}.",)),
        correct=PhraseBank(("typo, it's {value}", "my typo, {value}", "wrong one, it's {value}",
                            "typo, correct is {value}", "mistyped, {value}"), ("{}.",)),
        self_correct=PhraseBank(("rather {value}", "I mean {value}", "correction, {value}",
                                 "wait, {value}"), ("{}.",)),
    ),
    VERBOSE: Phrasing(
        confirm=PhraseBank(
            ("that all sounds right, please go ahead", "that's exactly what I was hoping for",
             "please go right ahead", "that all looks perfect to me",
             "that is just what I need", "you've got it exactly right",
             "I'm happy for you to go ahead", "everything you said sounds right to me",
             "that's lovely, please do it", "please go ahead, that would be wonderful",
             "that's the one, go ahead", "I'm quite sure, please go ahead",
             "I confirm, thank you so much", "that sounds perfect, go right ahead",
             "please do, I'd be so grateful"),
            ("Yes, {}.", "Oh yes, {}.", "Yes, absolutely, {}.", "Yes, yes, {}.")),
        ack=PhraseBank(
            ("thank you so much for explaining all of that",
             "that makes a lot of sense, thank you", "well, that's good to know",
             "I really appreciate you walking me through it",
             "you've been very patient with me, thank you", "that's a relief to hear",
             "how helpful, thank you", "I didn't know that, thanks for telling me",
             "that clears things up nicely", "I'm glad that's sorted out",
             "that's very kind of you to explain", "well, I never knew that",
             "thank you, that's really useful", "that's wonderful, thank you"),
            ("{}.", "Oh, {}.", "Ah, {}.")),
        exhausted=PhraseBank(
            ("I'm afraid that is really all the information I have",
             "I've racked my brain and that's everything I know",
             "I wish I could tell you more, but that's all I've got",
             "I honestly don't remember anything else",
             "that's every last detail I have, I'm afraid",
             "I can't think of anything else to add",
             "I've told you everything I can remember",
             "there's really nothing more I know about it"),
            ("{}.", "Hmm, {}.", "Oh dear, {}.", "Goodness, {}.")),
        all_given=PhraseBank(
            ("I think I put absolutely everything in my very first message",
             "I'm fairly sure I told you all of it right at the start",
             "I tried to give you every detail in my first message",
             "everything I know went into that first long message of mine",
             "I believe it was all in what I wrote at the beginning",
             "I did my best to put it all in my first message",
             "I'm sure it was all there in my first message",
             "I told you the whole story at the very start"),
            ("{}.", "Oh, {}.", "Hmm, {}.", "Oh dear, {}.")),
        repeat=PhraseBank(
            ("like I said before", "as I was saying earlier", "as I mentioned a bit ago",
             "just as I said a moment ago", "as I told you a little while ago",
             "like I mentioned before", "just to say it again", "as I explained earlier",
             "like I was saying", "to go over it once more", "as I said at the start",
             "again, just so we're clear"),
            ("{}: ",)),
        narrow=PhraseBank(
            ("let me be more specific", "let me explain properly", "so, to be more specific",
             "what I mean is this", "let me give you the details", "to put it more clearly"),
            ("{}: ",)),
        accept=PhraseBank(
            ("oh well, I had to ask, never mind then", "ah, that's a pity, but I understand",
             "oh, I didn't realise, never mind then", "fair enough, it was worth asking",
             "oh dear, well, never mind", "ah well, I thought I'd try, never mind"),
            ("{}.",)),
        correct=PhraseBank(
            ("oh dear, I'm so sorry, I must have made a typo, it is {value}",
             "oh, silly me, I typed it wrong, it is {value}",
             "goodness, I'm sorry, the right one is {value}",
             "oh, my fingers slipped, it should be {value}",
             "I'm so sorry, I got that wrong, it is {value}"),
            ("{}.",)),
        self_correct=PhraseBank(
            ("oh, silly me, I got that wrong, I mean {value}",
             "oh wait, I typed that wrong, it is {value}",
             "sorry, my fingers slipped, I mean {value}",
             "hang on, that's not right, it is {value}"),
            ("{}.",)),
    ),
}

# A verbose user's asides, said around its answers.
FILLERS = PhraseBank(
    ("I'm calling from the car, so bear with me",
     "my neighbour said it would be quicker to talk to someone than to use the website",
     "it has been quite a week, with the kids home from school and everything",
     "I tried the app earlier but it kept logging me out",
     "the weather here has been awful all week",
     "I just got back from walking the dog, so I'm a bit out of breath",
     "I'm writing all of this down on a sticky note so I don't forget",
     "my sister always tells me I should sort these things out sooner",
     "the cat has decided my keyboard is the best place for a nap",
     "I've been on hold with my bank all morning, so this is a nice change",
     "my coffee went cold while I was looking for my glasses",
     "there's a leaf blower going outside my window right now",
     "I only just figured out where the chat button was",
     "my daughter set this account up for me, so I'm still learning it",
     "the neighbours are having their kitchen redone, so it's a bit noisy here",
     "I've got a pot of soup on the stove, so I may wander off for a second",
     "my phone battery is running low, so fingers crossed",
     "I'm not great with these computer things",
     "the dog is barking at the postman again",
     "I spent half an hour looking for my reading glasses this morning",
     "my husband usually handles this sort of thing, but he's at work",
     "I've been meaning to get around to this for days",
     "it's my day off, and this is how I'm spending it",
     "the internet here keeps dropping out, so apologies if I go quiet",
     "I had a long night with the baby, so I'm running on very little sleep",
     "my friend had a similar problem last month and said you were very helpful",
     "I'm sitting out in the garden while the weather holds",
     "there's a thunderstorm rolling in, so the lights might flicker",
     "I'm doing three things at once here, as usual",
     "my hands are still cold from the walk home",
     "I've just put the kettle on",
     "the kids are arguing in the next room, so excuse the noise",
     "I keep getting emails I don't understand, so I thought I'd just ask",
     "my mother always said to sort out paperwork before lunch",
     "the printer decided to stop working this morning, of all days",
     "I've got a dentist appointment later, so I'd like to get this done",
     "my week has been one thing after another",
     "I'm on my lunch break, so I'm eating while I type",
     "it's been raining so much the garden has turned into a pond",
     "I nearly forgot about all this until I saw a note on the fridge",
     "my parrot keeps repeating everything I say out loud",
     "I'm still getting used to this new phone",
     "I've had a headache all day, so forgive me if I'm slow",
     "the traffic on the way home was unbelievable",
     "the heating has been playing up all week",
     "my grandson showed me how to use this chat",
     "I had to reset my password twice just to get in",
     "I'm sure this is simple for you, it just feels complicated to me",
     "I've been going through old papers all afternoon",
     "the washing machine is making a terrible noise in the background"),
    ("{}.", "By the way, {}.", "Sorry, {}.", "Oh, and {}.", "Honestly, {}.", "Anyway, {}.",
     "I should say, {}.", "Not that it matters, but {}."))

# An impatient user's reminders that it is in a hurry.
HURRIES = PhraseBank(
    ("I'm in a hurry", "let's be quick", "quickly, please", "I don't have long",
     "I'm short on time", "need this fast", "please be quick", "I'm between meetings",
     "can't chat long", "make it fast, please", "I've only got a minute", "in a rush here",
     "running late", "I have to run soon", "let's keep it short", "short on time today",
     "got to be quick", "can we speed this up"),
    ("{}.", "{}!"))


# -- what the user knows -------------------------------------------------------------------


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


# -- the LLM user simulator's prompt -------------------------------------------------------


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


# -- phrasing rules (the scripted user's) --------------------------------------------------

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
        extra = [line for line in _lines(ins.task_instructions)
                 if not line.lower().startswith(_META_STARTS)]
    if sentences:
        return _sentences(reason), known, _sentences(extra)
    return reason, known, extra


def _sentences(lines: list[str]) -> list[str]:
    return [s.strip() for line in lines for s in _SENTENCE.split(line) if len(s.strip()) > 1]


def _lines(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if len(line.strip()) > 1]
