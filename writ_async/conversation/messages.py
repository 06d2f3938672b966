"""The messages of a conversation, as tau2-bench records them.

Roles: ``assistant`` (the agent; text and/or tool calls), ``user`` (the simulated user;
text), ``tool`` (one tool result, answering one call by id). Field names follow
tau2-bench's results format so that exported data and ``results.json`` carry them
unchanged. Tool-call arguments are kept as the parsed JSON object the model wrote.
"""

from __future__ import annotations

from typing import Any

import msgspec

STOP = "###STOP###"
TRANSFER = "###TRANSFER###"
OUT_OF_SCOPE = "###OUT-OF-SCOPE###"
USER_STOP_TOKENS = (STOP, TRANSFER, OUT_OF_SCOPE)


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ToolCall(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: dict[str, Any]
    requestor: str = "assistant"
    # What the model wrote when it was not a JSON object (then ``arguments`` is empty and
    # the call is answered with an error result instead of being run).
    raw_arguments: str | None = None
    # A call the server passed through as text (errors.ToolCallParseFailure's kind), kept
    # as a call so it can be answered by an error result; UNSET (never encoded) otherwise.
    parse_failure: str | msgspec.UnsetType = msgspec.UNSET


# A reasoning model's thinking behind a message, as the model wrote it (from the answer's
# ``reasoning_content`` / ``reasoning`` field or its opening ``<think>`` block). UNSET, not
# None, when there was none: UNSET is never encoded, so a message without reasoning is
# the same bytes in the journal as before the field existed, and old journals decode.
# Test it for truth (UNSET is falsy), or read it with ``reasoning_of``.
Reasoning = str | msgspec.UnsetType


class AssistantMessage(msgspec.Struct, frozen=True, tag="assistant", tag_field="role"):
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    turn_idx: int = 0
    usage: Usage | None = None
    reasoning: Reasoning = msgspec.UNSET
    # The kinds of tool-call parse failures met while this message was being made (calls
    # retried, and the one kept as an error-result call); UNSET (never encoded): none.
    parse_failures: tuple[str, ...] | msgspec.UnsetType = msgspec.UNSET
    # The Responses API's reasoning items behind this message, verbatim (encrypted content
    # included), sent back in later turns' input; UNSET (never encoded): none, so chat
    # runs' journals are the bytes they were.
    reasoning_items: tuple[dict[str, Any], ...] | msgspec.UnsetType = msgspec.UNSET

    @property
    def is_tool_call(self) -> bool:
        # tau2: a message carrying both text and tool calls is a tool call.
        return bool(self.tool_calls)


class UserMessage(msgspec.Struct, frozen=True, tag="user", tag_field="role"):
    content: str
    turn_idx: int = 0
    usage: Usage | None = None
    reasoning: Reasoning = msgspec.UNSET  # a thinking user-simulator model's


class ToolMessage(msgspec.Struct, frozen=True, tag="tool", tag_field="role"):
    id: str  # the tool call this answers
    content: str
    error: bool = False
    requestor: str = "assistant"
    turn_idx: int = 0


Message = AssistantMessage | UserMessage | ToolMessage


def reasoning_of(message: Message) -> str | None:
    """The message's reasoning text, or None."""
    reasoning = getattr(message, "reasoning", None)
    return reasoning if isinstance(reasoning, str) else None


def is_user_stop(text: str | None) -> bool:
    return bool(text) and any(token in text for token in USER_STOP_TOKENS)
