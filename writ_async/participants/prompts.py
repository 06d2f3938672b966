"""System prompts and the views each model gets of a conversation.

The agent's system prompt is laid out as tau2-bench lays out its agent's: an
instructions block, then the domain policy, each in its own tag, so that exported
training data shows the agent exactly the shape of prompt the benchmark will. The words
of the instructions and of the user simulator's guidelines are our own.

Views: the agent sees everything (its text and tool calls, tool results, the user's
text). The user simulator sees only text, role-flipped as tau2-bench does it: the
agent's words arrive as ``user`` and the simulator's own past words as ``assistant``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
    reasoning_of,
)
from writ_async.conversation.task import Instructions, Task
from writ_async.llm import protocol

AGENT_INSTRUCTIONS = """\
You are a customer service agent. Help the user with their request while following the
policy below exactly.
- In each turn, either send a message to the user or make one tool call, never both.
- Use the tools to look things up; do not make up facts, prices or identifiers.
- Before any action that changes the user's records, describe it and obtain the user's
  explicit confirmation ("yes").
- If the request is outside what the policy and tools allow, say so, and transfer to a
  human agent only when the policy says to."""

USER_GUIDELINES = """\
You are playing a customer contacting customer service. Stay in character and follow the
scenario below.
- Share information only when the agent asks for it, a little at a time, and only
  information the scenario gives you; if you do not know something, say so.
- Do not invent details that are not in the scenario.
- Speak naturally, in short messages, as a real customer would.
- When your goal is reached, or cannot be reached, end the conversation by writing
  ###STOP### on its own. If you are transferred to a human agent, write ###TRANSFER###.
  If the scenario does not cover what is happening, write ###OUT-OF-SCOPE###."""


def agent_system_prompt(policy: str, instructions: str = AGENT_INSTRUCTIONS) -> str:
    return f"<instructions>\n{instructions}\n</instructions>\n<policy>\n{policy}\n</policy>"


def scenario_text(task: Task) -> str:
    scenario = task.user_scenario
    parts: list[str] = []
    if scenario.persona:
        parts.append(f"Persona:\n{scenario.persona}")
    ins = scenario.instructions
    if isinstance(ins, Instructions):
        parts.append(f"Domain: {ins.domain}")
        parts.append(f"Reason for call:\n{ins.reason_for_call}")
        if ins.known_info:
            parts.append(f"Known info:\n{ins.known_info}")
        if ins.unknown_info:
            parts.append(f"Unknown info:\n{ins.unknown_info}")
        if ins.task_instructions:
            parts.append(f"Task instructions:\n{ins.task_instructions}")
    else:
        parts.append(ins)
    return "\n\n".join(parts)


def user_system_prompt(task: Task, guidelines: str = USER_GUIDELINES) -> str:
    return f"{guidelines}\n\n<scenario>\n{scenario_text(task)}\n</scenario>"


_args_encoder = msgspec.json.Encoder()


def _arguments_text(call: ToolCall) -> str:
    """The arguments as the model wrote them: JSON text, or its raw text when it was not
    a JSON object (so the model sees its own mistake in the history)."""
    if call.raw_arguments is not None:
        return call.raw_arguments
    return _args_encoder.encode(call.arguments).decode()


def to_openai(message: Message, *, reasoning: bool = False) -> dict[str, Any]:
    """One message as an OpenAI chat message (the agent's view); with ``reasoning``, an
    assistant message's reasoning as ``reasoning_content`` (what transformers' chat
    templates for thinking models read, so TRL trains on it)."""
    if isinstance(message, AssistantMessage):
        out: dict[str, Any] = {"role": "assistant", "content": message.content}
        thought = reasoning_of(message) if reasoning else None
        if thought is not None:
            out["reasoning_content"] = thought
        if message.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": _arguments_text(c)}}
                for c in message.tool_calls
            ]
        return out
    if isinstance(message, ToolMessage):
        return {"role": "tool", "tool_call_id": message.id, "content": message.content}
    return {"role": "user", "content": message.content}


def agent_view(system: str, messages: list[Message]) -> list[protocol.Message]:
    """Everything, as OpenAI messages. The agent's own reasoning rides along as
    ``reasoning_content``; the pool sends it back or not as the role's
    ``ModelParams.reasoning`` says (protocol.apply_params)."""
    out = [protocol.Message(role="system", content=system)]
    for m in messages:
        if isinstance(m, AssistantMessage):
            calls = None
            if m.tool_calls:
                calls = [protocol.ToolCall(
                    id=c.id, function=protocol.FunctionCall(
                        name=c.name, arguments=_arguments_text(c)))
                    for c in m.tool_calls]
            out.append(protocol.Message(role="assistant", content=m.content, tool_calls=calls,
                                        reasoning_content=reasoning_of(m),
                                        reasoning_items=list(m.reasoning_items or ()) or None))
        elif isinstance(m, ToolMessage):
            out.append(protocol.Message(role="tool", content=m.content, tool_call_id=m.id))
        else:
            out.append(protocol.Message(role="user", content=m.content))
    return out


def user_view(system: str, messages: list[Message]) -> list[protocol.Message]:
    """Only text, role-flipped: the agent speaks as ``user``, the simulator as ``assistant``."""
    out = [protocol.Message(role="system", content=system)]
    for m in messages:
        if isinstance(m, AssistantMessage):
            if m.content and not m.tool_calls:
                out.append(protocol.Message(role="user", content=m.content))
        elif isinstance(m, UserMessage):
            out.append(protocol.Message(role="assistant", content=m.content,
                                        reasoning_content=reasoning_of(m)))
    return out
