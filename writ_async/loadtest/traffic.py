"""Where a load test's requests come from: whole conversations, each run by one task.

* ``AgentTraffic`` — real agent conversations from a domain: the requests are built by
  the engine's own ``LLMAgent`` (system prompt with the domain policy, the tool schemas,
  the full history), tool calls the endpoint returns are executed for real on an
  ``Environment`` over the domain database, and the context grows turn by turn. The user
  is scripted in-process (only agent requests reach the endpoint) or an ``LLMUser`` whose
  requests go to the endpoint as well. The episode runs through the engine's one driver
  (``drive.drive``), exactly as in a synthesis run, minus the journal and grading.
* ``SyntheticTraffic`` — a shape: turns per conversation, system prompt, user message
  and output lengths drawn from ranges; the history (with the endpoint's real replies)
  grows turn by turn.

A conversation sends through a ``sender`` with the pool's ``complete(role, request)``
signature, so the participants are the engine's own, unchanged. Conversation ``index``
decides its task, trial and seed, never the order in which conversations happen to run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from writ_async.conversation.episode import Episode, Limits
from writ_async.conversation.messages import UserMessage
from writ_async.conversation.records import episode_id
from writ_async.conversation.task import Task
from writ_async.engine.drive import drive, on
from writ_async.errors import ModelCallError
from writ_async.llm.client import CallResult
from writ_async.llm.protocol import ChatRequest, Message
from writ_async.mock.policies import plausible_text
from writ_async.participants.base import InProcess, Participant
from writ_async.participants.llm import LLMAgent, LLMUser
from writ_async.participants.prompts import agent_system_prompt, user_system_prompt
from writ_async.participants.scripted.user import ScriptedUser
from writ_async.seeds import episode_seed


class Sender(Protocol):
    async def complete(self, role: str, request: ChatRequest) -> CallResult: ...


@dataclass(frozen=True, slots=True)
class Ended:
    """How a conversation ended, and how many user turns it had."""

    outcome: str
    turns: int


class Traffic(Protocol):
    def describe(self) -> dict[str, Any]: ...

    async def converse(self, index: int, sender: Sender) -> Ended:
        """Run conversation ``index`` to its end; return how it ended."""
        ...


@dataclass(frozen=True, slots=True)
class IntRange:
    """A uniform integer distribution ``[low, high]`` (``low == high``: a constant)."""

    low: int
    high: int

    def draw(self, rng: random.Random) -> int:
        return self.low if self.low == self.high else rng.randint(self.low, self.high)

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def parse_range(text: str) -> IntRange:
    """``"N"`` or ``"LOW-HIGH"`` (non-negative integers, LOW <= HIGH)."""
    low, sep, high = text.strip().partition("-")
    try:
        lo, hi = int(low), int(high) if sep else int(low)
    except ValueError:
        raise ValueError(f"not N or LOW-HIGH: {text!r}") from None
    if lo < 0 or hi < lo:
        raise ValueError(f"need 0 <= LOW <= HIGH: {text!r}")
    return IntRange(lo, hi)


_MASK = (1 << 64) - 1


class Draws(random.Random):
    """A ``random.Random`` on SplitMix64, seeded from (seed, conversation index) in a few
    integer operations: Mersenne Twister's seeding costs more than a whole request's
    traffic work at thousands of conversations per second. Only ``random()`` and
    ``getrandbits()`` are its own; every other method is ``random.Random``'s on them."""

    def __init__(self, seed: int, index: int) -> None:  # no super().__init__: no MT seeding
        self._state = (seed * 0x9E3779B97F4A7C15 + index * 0xD1B54A32D192ED03) & _MASK

    def _next(self) -> int:
        self._state = state = (self._state + 0x9E3779B97F4A7C15) & _MASK
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        return (self._next() >> 11) * (1.0 / (1 << 53))

    def getrandbits(self, k: int) -> int:
        if k <= 64:
            return self._next() >> (64 - k) if k else 0
        out, got = 0, 0
        while got < k:
            out = (out << 64) | self._next()
            got += 64
        return out >> (got - k)

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        """Uniform in ``range(start, stop)`` (modulo bias below 2**-40 for spans under
        2**24, which is what traffic shapes draw); other steps: ``random.Random``'s."""
        if step != 1:
            return super().randrange(start, stop, step)
        low, high = (0, start) if stop is None else (start, stop)
        span = high - low
        if span <= 0:
            raise ValueError(f"empty range for randrange({start}, {stop})")
        if span >= 1 << 24:
            return low + self._randbelow(span)
        return low + self._next() % span

    def randint(self, a: int, b: int) -> int:
        return self.randrange(a, b + 1)

    def seed(self, *args: Any, **kwargs: Any) -> None:  # the state comes from __init__
        return None


COMPLETED = "completed"  # a synthetic conversation sent all its turns
FAILED = "failed"  # a synthetic conversation's request failed


