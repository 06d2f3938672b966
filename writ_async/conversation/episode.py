"""One conversation as a pure state machine (sans-IO).

The episode is told what happened (the agent replied, the tools returned, the user
replied, something failed) and answers with what to do next: ask the agent, ask the
user, run these tool calls, or finish for a reason. It never awaits, reads a clock or
draws a random number, so it is tested without an event loop and replays exactly.

tau2-bench's protocol: the agent opens (a fixed greeting unless configured otherwise),
the user answers; an agent message with tool calls (with or without text) is a tool call
and its calls run in order before the agent speaks again; the user ends the episode with
``###STOP###``, ``###TRANSFER###`` or ``###OUT-OF-SCOPE###``. The step limit counts
messages and the error limit counts every tool error of the episode; both are checked
only when no tool result is pending.

The episode owns its messages: it stamps each one's ``turn_idx`` (its index in the
conversation) and builds the tool messages from the results it is given. A tool call
whose arguments were not a JSON object the run can hold (``ToolCall.raw_arguments``)
never runs: ``refusal`` is its result, an error that tells the model why.

Transitions (phase, event -> action):

    start                  -> AskUser (after the greeting) | AskAgent (no greeting)
    AGENT,  agent text     -> AskUser | Finished(agent_stop)
    AGENT,  agent tools    -> RunTools
    TOOLS,  tool results   -> AskAgent
    USER,   user text      -> AskAgent | Finished(user_stop)
    any,    failure        -> Finished(agent_error | user_error | infrastructure_error |
                                       context_window_exceeded | timeout)
    and before any AskAgent/AskUser: Finished(max_steps) or Finished(too_many_errors).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, TypeVar

import msgspec

from writ_async.conversation.messages import (
    STOP,
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
    is_user_stop,
)
from writ_async.environment.tau2.validation import arguments_problem
from writ_async.errors import TOOL_CALL_PARSE_PROBLEMS, ProtocolError

_Said = TypeVar("_Said", AssistantMessage, UserMessage)

DEFAULT_GREETING = "Hi! How can I help you today?"


class Termination(StrEnum):
    USER_STOP = "user_stop"
    AGENT_STOP = "agent_stop"
    MAX_STEPS = "max_steps"
    TIMEOUT = "timeout"
    TOO_MANY_ERRORS = "too_many_errors"
    AGENT_ERROR = "agent_error"
    USER_ERROR = "user_error"
    INFRASTRUCTURE_ERROR = "infrastructure_error"
    CONTEXT_WINDOW_EXCEEDED = "context_window_exceeded"


FAILURES = frozenset({
    Termination.TIMEOUT, Termination.AGENT_ERROR, Termination.USER_ERROR,
    Termination.INFRASTRUCTURE_ERROR, Termination.CONTEXT_WINDOW_EXCEEDED,
})


class Phase(StrEnum):
    NEW = "new"
    AGENT = "agent"  # waiting for the agent
    TOOLS = "tools"  # waiting for tool results
    USER = "user"  # waiting for the user
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Limits:
    max_steps: int = 200
    max_errors: int = 10


@dataclass(frozen=True, slots=True)
class AskAgent:
    pass


@dataclass(frozen=True, slots=True)
class AskUser:
    pass


@dataclass(frozen=True, slots=True)
class RunTools:
    calls: tuple[ToolCall, ...]


class ToolOutcome(Protocol):
    """What one tool call gave: ``tools.ToolResult`` or a ``Refused``."""

    @property
    def output(self) -> str: ...

    @property
    def error(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Refused:
    """The result of a call the episode will not run (see ``refusal``)."""

    output: str
    error: bool = True


# How the result of a call whose arguments the run cannot hold begins (benchmarks count
# such calls by it).
ARGUMENTS_REFUSED = "Error: the arguments of "


def refusal(call: ToolCall) -> Refused | None:
    """The error result of ``call`` if it must not run, else None: its arguments were not
    a JSON object the run can hold (NaN, 1e400, an integer beyond 64 bits, nesting too
    deep), or the server passed the call through as text (``call.parse_failure``). The
    model is told why, as a tool error (which counts toward the error limit)."""
    raw = call.raw_arguments
    if raw is None:
        return None
    if call.parse_failure:
        problem = TOOL_CALL_PARSE_PROBLEMS.get(call.parse_failure, call.parse_failure)
        return Refused(f"Error: {problem}; it was not run. Make the call again as a tool "
                       f"call: {raw[:200]!r}")
    return Refused(f"{ARGUMENTS_REFUSED}{call.name} {arguments_problem(raw)}: "
                   f"{raw[:200]!r}")


@dataclass(frozen=True, slots=True)
class Finished:
    reason: Termination


Action = AskAgent | AskUser | RunTools | Finished


class Episode:
    """The state of one conversation; see the module docstring for the transitions."""

    __slots__ = ("errors", "greeting", "limits", "messages", "phase", "termination")

    def __init__(self, limits: Limits | None = None,
                 greeting: str | None = DEFAULT_GREETING) -> None:
        self.limits = limits or Limits()
        self.greeting = greeting
        self.messages: list[Message] = []
        self.phase = Phase.NEW
        self.errors = 0
        self.termination: Termination | None = None

    def __repr__(self) -> str:
        return (f"<Episode phase={self.phase} messages={len(self.messages)} "
                f"errors={self.errors} termination={self.termination}>")

    # -- events --------------------------------------------------------------------------

    def start(self) -> Action:
        self._expect(Phase.NEW)
        if self.greeting is None:
            self.phase = Phase.AGENT
            return AskAgent()
        self.messages.append(AssistantMessage(content=self.greeting, turn_idx=0))
        return self._ask(Phase.USER)

    def agent_replied(self, message: AssistantMessage) -> Action:
        self._expect(Phase.AGENT)
        message = self._add(message)
        if message.is_tool_call:
            self.phase = Phase.TOOLS
            assert message.tool_calls is not None
            return RunTools(message.tool_calls)
        if message.content and STOP in message.content:
            return self._finish(Termination.AGENT_STOP)
        return self._ask(Phase.USER)

    def tools_returned(self, results: Sequence[ToolOutcome]) -> Action:
        """The results of the pending calls, one per call in order (a refused call's is
        its ``refusal``); the episode makes them its tool messages."""
        self._expect(Phase.TOOLS)
        calls = self._pending_calls()
        if len(results) != len(calls):
            raise ProtocolError(f"{len(calls)} tool calls are pending, "
                                f"{len(results)} results were given")
        messages = [self.tool_message(i, r) for i, r in enumerate(results)]
        self.messages.extend(messages)
        self.errors += sum(1 for m in messages if m.error)
        return self._ask(Phase.AGENT)

    def user_replied(self, message: UserMessage) -> Action:
        self._expect(Phase.USER)
        message = self._add(message)
        if is_user_stop(message.content):
            return self._finish(Termination.USER_STOP)
        return self._ask(Phase.AGENT)

    def failed(self, reason: Termination) -> Finished:
        """A participant or the infrastructure failed; the episode ends for ``reason``."""
        if reason not in FAILURES:
            raise ProtocolError(f"{reason} is not a failure")
        if self.phase is Phase.DONE:
            raise ProtocolError("the episode has already finished")
        return self._finish(reason)

    # -- helpers -------------------------------------------------------------------------

    @property
    def next_turn(self) -> int:
        return len(self.messages)

    def tool_message(self, index: int, result: ToolOutcome) -> ToolMessage:
        """The message that ``result`` of pending call ``index`` becomes (nothing is
        added: ``tools_returned`` adds the block's)."""
        self._expect(Phase.TOOLS)
        call = self._pending_calls()[index]
        return ToolMessage(id=call.id, content=result.output, error=result.error,
                           requestor=call.requestor, turn_idx=len(self.messages) + index)

    def _pending_calls(self) -> tuple[ToolCall, ...]:
        last = self.messages[-1]
        assert isinstance(last, AssistantMessage) and last.tool_calls is not None
        return last.tool_calls

    def _add(self, message: _Said) -> _Said:
        """Append ``message`` as the next turn: the participants' views of the history do
        not know its full length, so the index is the episode's to set."""
        turn = len(self.messages)
        if message.turn_idx != turn:
            message = msgspec.structs.replace(message, turn_idx=turn)
        self.messages.append(message)
        return message

    def _ask(self, phase: Phase) -> Action:
        if len(self.messages) >= self.limits.max_steps:
            return self._finish(Termination.MAX_STEPS)
        if self.errors >= self.limits.max_errors:
            return self._finish(Termination.TOO_MANY_ERRORS)
        self.phase = phase
        return AskAgent() if phase is Phase.AGENT else AskUser()

    def _finish(self, reason: Termination) -> Finished:
        self.phase = Phase.DONE
        self.termination = reason
        return Finished(reason)

    def _expect(self, phase: Phase) -> None:
        if self.phase is not phase:
            raise ProtocolError(f"expected phase {phase}, episode is in {self.phase}")
