"""The scripted participants behind the mock server: a ``ResponsePolicy``.

With ``--agent scripted-http`` / ``--user scripted-http`` the engine talks to the
scripted agent and user over real HTTP, so the whole client path (pool, limits, retries,
streaming) is exercised with the embedded default. The server is stateless per request,
which works because the participants are pure functions of the history they see: the
policy rebuilds our messages from the request and asks a freshly built participant.

The request tag convention (the one place it is defined): a chat request's ``user``
field carries ``"{episode_id}|{role}|{seed}"``, where ``episode_id`` is
``records.episode_id(task_id, trial)`` = ``f"{task_id}:{trial}"``, ``role`` is
``agent`` or ``user`` and ``seed`` the episode's seed (``seeds.episode_seed``). Build it
with ``request_tag`` and read it with ``parse_request_tag``. The task is looked up by the
part of the episode id before its last ``:``; the tag is split at its last two ``|``.

Views, as tau2-bench (and ``prompts.agent_view`` / ``prompts.user_view``) lay them out:

* agent: ``assistant`` messages (text and/or ``tool_calls`` with JSON-text arguments),
  ``tool`` messages answering ``tool_call_id``, ``user`` messages;
* user: role-flipped text only: the agent's text arrives as ``user``, the simulator's own
  past messages as ``assistant``.

System messages are ignored (the participants do not read prompts). The server's
``rng`` is not used: every choice comes from the tag's seed, so the answer does not
depend on which requests the server happened to see before.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from writ_async.conversation.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from writ_async.conversation.task import Instructions, Task
from writ_async.environment.domain import Domain
from writ_async.environment.tau2.validation import parse_arguments
from writ_async.errors import ScriptedRequestError, ToolError
from writ_async.llm.protocol import ChatRequest, FunctionCall, encoder
from writ_async.llm.protocol import Message as WireMessage
from writ_async.llm.protocol import ToolCall as WireToolCall
from writ_async.mock.policies import PlausiblePolicy
from writ_async.participants.behaviours.scenarios import parse_scenario_id
from writ_async.participants.scripted.agent import ScriptedAgent
from writ_async.participants.scripted.mistakes import MistakeConfig
from writ_async.participants.scripted.user import DEFAULT_MAX_USER_TURNS, ScriptedUser

AGENT = "agent"
USER = "user"
ROLES = (AGENT, USER)


@dataclass(frozen=True, slots=True)
class RequestTag:
    episode_id: str
    role: str
    seed: int

    @property
    def task_id(self) -> str:
        return self.episode_id.rsplit(":", 1)[0]


def request_tag(episode_id: str, role: str, seed: int) -> str:
    """The ``user`` field of a scripted participant's chat request."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return f"{episode_id}|{role}|{seed}"


def parse_request_tag(tag: str | None) -> RequestTag:
    parts = (tag or "").rsplit("|", 2)
    if len(parts) != 3 or parts[1] not in ROLES or not parts[0]:
        raise ScriptedRequestError(
            f"the request's 'user' field must be '{{episode_id}}|{{agent|user}}|{{seed}}', "
            f"got {tag!r}")
    try:
        seed = int(parts[2])
    except ValueError:
        raise ScriptedRequestError(f"the seed in the request tag {tag!r} is not an integer"
                                   ) from None
    return RequestTag(parts[0], parts[1], seed)


# -- wire -> our messages ------------------------------------------------------------------


def agent_messages(wire: Sequence[WireMessage]) -> list[Message]:
    """The agent's history from its request (system messages dropped).

    A tool message's error flag is not on the wire; tau2-bench's error results start with
    ``"Error: "``, which is what the flag is rebuilt from. Arguments that are not a JSON
    object (a model's mistake) become ``{}``: the scripted agent only reads its own.
    """
    out: list[Message] = []
    for m in wire:
        if m.role == "assistant":
            calls = None
            if m.tool_calls:
                calls = tuple(ToolCall(id=c.id, name=c.function.name,
                                       arguments=_decode_arguments(c.function.arguments))
                              for c in m.tool_calls)
            out.append(AssistantMessage(content=m.content, tool_calls=calls))
        elif m.role == "tool":
            content = m.content or ""
            out.append(ToolMessage(id=m.tool_call_id or "", content=content,
                                   error=content.startswith("Error: ")))
        elif m.role == "user":
            out.append(UserMessage(content=m.content or ""))
    return out


