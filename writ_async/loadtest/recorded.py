"""Traffic from a ``writ simulate`` run: the chat-completion requests it made, again.

The journal does not keep request bodies; it keeps every message (``MessageAdded``) and,
for each model turn, a ``ModelCalled`` event written just before the message that call
produced. The request of a call is therefore a pure function of the messages before it
and of how the run built its participants. ``RecordedTraffic`` rebuilds each one with
the run's own participants (``run_participants.participants_factory``, from the run's
config as ``writ replay`` reopens it: same system prompt, tools, seed, tag, behaviours,
temperature and ``max_tokens``), handing their ``reply`` a pool that keeps the request
instead of sending it. Nothing of the request building is duplicated here.

Each recorded episode is one conversation: its requests are sent in their recorded
order, each once the one before it has been answered, with the recorded contexts (what
the endpoint answers now does not change what is sent next). Conversation ``index``
replays episode ``index % episodes``, in the order the run finished them.

Model turns whose call failed, or whose answer was malformed but kept (tool arguments
that are not JSON), left no ``ModelCalled`` and are not replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from writ_async.conversation.messages import Message, UserMessage
from writ_async.engine.journal import MessageAdded, ModelCalled
from writ_async.engine.runner import EpisodeSpec
from writ_async.environment.domain import Domain
from writ_async.errors import ModelCallError, ReplayError
from writ_async.llm.client import CallResult
from writ_async.llm.protocol import ChatRequest
from writ_async.participants.base import InProcess, Participant

COMPLETED = "completed"  # every recorded request was sent and answered
FAILED = "failed"  # a request failed: the conversation does not go on


class _Captured(Exception):
    """Raised by ``_Capture`` to stop a participant once it built its request."""

    def __init__(self, role: str, request: ChatRequest) -> None:
        super().__init__(role)
        self.role, self.request = role, request


class _Capture:
    """A model pool that keeps the request it is asked to send (and sends nothing)."""

    async def complete(self, role: str, request: ChatRequest) -> CallResult:
        raise _Captured(role, request)


async def _request_of(participant: Participant, messages: Sequence[Message]) -> ChatRequest:
    try:
        await participant.reply(messages)
    except _Captured as captured:
        return captured.request
    raise ReplayError(f"{type(participant).__name__} answered without a model request")


class RecordedTraffic:
    """The recorded requests of a run directory's finished episodes (module doc)."""

    def __init__(self, run_dir: Path | str, domain: Domain) -> None:
        from writ_async.engine.replay.run import behaviours_of, open_run

        self.path = Path(run_dir)
        run = open_run(self.path, domain)
        self.conversations: list[list[tuple[str, ChatRequest]]] = []
        self.turns: list[int] = []
        self.episode_ids: list[str] = []
        calls = run.contents.counts.get("model_called", 0)
        sim = run.config.simulate
        if not calls:
            raise ReplayError(
                f"{self.path}: the run recorded no model calls (agent {sim.agent!r}, user "
                f"{sim.user!r}): a run whose participants are scripted in-process sends no "
                "requests to replay; use a run with LLM participants (or scripted-http)")
        participants = _participants_factory(run)
        for ep_id in run.episode_ids():
            recorded = run.recorded(ep_id)
            started = recorded.started
            assert started is not None  # every attempt begins with it (runner)
            spec = EpisodeSpec(task=run.task(started.task_id), trial=started.trial,
                               seed=started.seed, attempt=started.attempt,
                               behaviours=behaviours_of(ep_id))
            agent, user = participants(spec)
            messages: list[Message] = []
            requests: list[tuple[str, ChatRequest]] = []
            for event in recorded.events:
                if isinstance(event, MessageAdded):
                    messages.append(event.message)
                elif isinstance(event, ModelCalled):
                    who = agent if event.role == "agent" else user
                    if isinstance(who, InProcess):
                        raise ReplayError(f"{self.path}: episode {ep_id} recorded a {event.role}"
                                          " model call, but the run's config makes that "
                                          "participant scripted")
                    requests.append((event.role, _run_sync(_request_of(who, messages))))
            if requests:
                self.conversations.append(requests)
                self.turns.append(sum(1 for m in messages if isinstance(m, UserMessage)))
                self.episode_ids.append(ep_id)
        if not self.conversations:
            raise ReplayError(f"{self.path}: no finished episode with recorded model calls")
        self.domain = run.config.run.domain
        self.agent, self.user = sim.agent, sim.user

    def describe(self) -> dict[str, Any]:
        requests = sum(len(c) for c in self.conversations)
        return {"kind": "recorded", "run": str(self.path), "domain": self.domain,
                "agent": self.agent, "user": self.user,
                "episodes": len(self.conversations), "requests": requests}

    async def converse(self, index: int, sender: Any) -> Any:
        from writ_async.loadtest.traffic import Ended

        k = index % len(self.conversations)
        for role, request in self.conversations[k]:
            try:
                await sender.complete(role, request)
            except ModelCallError:
                return Ended(FAILED, self.turns[k])  # counted by the sender
        return Ended(COMPLETED, self.turns[k])


def _participants_factory(run: Any) -> Any:
    """The run's participants per episode, built exactly as ``writ simulate`` built them,
    over a pool that captures requests."""
    from writ_async.engine.run_participants import participants_factory

    pool: Any = _Capture()
    return participants_factory(run.plan, pool)


def _run_sync(coro: Any) -> ChatRequest:
    """Drive a participant's ``reply`` coroutine that never awaits anything real: the
    capturing pool raises before any I/O, so it returns on its first step."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise ReplayError("a participant's request building waited on something")
