"""An episode's tool calls against a task's gold actions: which call matches which action
(tau2's ACTION rule), and the results each call got."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
)
from writ_async.conversation.task import Action

_MISSING = object()


def action_matches(action: Action, call: ToolCall) -> bool:
    """tau2-bench's ``Action.compare_with_tool_call``, quirks included.

    With ``compare_args`` null the compared keys are the *call's* arguments, so a call
    that omits an argument the gold action has still matches, and one with an extra
    argument does not; an empty key list matches any call of that name.
    """
    if action.name != call.name:
        return False
    keys = set(action.compare_args if action.compare_args is not None else call.arguments)
    if not keys:
        return True
    called = {k: v for k, v in call.arguments.items() if k in keys}
    wanted = {k: v for k, v in action.arguments.items() if k in keys}
    return called == wanted


def same_call(action: Action, name: str, arguments: Mapping[str, Any]) -> bool:
    """Strict matching for evidence: same name, equal on ``compare_args`` (every argument,
    both ways, when null)."""
    if action.name != name:
        return False
    if action.compare_args is None:
        return dict(arguments) == action.arguments
    return all(arguments.get(k, _MISSING) == action.arguments.get(k, _MISSING)
               for k in action.compare_args)


def tool_calls_of(messages: Iterable[Message]) -> list[ToolCall]:
    return [call for m in messages if isinstance(m, AssistantMessage) and m.tool_calls
            for call in m.tool_calls]


def call_results(messages: Sequence[Message]) -> dict[tuple[int, int], ToolMessage]:
    """(message index, call index) -> the tool message answering that call.

    Results follow their assistant message and are paired by id within that block, so a
    call id reused by a later message cannot borrow an earlier result.
    """
    found: dict[tuple[int, int], ToolMessage] = {}
    for i, message in enumerate(messages):
        if not (isinstance(message, AssistantMessage) and message.tool_calls):
            continue
        pending: dict[str, list[int]] = {}
        for j, call in enumerate(message.tool_calls):
            pending.setdefault(call.id, []).append(j)
        for result in islice(messages, i + 1, None):
            if not isinstance(result, ToolMessage):
                break
            slots = pending.get(result.id)
            if slots:
                found[(i, slots.pop(0))] = result
    return found


def describe_call(name: str, arguments: Mapping[str, Any]) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
    return f"{name}({args})"