def user_messages(wire: Sequence[WireMessage]) -> list[Message]:
    """The user simulator's history from its role-flipped request."""
    out: list[Message] = []
    for m in wire:
        if m.role == "user":  # the agent's text
            out.append(AssistantMessage(content=m.content or ""))
        elif m.role == "assistant":  # the simulator's own past messages
            out.append(UserMessage(content=m.content or ""))
    return out


def _decode_arguments(text: str) -> dict[str, Any]:
    try:
        return parse_arguments(text or "{}")
    except ToolError:  # not an object, or one no run can hold (validation.py)
        return {}


def to_wire(message: AssistantMessage | UserMessage) -> WireMessage:
    """A participant's reply as the completion's (assistant) message."""
    if isinstance(message, UserMessage):
        return WireMessage(role="assistant", content=message.content)
    calls = None
    if message.tool_calls:
        calls = [WireToolCall(id=c.id, function=FunctionCall(
            name=c.name, arguments=encoder.encode(c.arguments).decode()))
            for c in message.tool_calls]
    return WireMessage(role="assistant", content=message.content, tool_calls=calls)


# -- the policy ----------------------------------------------------------------------------


class ScriptedPolicy:
    """Answers each request as the scripted agent or user of the tagged episode.

    ``tasks`` is keyed by task id as it appears in episode ids (one task set per server:
    ids repeat across tau2's domains); ``domains`` gives each domain by name (its tool
    kinds, phrases, forbidden requests...), a task's domain being its
    ``instructions.domain`` (or the only one given).
    """

    __slots__ = ("domains", "max_user_turns", "mistakes", "tasks", "untagged")

    def __init__(self, tasks: Mapping[str, Task], domains: Mapping[str, Domain],
                 mistakes: MistakeConfig | None = None, *,
                 max_user_turns: int = DEFAULT_MAX_USER_TURNS) -> None:
        self.tasks = tasks
        self.domains = domains
        self.mistakes = mistakes
        self.max_user_turns = max_user_turns
        # Requests that carry no episode tag (a judge's, say) get ordinary text.
        self.untagged = PlausiblePolicy()

    def __repr__(self) -> str:
        return (f"ScriptedPolicy(tasks={len(self.tasks)}, "
                f"domains={sorted(self.domains)}, mistakes={self.mistakes!r})")

    def respond(self, request: ChatRequest, rng: random.Random) -> WireMessage:
        if not request.user:
            return self.untagged.respond(request, rng)
        # every scripted choice comes from the tagged seed (module docstring), not ``rng``
        tag = parse_request_tag(request.user)
        task_id, behaviours = parse_scenario_id(tag.task_id)
        task = self.tasks.get(task_id)
        if task is None:
            raise ScriptedRequestError(f"unknown task {task_id!r} in tag {request.user!r}")
        if tag.role == AGENT:
            agent = ScriptedAgent(task, self._domain(task), tag.seed, self.mistakes)
            return to_wire(agent.reply(agent_messages(request.messages)))
        user = ScriptedUser(task, tag.seed, self.max_user_turns, behaviours=behaviours,
                            domain=self._domain(task))
        return to_wire(user.reply(user_messages(request.messages)))

    def _domain(self, task: Task) -> Domain:
        instructions = task.user_scenario.instructions
        name = instructions.domain if isinstance(instructions, Instructions) else None
        if name in self.domains:
            return self.domains[name]
        if len(self.domains) == 1:
            return next(iter(self.domains.values()))
        raise ScriptedRequestError(
            f"task {task.id!r}: no domain {name!r} (have {sorted(self.domains)})")
