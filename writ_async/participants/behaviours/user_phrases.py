"""The scripted user's stock phrases, by style (plain, impatient, verbose): banks of
sentences composed of slots, none said twice in one conversation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass
from writ_async.participants.behaviours.catalogue import IMPATIENT, VERBOSE


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
