"""The episode state machine, without an event loop."""

from __future__ import annotations

import pytest

from writ_async.conversation.episode import (
    DEFAULT_GREETING,
    AskAgent,
    AskUser,
    Episode,
    Finished,
    Limits,
    ProtocolError,
    RunTools,
    Termination,
)
from writ_async.conversation.messages import AssistantMessage, ToolCall, UserMessage
from writ_async.environment.tools import ToolResult

CALL = ToolCall(id="c1", name="get_user_details", arguments={"user_id": "x"})


def test_agent_greets_then_user_speaks() -> None:
    ep = Episode()
    assert ep.start() == AskUser()
    assert ep.messages == [AssistantMessage(content=DEFAULT_GREETING)]
    assert ep.user_replied(UserMessage(content="Hi, I need help")) == AskAgent()


def test_without_greeting_the_agent_is_asked_first() -> None:
    ep = Episode(greeting=None)
    assert ep.start() == AskAgent()
    assert ep.messages == []


def test_tool_calls_run_then_agent_continues() -> None:
    ep = Episode()
    ep.start()
    ep.user_replied(UserMessage(content="help"))
    action = ep.agent_replied(AssistantMessage(content="let me look", tool_calls=(CALL,)))
    assert action == RunTools((CALL,))  # text with tool calls is a tool call
    assert ep.tools_returned([ToolResult("{}", False)]) == AskAgent()
    assert ep.agent_replied(AssistantMessage(content="Found you.")) == AskUser()


@pytest.mark.parametrize("token", ["###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###"])
def test_user_stop_tokens_end_the_episode(token: str) -> None:
    ep = Episode()
    ep.start()
    assert ep.user_replied(UserMessage(content=f"thanks {token}")) == Finished(
        Termination.USER_STOP)
    assert ep.termination is Termination.USER_STOP


def test_agent_stop() -> None:
    ep = Episode()
    ep.start()
    ep.user_replied(UserMessage(content="hi"))
    assert ep.agent_replied(AssistantMessage(content="###STOP###")) == Finished(
        Termination.AGENT_STOP)


def test_max_steps_counts_messages_and_waits_for_pending_results() -> None:
    ep = Episode(Limits(max_steps=4))
    ep.start()  # 1 message
    ep.user_replied(UserMessage(content="hi"))  # 2
    assert ep.agent_replied(AssistantMessage(tool_calls=(CALL,))) == RunTools((CALL,))  # 3
    # the limit is reached, but a tool result is pending: it is delivered first
    assert ep.tools_returned([ToolResult("{}", False)]) == Finished(
        Termination.MAX_STEPS)
    assert len(ep.messages) == 4


def test_too_many_errors_counts_all_tool_errors() -> None:
    ep = Episode(Limits(max_errors=2))
    ep.start()
    ep.user_replied(UserMessage(content="hi"))
    ep.agent_replied(AssistantMessage(tool_calls=(CALL,)))
    assert ep.tools_returned([ToolResult("Error: x", True)]) == AskAgent()
    ep.agent_replied(AssistantMessage(content="sorry"))
    ep.user_replied(UserMessage(content="try again"))
    ep.agent_replied(AssistantMessage(tool_calls=(CALL,)))
    assert ep.tools_returned([ToolResult("Error: x", True)]) == Finished(
        Termination.TOO_MANY_ERRORS)


@pytest.mark.parametrize("reason", [Termination.AGENT_ERROR, Termination.USER_ERROR,
                                    Termination.INFRASTRUCTURE_ERROR, Termination.TIMEOUT,
                                    Termination.CONTEXT_WINDOW_EXCEEDED])
def test_failures_end_the_episode(reason: Termination) -> None:
    ep = Episode()
    ep.start()
    assert ep.failed(reason) == Finished(reason)
    with pytest.raises(ProtocolError):
        ep.failed(reason)


def test_success_reasons_are_not_failures() -> None:
    ep = Episode()
    ep.start()
    with pytest.raises(ProtocolError):
        ep.failed(Termination.USER_STOP)


def test_events_out_of_turn_are_bugs() -> None:
    ep = Episode()
    with pytest.raises(ProtocolError):
        ep.user_replied(UserMessage(content="too early"))
    ep.start()
    with pytest.raises(ProtocolError):
        ep.agent_replied(AssistantMessage(content="not my turn"))
