"""The scripted agent's wording: a seeded phrase bank composed from slots, and what a
domain contributes (how to describe its writes, their outcomes and its reads).

Pure data and pure functions. A sentence is composed from parts, each a fixed string or a
tuple of alternatives (``""`` leaves the part out), so a handful of slots gives hundreds of
sentences; every choice is drawn from the ``random.Random`` the caller passes (the agent
keys it on the seed and the history length), so the same seed gives the same bytes.

The user simulator must still tell what the agent asks of it from the text alone, and the
agent must tell its detours from its plan steps by their first words. So the bank keeps
its intents recognisable: every closing line holds "anything else", every confirmation
holds one of ``CONFIRM_CUES``, and every detour opens with one of ``DETOUR_LEADS``
(``REASK_LEADS``, ``NOT_FOUND_LEADS``, ``REFUSAL_LEADS``), which no plan message opens
with. The fixed wording holds no digit, so a number the agent states always comes from
the task or the tool results (see ``scripted.mistakes.reportable_values``).
"""

from __future__ import annotations

import json
import random
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date as _date
from itertools import product
from typing import Any

Part = str | tuple[str, ...]

# -- composing -----------------------------------------------------------------------------

_SPACE_BEFORE = re.compile(r"\s+([,;:.?!])")
_SPACES = re.compile(r"\s{2,}")


def compose(rng: random.Random, *parts: Part, **fields: Any) -> str:
    """One sentence: an alternative drawn from each part (in order), the chosen templates
    filled with ``fields``, joined by spaces and tidied, its first letter capitalised."""
    return capital(clause(rng, *parts, **fields))


def clause(rng: random.Random, *parts: Part, **fields: Any) -> str:
    """As ``compose``, for a piece of a sentence (not capitalised)."""
    chosen = []
    for part in parts:
        text = part if isinstance(part, str) else rng.choice(part)
        if text:
            # Only the bank's templates are formatted: data never is (it may hold braces).
            chosen.append(text.format(**fields) if fields else text)
    return tidy(" ".join(chosen))


def extend(text: str, rng: random.Random, *parts: Part, **fields: Any) -> str:
    """``text`` followed by a clause (which may open with punctuation or a dash)."""
    return tidy(text + " " + clause(rng, *parts, **fields))


def tidy(text: str) -> str:
    return _SPACES.sub(" ", _SPACE_BEFORE.sub(r"\1", text)).strip()


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def variants(*parts: Part) -> Iterator[str]:
    """Every sentence ``compose`` can make from ``parts`` (templates unfilled)."""
    options = [(p,) if isinstance(p, str) else p for p in parts]
    for combo in product(*options):
        yield capital(tidy(" ".join(c for c in combo if c)))


def alternatives(*parts: Part) -> list[str]:
    """Every string of ``parts`` (for checks on the fixed wording)."""
    return [s for p in parts for s in ((p,) if isinstance(p, str) else p) if s]


class Fresh(random.Random):
    """A seeded rng whose ``choice`` among strings prefers those not in ``said`` (what the
    speaker said so far, lower-cased): a phrase is not repeated within a conversation while
    an unused alternative is left. Still a pure function of the seed and ``said``."""

    def __init__(self, seed: str, said: str) -> None:
        super().__init__(seed)
        self.said = said

    def choice(self, seq: Sequence[Any]) -> Any:
        fresh = [s for s in seq if isinstance(s, str) and (not s or s.lower() not in self.said)]
        return super().choice(fresh if fresh and len(fresh) < len(seq) else seq)


# -- formatting values as a person says them -----------------------------------------------

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def ordinal(number: int) -> str:
    """14 -> '14th'."""
    ending = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(
        number % 10, "th")
    return f"{number}{ending}"


