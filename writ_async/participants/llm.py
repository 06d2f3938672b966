"""The LLM agent and the LLM user simulator, as the runner calls them.

Each builds an OpenAI request (the agent's full view, or the user's role-flipped text
view) and sends it through the model pool under its role. Failures are typed
(writ_async/errors.py) and mapped to tau2-bench's termination reasons by
``termination_for``: the runner ends the episode with that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from writ_async.conversation.episode import Termination
from writ_async.conversation.messages import AssistantMessage, Message, ToolCall, Usage, UserMessage
from writ_async.environment.tau2.validation import parse_arguments
from writ_async.errors import (
    ContextLengthExceeded,
    MalformedResponse,
    ModelCallError,
    ParticipantError,
    ToolCallParseFailure,
    ToolError,
)
from writ_async.llm.assemble import split_reasoning, text_tool_calls
from writ_async.llm.client import CallResult
from writ_async.llm.pool import ModelPool
from writ_async.llm.protocol import ChatCompletion, ChatRequest
from writ_async.llm.protocol import Message as WireMessage
from writ_async.llm.retry import RETRYABLE_MALFORMED
from writ_async.participants.base import Turn
from writ_async.participants.prompts import agent_view, user_view
from writ_async.seeds import parse_retry_seed


def termination_for(error: ModelCallError, *, is_agent: bool) -> Termination:
    """tau2-bench's termination reason for a failed model call."""
    if isinstance(error, ContextLengthExceeded):
        return Termination.CONTEXT_WINDOW_EXCEEDED
    if isinstance(error, MalformedResponse) and error.reason not in RETRYABLE_MALFORMED:
        # The model's own output was unusable (cut by length, filtered, bad tool args).
        return Termination.AGENT_ERROR if is_agent else Termination.USER_ERROR
    return Termination.INFRASTRUCTURE_ERROR


def _usage(result: CallResult) -> Usage:
    return Usage(prompt_tokens=result.usage.prompt_tokens,
                 completion_tokens=result.usage.completion_tokens)


class LLMAgent:
    """The agent as a model behind the pool's ``role``, with the domain's tools."""

    def __init__(self, pool: ModelPool, role: str, system_prompt: str,
                 tools: list[dict[str, Any]], *, seed: int, tag: str,
                 temperature: float = 0.0, max_tokens: int | None = None) -> None:
        self.pool, self.role, self.system = pool, role, system_prompt
        self.tools, self.seed, self.tag = tools, seed, tag
        self.temperature, self.max_tokens = temperature, max_tokens

    async def reply(self, messages: Sequence[Message]) -> Turn:
        request = ChatRequest(
            model="", messages=agent_view(self.system, list(messages)), tools=self.tools,
            tool_choice="auto", seed=self.seed, temperature=self.temperature,
            max_tokens=self.max_tokens, user=self.tag,
        )
        discarded: list[CallResult] = []
        kinds: list[str] = []
        while True:
            try:
                result = await self.pool.complete(self.role, request)
            except ToolCallParseFailure as failure:
                kinds.append(failure.kind)
                call = _kept_call(failure)
                policy, retries = self.pool.parse_failure_handling(self.role, failure.endpoint)
                if policy == "retry" and len(discarded) < retries:
                    if call is not None:
                        discarded.append(call)
                    # a fresh draw: the same seed would give the same answer again
                    request = msgspec.structs.replace(
                        request, seed=parse_retry_seed(self.seed, len(kinds)))
                    continue
                # Retries spent (or none wanted): never a final answer. The call stays a
                # call, answered by an error result naming the problem (episode.refusal).
                message = _parse_failure_message(failure, len(messages),
                                                 None if call is None else _usage(call), kinds)
                return Turn(message, call, tuple(discarded))
            except MalformedResponse as error:
                turn = self._kept(error, messages)
                return _with_failures(turn, discarded, kinds)
            except ModelCallError as error:
                raise ParticipantError(termination_for(error, is_agent=True),
                                       str(error)) from None
            return _with_failures(self._answer(result, messages), discarded, kinds)

    def _kept(self, error: MalformedResponse, messages: Sequence[Message]) -> Turn:
        completion = _usable(error, is_agent=True)
        # Tool arguments that are not JSON, or an answer cut at max_tokens, are the
        # model's own output, not an ending (tau2-bench keeps them too): the text is
        # kept, and calls with bad arguments are answered with error results (runner).
        kept = _kept_call(error)
        message = _assistant(completion.choices[0].message, len(messages),
                             None if kept is None else _usage(kept))
        return Turn(message, kept)

    def _answer(self, result: CallResult, messages: Sequence[Message]) -> Turn:
        choice = result.completion.choices[0].message
        if not choice.tool_calls and not (split_reasoning(choice)[0] or "").strip():
            # Neither text nor a tool call: tau2-bench refuses such a message as an agent
            # error. Passing it on would show the user an empty turn.
            raise ParticipantError(Termination.AGENT_ERROR,
                                   "empty: the agent sent an empty message (no text, no "
                                   f"tool call; finish_reason {_finish(result)!r})")
        message = _assistant(choice, len(messages), _usage(result))
        return Turn(message, result)


USABLE_MALFORMED = frozenset({"invalid_tool_arguments", "length"})


def _with_failures(turn: Turn, discarded: list[CallResult], kinds: list[str]) -> Turn:
    """``turn`` after calls thrown away for tool-call parse failures: the message names
    their kinds (what the run summary counts), the turn carries the calls (journaled)."""
    if not kinds:
        return turn
    message = turn.message
    assert isinstance(message, AssistantMessage)
    return Turn(msgspec.structs.replace(message, parse_failures=tuple(kinds)), turn.call,
                tuple(discarded))