class SyntheticTraffic:
    """Conversations of a given shape; lengths in tokens of about 4 characters. The
    system prompt of a given length is the same in every conversation."""

    def __init__(self, *, turns: IntRange = IntRange(3, 3),
                 system_tokens: IntRange = IntRange(500, 500),
                 user_tokens: IntRange = IntRange(50, 200),
                 output_tokens: IntRange | None = IntRange(20, 100),
                 seed: int = 0, model: str = "") -> None:
        self.turns, self.system_tokens, self.user_tokens = turns, system_tokens, user_tokens
        self.output_tokens, self.seed, self.model = output_tokens, seed, model
        self._systems: dict[int, str] = {}

    def _system(self, tokens: int) -> str:
        """The system prompt of that length: one per length for the whole run, as every
        conversation of an agent starts from the same one (and servers cache it)."""
        text = self._systems.get(tokens)
        if text is None:
            text = self._systems[tokens] = plausible_text(Draws(self.seed, -1 - tokens),
                                                          max(1, tokens))
        return text

    def describe(self) -> dict[str, Any]:
        return {"kind": "synthetic", "turns": str(self.turns),
                "system_tokens": str(self.system_tokens), "user_tokens": str(self.user_tokens),
                "output_tokens": None if self.output_tokens is None else str(self.output_tokens)}

    async def converse(self, index: int, sender: Sender) -> Ended:
        rng = Draws(self.seed, index)
        messages = [Message(role="system", content=self._system(self.system_tokens.draw(rng)))]
        for turn in range(self.turns.draw(rng)):
            text = plausible_text(rng, max(1, self.user_tokens.draw(rng)))
            messages.append(Message(role="user", content=text))
            limit = None if self.output_tokens is None else max(1, self.output_tokens.draw(rng))
            request = ChatRequest(model=self.model, messages=list(messages), max_tokens=limit,
                                  temperature=0.0, user=f"loadtest:{index}")
            try:
                result = await sender.complete("agent", request)
            except ModelCallError:
                return Ended(FAILED, turn + 1)  # counted by the sender; it cannot go on
            reply = result.completion.choices[0].message
            messages.append(Message(role="assistant", content=reply.content or "",
                                    tool_calls=reply.tool_calls))
            for call in reply.tool_calls or ():  # a shape has no tools: answer blandly
                messages.append(Message(role="tool", tool_call_id=call.id, content="{}"))
        return Ended(COMPLETED, sum(1 for m in messages if m.role == "user"))


class AgentTraffic:
    """Real agent conversations over a domain's tasks (see the module docstring)."""

    def __init__(self, domain: Any, base: Any, tasks: Sequence[Task], *,
                 user: str = "scripted", seed: int = 0, limits: Limits | None = None,
                 greeting: str | None = None, temperature: float = 0.0,
                 max_tokens: int | None = None, policy: str | None = None) -> None:
        if not tasks:
            raise ValueError("agent traffic needs at least one task")
        if user not in ("scripted", "llm"):
            raise ValueError(f"user must be 'scripted' or 'llm', got {user!r}")
        from writ_async.conversation.episode import DEFAULT_GREETING

        self.domain, self.base, self.tasks = domain, base, list(tasks)
        self.user, self.seed = user, seed
        self.limits = limits or Limits(max_steps=60, max_errors=10)
        self.greeting = DEFAULT_GREETING if greeting is None else greeting
        self.temperature, self.max_tokens = temperature, max_tokens
        self.toolbox = domain.toolbox_with_schemas()
        self.tools = self.toolbox.schemas()
        self.system = agent_system_prompt(policy if policy is not None else domain.policy())

    def describe(self) -> dict[str, Any]:
        return {"kind": "agent", "domain": self.domain.name, "tasks": len(self.tasks),
                "user": self.user, "max_steps": self.limits.max_steps,
                "tools": len(self.tools), "system_prompt_chars": len(self.system)}

    def participants(self, index: int, sender: Sender) -> tuple[Participant, Participant]:
        from writ_async.mock.scripted_policy import request_tag

        task = self.tasks[index % len(self.tasks)]
        trial = index // len(self.tasks)
        seed = episode_seed(self.seed, task.id, trial)
        ep_id = episode_id(task.id, trial)
        agent = LLMAgent(sender, "agent", self.system, self.tools,  # type: ignore[arg-type]
                         seed=seed, tag=request_tag(ep_id, "agent", seed),
                         temperature=self.temperature, max_tokens=self.max_tokens)
        user: Participant
        if self.user == "scripted":
            user = InProcess(ScriptedUser(task, seed, domain=self.domain).reply)
        else:
            user = LLMUser(sender, "user", user_system_prompt(task),  # type: ignore[arg-type]
                           seed=seed, tag=request_tag(ep_id, "user", seed),
                           temperature=self.temperature, max_tokens=self.max_tokens)
        return agent, user

    async def converse(self, index: int, sender: Sender) -> Ended:
        agent, user = self.participants(index, sender)
        env = self.domain.environment(self.base, self.toolbox)
        episode = Episode(self.limits, self.greeting)
        await drive(episode, episode.start(), agent, user, on(env))
        assert episode.termination is not None
        turns = sum(1 for m in episode.messages if isinstance(m, UserMessage))
        return Ended(episode.termination.value, turns)
