"""The one driver of the sans-IO episode: ask the participants, run the tools, until it ends.

The runner (which journals every step), the load test's agent traffic and the scripted
in-process episode all carry an ``Episode`` through ``drive``; what differs between them
is what they do at each step (``Hooks``) and how a tool call runs (``execute``). The
decisions stay in ``writ_async.conversation.episode``: which calls never run (``episode.refusal``),
the messages' ``turn_idx``, the tool messages.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from writ_async.conversation.episode import (
    Action,
    AskAgent,
    Episode,
    Finished,
    RunTools,
    ToolOutcome,
    refusal,
)
from writ_async.conversation.messages import AssistantMessage, ToolCall, ToolMessage, UserMessage
from writ_async.errors import ParticipantError, ProtocolError
from writ_async.participants.base import Participant, Turn

# How one tool call runs (on the episode's environment): ``Environment.call`` on its parts.
Execute = Callable[[ToolCall], ToolOutcome]

_T = TypeVar("_T")


class _Calls(Protocol):
    def call(self, name: Any, arguments: Mapping[str, Any]) -> ToolOutcome: ...


def on(env: _Calls) -> Execute:
    """Tool calls run on ``env`` (a ``domain.Environment``)."""
    return lambda call: env.call(call.name, call.arguments)


class Hooks:
    """What a caller does at each step of ``drive``; these do nothing."""

    def replied(self, role: str, turn: Turn, message: AssistantMessage | UserMessage) -> None:
        """A participant (``role``: "agent" or "user") took ``turn``; ``message`` is it
        as the episode holds it (its ``turn_idx`` set)."""

    def tool_ran(self, index: int, call: ToolCall, result: ToolOutcome) -> None:
        """Call ``index`` of the block gave ``result`` (a refused call's too), before the
        next call runs: the environment's state is the one right after it."""

    def tools_added(self, messages: Sequence[ToolMessage]) -> None:
        """The block's results, as the episode's tool messages."""


_NO_HOOKS = Hooks()


def run_tools(episode: Episode, action: RunTools, execute: Execute,
              hooks: Hooks = _NO_HOOKS) -> Action:
    """Run one block of tool calls in order (a call the episode refuses never runs: its
    refusal is its result), give the results to the episode, return what it asks next."""
    results: list[ToolOutcome] = []
    for index, call in enumerate(action.calls):
        result = refusal(call) or execute(call)
        hooks.tool_ran(index, call, result)
        results.append(result)
    first = episode.next_turn
    action = episode.tools_returned(results)
    added = episode.messages[first:]
    hooks.tools_added([m for m in added if isinstance(m, ToolMessage)])
    return action


async def drive(episode: Episode, action: Action, agent: Participant, user: Participant,
                execute: Execute, hooks: Hooks = _NO_HOOKS) -> str | None:
    """Carry ``episode`` from ``action`` to its end. Returns why it failed when a
    participant did ("agent role: HTTP 500": an operator needs the role), else None.
    A time limit is the caller's (``asyncio.timeout`` around this)."""
    while not isinstance(action, Finished):
        if isinstance(action, RunTools):
            action = run_tools(episode, action, execute, hooks)
            continue
        is_agent = isinstance(action, AskAgent)
        role = "agent" if is_agent else "user"
        try:
            turn = await (agent if is_agent else user).reply(episode.messages)
        except ParticipantError as failure:
            episode.failed(failure.reason)
            return f"{role} role: {failure}"
        message = turn.message
        if is_agent and isinstance(message, AssistantMessage):
            action = episode.agent_replied(message)
        elif not is_agent and isinstance(message, UserMessage):
            action = episode.user_replied(message)
        else:
            raise ProtocolError(f"the {role} replied with a {type(message).__name__}")
        said = episode.messages[-1]
        assert isinstance(said, AssistantMessage | UserMessage)
        hooks.replied(role, turn, said)
    return None


def finish_now(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """The value of a coroutine that never suspends (``drive`` over in-process
    participants and tools), without an event loop: the scripted episode is a pure
    function, and callers run it inside their own loops too."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise ProtocolError("the coroutine suspended: it needs an event loop")