def _parse_failure_message(failure: ToolCallParseFailure, turn: int, usage: Usage | None,
                           kinds: list[str]) -> AssistantMessage:
    """The agent's answer with its unparsed tool call kept as a call (so it is answered
    with an error result, not taken as a final answer): the calls written as text in the
    content, the call whose arguments carry trailing data, or (no call to recover) one
    call standing for what the message announced."""
    completion = failure.completion
    wire = (completion.choices[0].message if isinstance(completion, ChatCompletion)
            else WireMessage(role="assistant"))
    content, reasoning = split_reasoning(wire)
    kind = failure.kind
    if kind == "trailing_data" and wire.tool_calls:
        calls = tuple(_tool_call(c.id, c.function.name, c.function.arguments, kind)
                      for c in wire.tool_calls)
    else:
        found = text_tool_calls(content) or [("", content or "")]
        calls = tuple(ToolCall(id=f"unparsed_{turn}_{i}", name=name or "unparsed_tool_call",
                               arguments={}, raw_arguments=text, parse_failure=kind)
                      for i, (name, text) in enumerate(found))
    return AssistantMessage(content=content, tool_calls=calls, turn_idx=turn, usage=usage,
                            reasoning=msgspec.UNSET if reasoning is None else reasoning,
                            parse_failures=tuple(kinds), reasoning_items=_reasoning_items(wire))


def _kept_call(error: MalformedResponse) -> CallResult | None:
    """The call behind a malformed answer that is kept, marked with why it was
    malformed, so it is accounted and journaled like any other call."""
    call = error.call
    if not isinstance(call, CallResult):
        return None
    reason = error.reason
    if isinstance(error, ToolCallParseFailure):  # the journal says which kind
        reason = f"{reason}:{error.kind}"
    return msgspec.structs.replace(call, malformed=reason)


def _finish(result: CallResult) -> str | None:
    return result.completion.choices[0].finish_reason


def _usable(error: MalformedResponse, *, is_agent: bool) -> ChatCompletion:
    """The completion behind a malformed answer that is still the model's own usable
    output; any other failure ends the episode (ParticipantError)."""
    completion = error.completion
    if error.reason in USABLE_MALFORMED and isinstance(completion, ChatCompletion):
        message = completion.choices[0].message
        # text, not thinking: an answer cut inside its <think> block says nothing
        if message.tool_calls or (split_reasoning(message)[0] or "").strip():
            return completion
    raise ParticipantError(termination_for(error, is_agent=is_agent), str(error)) from None


def _assistant(choice: WireMessage, turn: int, usage: Usage | None) -> AssistantMessage:
    """Our message for the agent's answer; tool arguments that are not a JSON object are
    kept verbatim in ``raw_arguments``."""
    calls = None
    if choice.tool_calls:
        calls = tuple(_tool_call(c.id, c.function.name, c.function.arguments)
                      for c in choice.tool_calls)
    content, reasoning = split_reasoning(choice)
    return AssistantMessage(content=content, tool_calls=calls, turn_idx=turn, usage=usage,
                            reasoning=msgspec.UNSET if reasoning is None else reasoning,
                            reasoning_items=_reasoning_items(choice))


def _reasoning_items(choice: WireMessage) -> tuple[dict[str, Any], ...] | msgspec.UnsetType:
    return tuple(choice.reasoning_items) if choice.reasoning_items else msgspec.UNSET


def _tool_call(call_id: str, name: str, text: str, kind: str | None = None) -> ToolCall:
    try:
        # Not only an object: one the journal can hold (validation.parse_arguments).
        return ToolCall(id=call_id, name=name, arguments=parse_arguments(text))
    except ToolError:  # the runner answers it with an error result saying why
        return ToolCall(id=call_id, name=name, arguments={}, raw_arguments=text,
                        parse_failure=msgspec.UNSET if kind is None else kind)


class LLMUser:
    """The user simulator as a model behind the pool's ``role``; it sees only text."""

    def __init__(self, pool: ModelPool, role: str, system_prompt: str, *, seed: int,
                 tag: str, temperature: float = 0.0, max_tokens: int | None = None) -> None:
        self.pool, self.role, self.system = pool, role, system_prompt
        self.seed, self.tag = seed, tag
        self.temperature, self.max_tokens = temperature, max_tokens

    async def reply(self, messages: Sequence[Message]) -> Turn:
        request = ChatRequest(
            model="", messages=user_view(self.system, list(messages)), seed=self.seed,
            temperature=self.temperature, max_tokens=self.max_tokens, user=self.tag,
        )
        try:
            result = await self.pool.complete(self.role, request)
            completion = result.completion
        except MalformedResponse as error:
            completion, result = _usable(error, is_agent=False), _kept_call(error)
        except ModelCallError as error:
            raise ParticipantError(termination_for(error, is_agent=False), str(error)) from None
        # A thinking model's reasoning is not what the user says: the agent never sees it.
        content, reasoning = split_reasoning(completion.choices[0].message)
        if content is None or not content.strip():
            # Whitespace is no text either (tau2-bench strips before it checks).
            raise ParticipantError(Termination.USER_ERROR,
                                   "empty: the user simulator sent no text")
        message = UserMessage(content=content, turn_idx=len(messages),
                              usage=None if result is None else _usage(result),
                              reasoning=msgspec.UNSET if reasoning is None else reasoning)
        return Turn(message, result)
