"""The sentences both scripted participants share, and how the user recognises the agent's
intent from its text alone (``intent``): the marker lines (``ASK_MARKER``, ``CONFIRM_LINE``,
``CLOSING_LINE``, ``TRANSFER_LINE``) and the looser phrasing an LLM agent would use.
"""

from __future__ import annotations

from writ_async.conversation.episode import DEFAULT_GREETING
from writ_async.participants import phrasebank as pb

# Canonical wording, kept for LLM agents and older transcripts; the scripted agent's own
# wording is composed from the phrase bank (``writ_async.participants.phrasebank``) and
# recognised by ``is_confirmation`` / ``is_closing`` / ``intent_of``.
ASK_MARKER = "Could you please give me"


CONFIRM_LINE = "Do you confirm (yes/no)?"


CLOSING_LINE = "Is there anything else I can help you with?"


# tau2-bench's policies (airline, retail) prescribe this exact line after the tool call.
TRANSFER_LINE = "YOU ARE BEING TRANSFERRED TO A HUMAN AGENT. PLEASE HOLD ON."


TRANSFER_TOOL = "transfer_to_human_agents"


# What the agent asks for when the user's identity lookup (``Domain.identity_lookups``:
# the lookups whose arguments identify the user, asked for first) names nothing else.
IDENTITY_DEFAULT = "your user id"


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
# among communicate strings that no fixed phrase happens to contain (``reportable_values``).
# The domain's identity asks are added per agent (``reportable_values``).
FIXED_TEXT = (*pb.fixed_wording(), IDENTITY_DEFAULT, *_ASK_FOR.values(), ASK_MARKER,
               CONFIRM_LINE, CLOSING_LINE, TRANSFER_LINE, DEFAULT_GREETING)


def is_plural(ask: str) -> bool:
    """Whether an ask names things in the plural ("the airports", "the new item ids"), so
    a question about them says "them", not "it"; "the address", "the status" are one."""
    last = ask.rsplit(" ", 1)[-1]
    return last.endswith("s") and not last.endswith(("ss", "us", "is"))


def ask_for(key: str) -> str:
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


def intent_of(text: str) -> str:
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
