"""What the runner calls a participant: its ``Turn`` (the message, and the model call that
produced it when there was one, for the journal and the accounting), the ``Participant``
protocol, and ``InProcess`` for the scripted participants, computed in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from writ_async.conversation.messages import AssistantMessage, Message, UserMessage
from writ_async.llm.client import CallResult


@dataclass(frozen=True, slots=True)
class Turn:
    message: AssistantMessage | UserMessage
    call: CallResult | None = None
    # calls made for this turn and thrown away (a tool call passed through as text,
    # retried), in order: journaled and counted before ``call``
    discarded: tuple[CallResult, ...] = ()


class Participant(Protocol):
    async def reply(self, messages: Sequence[Message]) -> Turn: ...


class InProcess:
    """A scripted participant (a pure function of the history), called in-process."""

    def __init__(self, reply: Callable[[Sequence[Message]], AssistantMessage | UserMessage]):
        self._reply = reply

    async def reply(self, messages: Sequence[Message]) -> Turn:
        message = self._reply(messages)
        return Turn(msgspec.structs.replace(message, turn_idx=len(messages)))
