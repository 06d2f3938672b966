"""NL assertions graded by a judge model, as tau2-bench grades them (one call per episode).

The judge sees the transcript (the agent's and the user's text, and the agent's tool
calls with their results) and the task's assertions, and must answer with one JSON
object per assertion. A judge whose answer cannot be read does not fail the episode: the
assertions are reported as not graded, with the reason, exactly as when no judge is
configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from writ_async.conversation.messages import AssistantMessage, Message, ToolMessage, UserMessage
from writ_async.conversation.records import Check
from writ_async.errors import ModelCallError
from writ_async.llm.pool import ModelPool
from writ_async.llm.protocol import ChatRequest
from writ_async.llm.protocol import Message as WireMessage

JUDGE_INSTRUCTIONS = """\
You grade a customer-service conversation between an agent and a customer. For each
numbered expectation below, decide from the transcript alone whether the agent's
behaviour meets it. Answer with only a JSON object of this form:
{"results": [{"expectation": <number>, "met": true or false, "reason": "<one sentence>"}]}
with exactly one entry per expectation, in order."""


class _Verdict(msgspec.Struct):
    expectation: int
    met: bool
    reason: str = ""


class _Answer(msgspec.Struct):
    results: list[_Verdict]


_answer = msgspec.json.Decoder(_Answer)


def transcript(messages: Sequence[Message]) -> str:
    lines = []
    for m in messages:
        if isinstance(m, AssistantMessage):
            if m.content:
                lines.append(f"agent: {m.content}")
            for call in m.tool_calls or ():
                args = msgspec.json.encode(call.arguments).decode()
                lines.append(f"agent calls {call.name}({args})")
        elif isinstance(m, ToolMessage):
            lines.append(f"tool result: {m.content}")
        elif isinstance(m, UserMessage):
            lines.append(f"customer: {m.content}")
    return "\n".join(lines)


def judge_request(messages: Sequence[Message], assertions: Sequence[str]) -> ChatRequest:
    listed = "\n".join(f"{i}. {a}" for i, a in enumerate(assertions, start=1))
    prompt = f"Transcript:\n{transcript(messages)}\n\nExpectations:\n{listed}"
    return ChatRequest(model="", temperature=0.0, messages=[
        WireMessage(role="system", content=JUDGE_INSTRUCTIONS),
        WireMessage(role="user", content=prompt),
    ])


def read_verdicts(text: str | None, assertions: Sequence[str]) -> list[Check] | str:
    """The judge's checks, or why its answer cannot be used."""
    if not text:
        return "the judge sent no text"
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return "the judge's answer holds no JSON object"
    try:
        answer = _answer.decode(text[start:end + 1])
    except msgspec.DecodeError as exc:
        return f"the judge's answer is not the expected JSON: {exc}"
    by_number: dict[int, _Verdict] = {v.expectation: v for v in answer.results}
    if sorted(by_number) != list(range(1, len(assertions) + 1)):
        return (f"the judge answered expectations {sorted(by_number)}, "
                f"not 1..{len(assertions)}")
    return [Check(name=a, passed=by_number[i].met, detail=by_number[i].reason)
            for i, a in enumerate(assertions, start=1)]


class Judge:
    """Grades NL assertions through a role of the model pool."""

    def __init__(self, pool: ModelPool, role: str) -> None:
        self.pool, self.role = pool, role

    async def __call__(self, messages: Sequence[Message],
                       assertions: Sequence[str]) -> tuple[list[Check] | None, str]:
        """``(checks, "")`` or ``(None, why not graded)``."""
        if not assertions:
            return [], ""
        try:
            result = await self.pool.complete(self.role, judge_request(messages, assertions))
        except ModelCallError as error:
            return None, f"judge call failed: {error}"
        verdicts = read_verdicts(result.completion.choices[0].message.content, assertions)
        if isinstance(verdicts, str):
            return None, verdicts
        return verdicts, ""


def nl_assertions_of(task: Any) -> list[str]:
    criteria = task.evaluation_criteria
    return list(criteria.nl_assertions or []) if criteria else []