def day(date: Any, rng: random.Random | None = None) -> str:
    """'2024-05-16' -> 'May 16' (with ``rng``, also 'Thursday, May 16', '16 May' or 'the
    16th of May'; and once the speaker has named that month, as ``Fresh.said`` shows,
    'the 16th' or 'Thursday the 16th', which are then unambiguous); anything else as it
    is."""
    text = str(date)
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text)
    if not match or not 1 <= int(match[2]) <= 12 or not 1 <= int(match[3]) <= 31:
        return text
    month, number = _MONTHS[int(match[2]) - 1], int(match[3])
    style = rng.randrange(7) if rng is not None else 0
    try:
        weekday = _date(int(match[1]), int(match[2]), number).strftime("%A")
    except ValueError:
        return f"{month} {number}"
    if style >= 5 and not _month_said(month, getattr(rng, "said", "")):
        style -= 4  # the month is not known yet: a form that names it
    if style == 1:
        return f"{number} {month}"
    if style == 2:
        return f"the {ordinal(number)} of {month}"
    if style == 3:
        return f"{weekday}, {month} {number}"
    if style == 5:
        return f"the {ordinal(number)}"
    if style == 6:
        return f"{weekday} the {ordinal(number)}"
    return f"{month} {number}"


def _month_said(month: str, said: str) -> bool:
    """Whether ``said`` (lower-cased) names ``month`` as a date's month (not 'may I')."""
    m = month.lower()
    return re.search(rf"\b{m} \d{{1,2}}\b|\bof {m}\b|\d {m}\b", said) is not None


def clock(time: Any, rng: random.Random, *, twelve: bool | None = None) -> str:
    """'17:30:00' -> '17:30' or '5:30 PM'; a next-day mark ('+1') is kept as words.
    ``twelve`` fixes the style (``Seen.twelve_hour``: one per conversation); None draws it."""
    text = str(time)
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::\d{2})?(\+\d)?", text)
    if not match:
        return text
    hour, minute = int(match[1]), match[2]
    later = " the next day" if match[3] else ""
    if twelve is None:
        twelve = rng.random() >= 0.5
    if not twelve:
        return f"{hour:02d}:{minute}{later}"
    suffix = "AM" if hour < 12 else "PM"
    return f"{(hour % 12) or 12}:{minute} {suffix}{later}"


def money(amount: Any) -> str:
    """A dollar amount: whole numbers without cents, others with two decimals."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        return f"${amount}"
    if float(amount).is_integer():
        return f"${int(amount)}"
    return f"${amount:.2f}"


def words(name: Any) -> str:
    """'basic_economy' -> 'basic economy'."""
    return str(name).replace("_", " ")


def listing(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


_NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def number(n: int) -> str:
    """A small count in words ('no' for 0), larger ones in digits."""
    return _NUMBERS[n] if 0 <= n < len(_NUMBERS) else str(n)


def count(n: int, one: str, many: str | None = None) -> str:
    return f"{number(n)} {one if n == 1 else (many or one + 's')}"


def person(record: Any) -> str:
    """'First Last' from a record with first_name / last_name (or a name dict)."""
    if not isinstance(record, Mapping):
        return ""
    name = record.get("name") if isinstance(record.get("name"), Mapping) else record
    first, last = name.get("first_name", ""), name.get("last_name", "")
    return f"{first} {last}".strip()


# -- what the agent has seen ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One tool call of the conversation and its result: ``output`` is the decoded JSON
    (None when the result is not JSON), ``error`` whether it is an error text (tau2-bench's
    start with "Error")."""

    name: str
    arguments: Mapping[str, Any]
    text: str
    output: Any
    error: bool


