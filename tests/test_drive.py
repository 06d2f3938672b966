"""The one episode driver (writ_async/engine/drive.py) and what the episode now decides itself:
each message's ``turn_idx``, the tool messages (id and requestor from their call), and
the error result of a call whose arguments the run cannot hold. The runner, the scripted
in-process episode and the load test's agent traffic all go through ``drive``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from domains import get_domain
from writ_async.conversation.episode import Episode, refusal
from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.engine.drive import drive, finish_now
from writ_async.environment.tau2.validation import arguments_problem
from writ_async.environment.tools import ToolResult
from writ_async.errors import ProtocolError
from writ_async.llm.client import CallResult, EndpointClient, open_session
from writ_async.llm.protocol import ChatRequest
from writ_async.loadtest.traffic import AgentTraffic
from writ_async.mock.config import FaultRates, MockConfig
from writ_async.mock.scripted_policy import ScriptedPolicy
from writ_async.mock.server import open_mock_server
from writ_async.participants.base import InProcess
from writ_async.synthesis.driver import generate_tasks

LOOKUP = ToolCall(id="c1", name="get_user_details", arguments={"user_id": "x"},
                  requestor="user")
RAW = '{"user_id": NaN}'
UNHOLDABLE = ToolCall(id="c2", name="get_user_details", arguments={}, raw_arguments=RAW)


def test_the_episode_stamps_turn_idx_and_makes_the_tool_messages() -> None:
    episode = Episode()
    episode.start()
    # participants' messages come with turn_idx 0 (the default): the episode sets it
    episode.user_replied(UserMessage(content="hi"))
    episode.agent_replied(AssistantMessage(tool_calls=(LOOKUP, UNHOLDABLE)))
    with pytest.raises(ProtocolError, match="2 tool calls are pending, 1 results"):
        episode.tools_returned([ToolResult("{}", False)])
    episode.tools_returned([ToolResult('{"name": "x"}', False), ToolResult("Error: no", True)])
    assert [m.turn_idx for m in episode.messages] == [0, 1, 2, 3, 4]
    assert episode.messages[3:] == [
        ToolMessage(id="c1", content='{"name": "x"}', requestor="user", turn_idx=3),
        ToolMessage(id="c2", content="Error: no", error=True, turn_idx=4)]
    assert episode.errors == 1


def test_a_call_the_run_cannot_hold_never_runs_and_is_an_error_result() -> None:
    replies = iter([AssistantMessage(tool_calls=(UNHOLDABLE, LOOKUP)),
                    AssistantMessage(content="Done. ###STOP###")])
    ran: list[str] = []

    def execute(call: ToolCall) -> ToolResult:
        ran.append(call.id)
        return ToolResult('{"name": "x"}', False)

    def agent(history: Sequence[Message]) -> AssistantMessage:
        return next(replies)

    def user(history: Sequence[Message]) -> UserMessage:
        return UserMessage(content="Look me up.")

    episode = Episode()
    # in-process participants never wait: no event loop is needed
    error = finish_now(drive(episode, episode.start(), InProcess(agent), InProcess(user),
                             execute))
    assert error is None and episode.termination is not None
    assert ran == ["c1"]  # the unholdable call was not run
    why = f"Error: the arguments of get_user_details {arguments_problem(RAW)}: {RAW!r}"
    refused = refusal(UNHOLDABLE)
    assert refused is not None and (refused.output, refused.error) == (why, True)
    assert refusal(LOOKUP) is None
    results = [m for m in episode.messages if isinstance(m, ToolMessage)]
    assert results == [ToolMessage(id="c2", content=why, error=True, turn_idx=3),
                       ToolMessage(id="c1", content='{"name": "x"}', requestor="user",
                                   turn_idx=4)]
    assert [m.turn_idx for m in episode.messages] == list(range(len(episode.messages)))


class _Recorder:
    """The load test's sender over one real endpoint, keeping every request it sent."""

    def __init__(self, client: EndpointClient) -> None:
        self.client = client
        self.requests: list[ChatRequest] = []

    async def complete(self, role: str, request: ChatRequest) -> CallResult:
        self.requests.append(request)
        return await self.client.complete(request)


@pytest.mark.asyncio
async def test_load_traffic_refuses_unholdable_arguments_as_the_runner_does() -> None:
    """Agent traffic ran such a call with ``{}``; through the one driver the model gets the
    same error result a synthesis run journals."""
    domain = get_domain("airline")
    base = domain.base(None, 0, 1.0)
    tasks = generate_tasks(domain, base, 2, 0)
    policy = ScriptedPolicy({t.id: t for t in tasks}, {"airline": domain})
    traffic = AgentTraffic(domain, base, tasks, seed=0)
    mock = MockConfig(faults=FaultRates(unholdable_tool_args=1.0))
    async with open_mock_server(mock, policy) as server, open_session() as session:
        sender = _Recorder(EndpointClient("agent", server.url, session))
        ended = await traffic.converse(0, sender)
    tool_texts: list[Any] = [m.content for r in sender.requests for m in r.messages
                             if m.role == "tool"]
    assert tool_texts, "the agent called no tool"
    assert all(str(t).startswith("Error: the arguments of ") for t in tool_texts)
    assert ended.turns >= 1


def test_every_caller_uses_the_one_driver() -> None:
    """No hand-written loop over the episode's actions is left outside drive.py."""
    from pathlib import Path

    import writ_async

    root = Path(writ_async.__file__).parent
    loops = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                   if ".tools_returned(" in p.read_text(encoding="utf-8")
                   and p.name != "drive.py")
    assert loops == [], loops