def decode(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


class Seen:
    """The tool results in front of the agent, in order, with the records they showed
    (users, reservations, orders by id) for describing what a write will do, and whether
    the user may be addressed by first name (not once they asked to keep it formal).
    ``told``: what the agent said just before the writes it is about to report (their
    confirmation), so that an outcome tells only what is new."""

    __slots__ = ("by_id", "first_name_ok", "records", "told")

    def __init__(self, records: Sequence[Record], *, first_name_ok: bool = True,
                 told: str = "") -> None:
        self.records = list(records)
        self.first_name_ok = first_name_ok
        self.told = told
        self.by_id: dict[str, dict[str, Any]] = {}
        for r in self.records:
            out = r.output
            if r.error or not isinstance(out, dict):
                continue
            for key in ("reservation_id", "order_id", "user_id", "product_id", "item_id"):
                value = out.get(key)
                # Users appear inside orders (user_id) too: the full record wins.
                if isinstance(value, str) and (key != "user_id" or "name" in out):
                    self.by_id[value] = out
                    break

    def get(self, key: Any) -> dict[str, Any] | None:
        return self.by_id.get(key) if isinstance(key, str) else None

    @property
    def twelve_hour(self) -> bool:
        """Whether this conversation's agent writes times as '5:30 PM' (else '17:30'): a
        person keeps to one style, so it is drawn from the conversation's first tool
        result, the same for every message of it, with no state to carry."""
        first = self.records[0].text if self.records else ""
        return zlib.crc32(first.encode("utf-8")) % 2 == 1

    def user(self) -> dict[str, Any] | None:
        """The last user profile seen (it carries payment methods)."""
        for r in reversed(self.records):
            out = r.output
            if not r.error and isinstance(out, dict) and "payment_methods" in out:
                return out
        return None

    def first_name(self, record: Any) -> str:
        """The first name to address the user by, from their profile; "" when they asked
        not to be called by it."""
        return person(record).split(" ")[0] if self.first_name_ok else ""

    def before(self, key: str, record: Record) -> dict[str, Any] | None:
        """The last state of record ``key`` shown before ``record``'s result."""
        found = None
        for r in self.records:
            if r is record:
                break
            out = r.output
            if not r.error and isinstance(out, dict) and key in out.values():
                found = out
        return found


class DomainPhrases:
    """What a domain says about its tools. Every method may return None (the agent then
    falls back on generic wording); each draws its choices from ``rng``."""

    def describe(self, name: str, args: Mapping[str, Any], seen: Seen,
                 rng: random.Random) -> str | None:
        """A write, about to be made, as a verb phrase: 'cancel reservation X (...)'."""
        return None

    def outcome(self, record: Record, seen: Seen, rng: random.Random) -> str | None:
        """What a successful write did, as a clause: 'reservation X is cancelled ...'."""
        return None

    def summary(self, record: Record, seen: Seen, rng: random.Random,
                about: Mapping[str, Any] | None = None) -> str | None:
        """What a read showed, as one sentence; ``about``: the arguments of the write it
        is evidence for, if any (a search's prices are told in that write's cabin)."""
        return None

    def survey(self, records: Sequence[Record], seen: Seen, rng: random.Random,
               about: Mapping[str, Any] | None = None) -> str | None:
        """What several reads of one tool showed together (the agent went through the
        user's reservations, or compared searches), as one sentence naming what it saw."""
        return None

    def amounts(self, record: Record, seen: Seen) -> list[tuple[float, str]]:
        """Money a successful write moved: (amount, what it is), a refund negative; what
        it is may hold alternatives separated by '|'."""
        return []

    def payment(self, method_id: Any, seen: Seen, rng: random.Random | None = None) -> str:
        """A payment method as a person names it: 'your Visa credit card ending 7447'."""
        user = seen.user()
        methods = user.get("payment_methods") if user else None
        method = methods.get(method_id) if isinstance(methods, Mapping) else None
        text = str(method_id)
        source = method.get("source") if isinstance(method, Mapping) else text.rsplit("_", 1)[0]
        tail = text.rsplit("_", 1)[-1][-4:]
        def pick(*options: str) -> str:
            return rng.choice(options).replace("  ", " ") if rng is not None else options[0]

        if source == "credit_card":
            brand = method.get("brand") if isinstance(method, Mapping) else None
            last = method.get("last_four") if isinstance(method, Mapping) else None
            brand = str(brand).title() if brand else ""
            if not last:
                return pick(f"the {brand} credit card on file", f"your {brand} card on file")
            return pick(f"your {brand} credit card ending {last}",
                        f"the {brand} card ending in {last}", f"your {brand} card ({last})",
                        f"the card that ends in {last}", f"your {brand} ending {last}")
        if source == "gift_card":
            return pick(f"your gift card ending {tail}", f"the gift card ending in {tail}",
                        "your gift card", f"gift card {tail}")
        if source == "certificate":
            worth = method.get("amount") if isinstance(method, Mapping) else None
            return f"your {money(worth)} travel certificate" if worth else "your certificate"
        if source == "paypal":
            return pick("your PayPal account", "PayPal", "your PayPal")
        return text


# -- the agent's generic wording -----------------------------------------------------------

# Asking for the user's identity (and the request), one sentence.
ASK_OPENERS = ("Happy to help,", "Sure,", "Of course,", "Certainly,", "I'd be glad to help,",
               "Absolutely,", "I can help with that,", "Glad to look into this,",
               "No problem,", "Sure thing,", "I can take care of that,", "Gladly,",
               "I'm on it,", "Let's sort this out,")
ASK_VERBS = ("could you give me", "could you share", "may I have", "can you tell me",
             "would you mind giving me", "could you send me", "can I get", "would you share",
             "could you provide")
ASK_THEN = ("to get started", "first", "so I can pull you up", "to begin with",
            "so I can look you up", "before we start", "")
ASK_DETAILS = ("and a few words about your request", "and what you would like done",
               "and the details of your request", "and what I can do for you",
               "along with what you need")
# Asking for named pieces the user has not given yet (identity known or not needed).
ASK_MORE_OPENERS = ("Thanks,", "Thank you,", "Got it,", "Great,", "Okay,", "Perfect,",
                    "Thanks for that,", "Alright,")
ASK_MORE = ("could you also tell me", "could you also give me", "I'll also need",
            "can you also share", "may I also have", "would you also tell me")

# Confirmation: one sentence; prefix form ("Shall I ...?") or lead + tail form.
CONFIRM_STEMS = ("Shall I go ahead and", "Would you like me to", "Do you want me to",
                 "Should I go ahead and", "Can I go ahead and", "Are you happy for me to",
                 "Is it okay if I", "Would you like me to go ahead and", "Shall I",
                 "Do I have your go-ahead to", "Are you okay with me going ahead to",
                 "May I go ahead and", "Is it alright if I", "Just say the word: shall I")
CONFIRM_LEADS = ("Here is what I'll do:", "Here's the plan:", "To be sure we agree, I'll",
                 "Just to check before I do it, I'll", "So, I'm about to",
                 "Before I make the change, I'll", "This is what I have ready: I'll",
                 "Next I'll", "I'm ready to", "The next step is to", "What I'd do now is",
                 "My plan is to", "With that, I can", "I'd now", "Here's the change: I'll")
CONFIRM_TAILS = ("— shall I go ahead (yes/no)?", "— do you confirm (yes/no)?",
                 "— is that okay with you (yes/no)?", "— should I proceed (yes/no)?",
                 "— can you confirm with a yes?", "— may I proceed?",
                 "— is that right, and shall I go ahead?",
                 "— please say yes if I should go ahead.", "— does that work for you?",
                 "— all good to go ahead?", "— happy for me to do that?",
                 "— want me to go ahead?", "— is that what you'd like?",
                 "— okay to go ahead?")
CONFIRM_YESNO = (" (yes/no)", "", "", "", "", "")
# How the user (and a test) recognises a confirmation request: each confirmation holds one.
CONFIRM_CUES = tuple(s.lower() for s in (*CONFIRM_STEMS, *(t.lstrip("— ") for t in
                                                             CONFIRM_TAILS)))

DECLINED = (("Understood,", "Alright,", "Okay,", "No problem,", "Sure,", "Fair enough,"),
            ("I won't make that change.", "I'll leave it as it is.", "I'll hold off on that.",
             "nothing has been changed.", "I haven't changed anything.",
             "I'll leave that untouched."))

# Opening an outcome: the clause after it comes from the domain.
OUTCOME_LEADS = ("Done —", "All set:", "That's done:", "It went through:", "Good news:",
                 "Okay,", "That's taken care of:", "Great,", "Alright,", "Success —",
                 "Finished:", "That worked:", "Perfect —", "There we go:", "Sorted:",
                 "Right,", "Excellent,", "That's complete:",
                 "The system accepted it:", "Lovely,", "So,")
OUTCOME_GENERIC = ("Done, that change is in place.", "That change has gone through.",
                   "The change is now saved.", "All set, the change is made.",
                   "That has been updated.", "That's been taken care of.")
OUTCOME_FAILED = (("That didn't go through:", "The system turned that down:",
                   "That change was rejected:", "It did not work:",
                   "The request came back with a problem:"),
                  ("{reason}.",))

# Reporting a value the user asked about, with its label.
VALUE_OPENERS = ("To answer your question,", "As you asked,", "For your reference,",
                 "Just so you know,", "Also,", "", "", "")
VALUE_MORE = ("Also,", "And", "", "", "In addition,", "On top of that,", "As for the rest,",
              "Then,", "Next,")
VALUE_FORMS_MONEY = ("{label} is {value}.", "{label} comes to {value}.",
                     "{label} works out to {value}.", "{label} is exactly {value}.",
                     "{label} amounts to {value}.", "{label} was {value}.",
                     "{label} came to {value}.",
                     "{label} ends up at {value}.", "{label} stands at {value}.")
VALUE_FORMS = ("{label} is {value}.", "{label} reads {value}.",
               "{label} shows as {value}.", "{label} on file is {value}.")
VALUE_UNLABELLED = ("the figure you asked about is {value}.",
                    "the number you wanted is {value}.", "the answer to that is {value}.",
                    "what you asked about comes to {value}.", "it comes to {value}.",
                    "the value in question is {value}.")
DONE = (("That covers", "That takes care of", "I've handled", "We've finished",
         "That wraps up", "I've completed"),
        ("everything you asked for.", "all of your requests.", "what you needed today.",
         "each of your requests.", "the whole list."))
NOTHING = (("I've looked into your request", "I've gone through your request",
            "I've checked on that for you", "I've reviewed what you asked about",
            "I've had a look at this"),
           (".", "— that's all I can see on my side.", "and there's nothing more to do.",
            "for you."))

# The closing line: every one holds "anything else" (the user's cue to end).
CLOSING_PREFIXES = ("", "", "", "", "", "Before you go,", "While I have you,", "Lastly,",
                    "And", "So,", "Now,", "Otherwise,")
CLOSERS = ("is there anything else I can help you with?",
           "is there anything else I can do for you?", "can I help with anything else?",
           "is there anything else you need today?", "anything else I can do for you?",
           "is there anything else you'd like me to look at?",
           "do you need help with anything else?",
           "is there anything else on your list?", "anything else I can help with today?",
           "can I do anything else for you?", "is there anything else you need from me?",
           "would you like help with anything else?",
           "is there anything else I should take care of?",
           "anything else you'd like to sort out today?",
           "is there anything else I can check for you?",
           "anything else I can assist with?",
           "is there anything else I can sort out for you?",
           "anything else you'd like to go over?", "can I take care of anything else?",
           "is there anything else you wanted to ask?",
           "shall we look at anything else?", "anything else on your mind?",
           "is there anything else I can help with right now?",
           "do you have anything else for me today?",
           "is there anything else I can do while you're here?")

# Detours: each opens with a lead of its own set, which no plan message opens with.
REASK_LEADS = ("I still need", "I'll still need", "One more thing, I need",
               "Before I go on, I need", "At this point I'll need", "I'm still missing",
               "I just need", "I'm going to need", "Sorry to ask again, I need",
               "Now I need")
REASK_TAILS = ("— could you tell me?", "— could you share it?",
               "before I can continue — could you give it to me?", "to carry on — what is it?",
               "— would you tell me?", "to go further — could you share it?",
               "— what should I put down?", "— can you let me know?",
               "first — would you mind telling me?", "so I can finish this — what is it?",
               "— could you send it over?",
               "before I can do anything with this request — what is it?",
               "— would you mind sharing it?", "to get this done — could you tell me?")
# The same tails, one for one, for what is asked in the plural ("the airports", two
# things at once): same length, so the seeded draw is the same either way.
REASK_TAILS_PLURAL = ("— could you tell me?", "— could you share them?",
                      "before I can continue — could you give them to me?",
                      "to carry on — what are they?", "— would you tell me?",
                      "to go further — could you share them?", "— what should I put down?",
                      "— can you let me know?", "first — would you mind telling me?",
                      "so I can finish this — what are they?", "— could you send them over?",
                      "before I can do anything with this request — what are they?",
                      "— would you mind sharing them?", "to get this done — could you tell me?")
REASK_MIDDLES = ("", "", "from you", "for this step", "for the next part", "on this one",
                 "here")
REASK_NOTED = (("I've noted", "I have", "I've written down", "I'm keeping", "Thanks, I've got",
                "I'll hold on to", "I've made a note of"),
               "{value}",
               ("for later.", "and will come back to it.", "for after this one.",
                "for the next step.", "— we'll get to it shortly.", "and will handle it in turn.",
                "as well, to do afterwards."))
NOT_FOUND_LEADS = ("I could not find", "I couldn't find", "I wasn't able to find",
                   "I can't find", "I couldn't locate", "I was unable to find",
                   "Nothing came up for", "There's no record of")
NOT_FOUND_WHERE = ("in our records", "in our system", "on our side", "")
NOT_FOUND_TAILS = ("— could you double-check it?", "— could you check it again?",
                   "— could you read it out once more?",
                   "— is there a chance it was mistyped?",
                   "— would you double-check it for me?")
REFUSAL_LEADS = ("I'm sorry, but", "I'm afraid", "Unfortunately,", "Sorry, but",
                 "I apologize, but", "Regrettably,")
REFUSAL_BODIES = ("I can't do that", "that isn't something I can do",
                  "I'm not able to help with that", "that's not possible",
                  "I can't make that happen")
REFUSAL_REASONS = (": {reason}.", "— {reason}.", "under our policy: {reason}.",
                   "because {reason}.", "; our rules say {reason}.", "since {reason}.")
# A refused request told inside a plan message: never opening with a detour lead.
REFUSED_FORMS = ("As for your request to {what}, I can't do it: {why}.",
                 "About your request to {what}: that isn't possible, since {why}.",
                 "I've checked, and I'm not able to {what}: {why}.",
                 "Looking at the record, I can't {what}, because {why}.",
                 "There's no way for me to {what}: {why}.",
                 "I have to turn down the request to {what} — {why}.",
                 "What I can't do is {what}: {why}.")
DETOUR_LEADS = (*REASK_LEADS, *NOT_FOUND_LEADS, *REFUSAL_LEADS)


def fixed_wording() -> list[str]:
    """Every fixed string of the generic bank (the domain wording is built from data)."""
    parts: list[Part] = [ASK_OPENERS, ASK_VERBS, ASK_THEN, ASK_DETAILS, ASK_MORE_OPENERS,
                         ASK_MORE, CONFIRM_STEMS, CONFIRM_LEADS, CONFIRM_TAILS,
                         *DECLINED, OUTCOME_LEADS, OUTCOME_GENERIC, *OUTCOME_FAILED,
                         VALUE_OPENERS, VALUE_MORE, VALUE_FORMS_MONEY, VALUE_FORMS,
                         VALUE_UNLABELLED, *DONE, *NOTHING,
                         CLOSING_PREFIXES, CLOSERS, REASK_LEADS, REASK_MIDDLES, REASK_TAILS,
                         REASK_TAILS_PLURAL,
                         *REASK_NOTED, NOT_FOUND_LEADS, NOT_FOUND_WHERE, NOT_FOUND_TAILS,
                         REFUSAL_LEADS, REFUSAL_BODIES, REFUSAL_REASONS, REFUSED_FORMS]
    return [s.replace("{label}", "").replace("{value}", "").replace("{reason}", "")
            .replace("{what}", "").replace("{why}", "")
            for s in alternatives(*parts)]


def asking_words() -> frozenset[str]:
    """The words (3+ letters) of the bank's questions for facts: none of them says which
    fact is wanted, so a user simulator matching a question to its facts skips them."""
    parts: list[Part] = [ASK_OPENERS, ASK_VERBS, ASK_THEN, ASK_DETAILS, ASK_MORE_OPENERS,
                         ASK_MORE, REASK_LEADS, REASK_MIDDLES, REASK_TAILS, REASK_TAILS_PLURAL,
                         NOT_FOUND_LEADS,
                         NOT_FOUND_WHERE, NOT_FOUND_TAILS]
    return frozenset(w for text in alternatives(*parts)
                     for w in re.findall(r"[a-z]{3,}", text.lower()))
